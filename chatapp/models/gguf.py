"""Read what a GGUF model file says about itself, without loading it.

``read_gguf_info`` parses the header, the key/value metadata and the tensor table (never the
tensor data, so it takes milliseconds even for a 10 GB file); ``validate_gguf`` does the same and
also checks that the file is long enough to hold every tensor, raising ``ModelLoadError`` with a
one-line problem ("no such file", "not a GGUF file (bad magic)", "truncated (...)") that the CLI
and UI show as-is. No llama.cpp import: this runs before the engine loads anything.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatapp.errors import ModelLoadError

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# GGUF metadata value types -> struct format (little-endian); 8 = string, 9 = array.
_SCALAR_FORMATS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9

# ggml tensor types: id -> (name, elements per block, bytes per block). From ggml's gguf-py.
_QK_K = 256
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    9: ("Q8_1", 32, 36),
    10: ("Q2_K", _QK_K, 2 + 2 + _QK_K // 16 + _QK_K // 4),
    11: ("Q3_K", _QK_K, 2 + _QK_K // 4 + _QK_K // 8 + 12),
    12: ("Q4_K", _QK_K, 2 + 2 + _QK_K // 2 + 12),
    13: ("Q5_K", _QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 8 + 12),
    14: ("Q6_K", _QK_K, 2 + _QK_K // 2 + _QK_K // 4 + _QK_K // 16),
    15: ("Q8_K", _QK_K, 4 + _QK_K + _QK_K // 8),
    16: ("IQ2_XXS", _QK_K, 2 + _QK_K // 4),
    17: ("IQ2_XS", _QK_K, 2 + _QK_K // 4 + _QK_K // 32),
    18: ("IQ3_XXS", _QK_K, 2 + _QK_K // 4 + _QK_K // 8),
    19: ("IQ1_S", _QK_K, 2 + _QK_K // 8 + _QK_K // 16),
    20: ("IQ4_NL", 32, 18),
    21: ("IQ3_S", _QK_K, 2 + _QK_K // 4 + _QK_K // 8 + _QK_K // 32 + 4),
    22: ("IQ2_S", _QK_K, 2 + _QK_K // 4 + _QK_K // 16),
    23: ("IQ4_XS", _QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 64),
    24: ("I8", 1, 1),
    25: ("I16", 1, 2),
    26: ("I32", 1, 4),
    27: ("I64", 1, 8),
    28: ("F64", 1, 8),
    29: ("IQ1_M", _QK_K, _QK_K // 8 + _QK_K // 16 + _QK_K // 32),
    30: ("BF16", 1, 2),
    34: ("TQ1_0", _QK_K, 2 + 4 * 13),
    35: ("TQ2_0", _QK_K, 2 + 64),
    39: ("MXFP4", 32, 17),
    40: ("NVFP4", 64, 36),
    41: ("Q1_0", 128, 18),
    42: ("Q2_0", 64, 18),
}

# general.file_type -> the quantization label people know (llama.cpp's LlamaFileType).
FILE_TYPES: dict[int, str] = {
    0: "F32",
    1: "F16",
    2: "Q4_0",
    3: "Q4_1",
    4: "Q4_1_SOME_F16",
    7: "Q8_0",
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    11: "Q3_K_S",
    12: "Q3_K_M",
    13: "Q3_K_L",
    14: "Q4_K_S",
    15: "Q4_K_M",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    19: "IQ2_XXS",
    20: "IQ2_XS",
    21: "Q2_K_S",
    22: "IQ3_XS",
    23: "IQ3_XXS",
    24: "IQ1_S",
    25: "IQ4_NL",
    26: "IQ3_S",
    27: "IQ3_M",
    28: "IQ2_S",
    29: "IQ2_M",
    30: "IQ4_XS",
    31: "IQ1_M",
    32: "BF16",
    36: "TQ1_0",
    37: "TQ2_0",
    38: "MXFP4_MOE",
    39: "NVFP4",
    40: "Q1_0",
    41: "Q2_0",
}

_TOKENS_KEY = "tokenizer.ggml.tokens"
_LANGUAGES_KEY = "general.languages"
_SPECIAL_TOKEN_KEYS = {
    "bos": "tokenizer.ggml.bos_token_id",
    "eos": "tokenizer.ggml.eos_token_id",
    "eot": "tokenizer.ggml.eot_token_id",
}


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor table: where a weight lives and how big it is."""

    name: str
    shape: tuple[int, ...]
    type_name: str
    offset: int
    """Byte offset inside the data section."""
    n_bytes: int | None
    """Bytes of data; None for a tensor type this reader does not know."""

    @property
    def n_elements(self) -> int:
        return math.prod(self.shape)


@dataclass
class GGUFInfo:
    """What a GGUF file says about the model in it."""

    path: Path
    version: int
    file_size: int
    architecture: str | None
    name: str | None
    context_length: int | None
    """Context length the model was trained with (``<arch>.context_length``)."""
    chat_template: str | None
    file_type: str | None
    """Quantization label, e.g. ``Q4_K_M`` (from general.file_type, else the dominant tensor type)."""
    parameters: int
    """Parameter count: the sum of the tensors' element counts."""
    tensor_count: int
    data_offset: int
    """Where tensor data starts in the file."""
    data_end: int
    """Bytes the file must have to hold every tensor."""
    bos_token: str | None = None
    eos_token: str | None = None
    eot_token: str | None = None
    """End-of-turn token, when the vocabulary names one separately from eos."""
    vocab_size: int | None = None
    languages: list[str] = field(default_factory=list)
    """Languages the file says the model speaks (``general.languages``), often empty."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Every scalar key/value (numbers, booleans, strings); arrays are left out."""
    tensors: list[TensorInfo] = field(default_factory=list, repr=False)

    @property
    def quant(self) -> str | None:
        return self.file_type

    @property
    def parameters_label(self) -> str:
        """Human size such as ``135M`` or ``7.2B``."""
        n = self.parameters
        if n >= 1e9:
            return f"{n / 1e9:.1f}B"
        if n >= 1e6:
            return f"{n / 1e6:.0f}M"
        return f"{n / 1e3:.0f}K"

    def key(self, name: str, default: Any = None) -> Any:
        """An architecture-scoped value, e.g. ``key("block_count")`` → ``llama.block_count``."""
        return self.metadata.get(f"{self.architecture}.{name}", default)


class _Truncated(Exception):
    """The header or tensor table ends before the file does."""


class _BadHeader(Exception):
    pass


class _Reader:
    """Sequential little-endian reads over a buffer (an mmap: only touched pages are read)."""

    def __init__(self, buf: Any, size: int) -> None:
        self.buf = buf
        self.size = size
        self.pos = 0

    def unpack(self, fmt: str) -> Any:
        n = struct.calcsize(fmt)
        if self.pos + n > self.size:
            raise _Truncated
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def raw_string(self) -> bytes:
        length = self.unpack("<Q")
        end = self.pos + length
        if end > self.size:
            raise _Truncated
        data = self.buf[self.pos : end]
        self.pos = end
        return bytes(data)

    def string(self) -> str:
        return self.raw_string().decode("utf-8", errors="replace")

    def skip(self, n: int) -> None:
        if self.pos + n > self.size:
            raise _Truncated
        self.pos += n


def _read_value(reader: _Reader, value_type: int, keep_strings: bool = True) -> Any:
    if value_type == _STRING:
        return reader.string() if keep_strings else reader.skip(reader.unpack("<Q"))
    fmt = _SCALAR_FORMATS.get(value_type)
    if fmt is None:
        raise _BadHeader(f"unknown metadata value type {value_type}")
    return reader.unpack(fmt)


def _read_array(reader: _Reader, key: str) -> list[Any] | int:
    """The array's items for the token list and the model's languages; otherwise skip it and
    return its length."""
    item_type = reader.unpack("<I")
    count = reader.unpack("<Q")
    if item_type == _STRING:
        if key == _TOKENS_KEY:
            return [reader.raw_string() for _ in range(count)]
        if key == _LANGUAGES_KEY:
            return [reader.string() for _ in range(count)]
        for _ in range(count):
            reader.skip(reader.unpack("<Q"))
        return count
    if item_type == _ARRAY:
        for _ in range(count):
            _read_array(reader, "")
        return count
    fmt = _SCALAR_FORMATS.get(item_type)
    if fmt is None:
        raise _BadHeader(f"unknown metadata array type {item_type}")
    reader.skip(struct.calcsize(fmt) * count)
    return count


def _open_buffer(path: Path) -> tuple[Any, int, Any]:
    """(buffer, size, closer) for a readable regular file; ModelLoadError otherwise."""
    if not path.exists():
        raise ModelLoadError(path, "no such file")
    if path.is_dir():
        raise ModelLoadError(path, "is a directory, not a GGUF file")
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the caller through `closer`
    except PermissionError:
        raise ModelLoadError(path, "unreadable (permission denied)") from None
    except OSError as exc:
        raise ModelLoadError(path, f"unreadable ({exc.strerror or exc})") from None
    size = os.fstat(handle.fileno()).st_size
    if size == 0:
        handle.close()
        raise ModelLoadError(path, "not a GGUF file (empty)")
    try:
        buf = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        # Special files (pipes, /dev/*) cannot be mapped; read what a header could need.
        data = handle.read(64 * 1024 * 1024)
        handle.close()
        return data, len(data), lambda: None

    def closer() -> None:
        buf.close()
        handle.close()

    return buf, size, closer


def _parse(path: Path, buf: Any, size: int) -> GGUFInfo:
    reader = _Reader(buf, size)
    if size < 4 or bytes(buf[:4]) != GGUF_MAGIC:
        raise ModelLoadError(path, "not a GGUF file (bad magic)")
    reader.pos = len(GGUF_MAGIC)
    version = reader.unpack("<I")
    if version not in (2, 3):
        raise ModelLoadError(path, f"unsupported GGUF version {version} (llama.cpp reads 2 and 3)")
    tensor_count = reader.unpack("<Q")
    kv_count = reader.unpack("<Q")
    metadata: dict[str, Any] = {}
    tokens: list[bytes] | None = None
    vocab_size: int | None = None
    languages: list[str] = []
    for _ in range(kv_count):
        key = reader.string()
        value_type = reader.unpack("<I")
        if value_type == _ARRAY:
            items = _read_array(reader, key)
            if isinstance(items, list) and key == _LANGUAGES_KEY:
                languages = items
            elif isinstance(items, list):
                tokens = items
                vocab_size = len(items)
        else:
            metadata[key] = _read_value(reader, value_type)

    tensors: list[TensorInfo] = []
    for _ in range(tensor_count):
        name = reader.string()
        n_dims = reader.unpack("<I")
        if n_dims > 8:
            raise _BadHeader(f"tensor {name!r} has {n_dims} dimensions")
        shape = tuple(reader.unpack("<Q") for _ in range(n_dims))
        type_id = reader.unpack("<I")
        offset = reader.unpack("<Q")
        type_name, block, block_bytes = GGML_TYPES.get(type_id, (f"type{type_id}", 0, 0))
        n_elements = math.prod(shape)
        n_bytes = n_elements // block * block_bytes if block else None
        tensors.append(TensorInfo(name, shape, type_name, offset, n_bytes))

    alignment = int(metadata.get("general.alignment", DEFAULT_ALIGNMENT)) or DEFAULT_ALIGNMENT
    data_offset = -(-reader.pos // alignment) * alignment
    data_end = data_offset + max((t.offset + (t.n_bytes or 0) for t in tensors), default=0)

    architecture = metadata.get("general.architecture")
    specials: dict[str, str | None] = {}
    for label, key in _SPECIAL_TOKEN_KEYS.items():
        token_id = metadata.get(key)
        ok = tokens is not None and isinstance(token_id, int) and 0 <= token_id < len(tokens)
        specials[label] = tokens[token_id].decode("utf-8", "replace") if ok else None  # type: ignore[index]

    return GGUFInfo(
        path=path,
        version=version,
        file_size=size,
        architecture=architecture,
        name=metadata.get("general.name"),
        context_length=metadata.get(f"{architecture}.context_length"),
        chat_template=metadata.get("tokenizer.chat_template"),
        file_type=_quant_label(metadata, tensors),
        parameters=sum(t.n_elements for t in tensors),
        tensor_count=tensor_count,
        data_offset=data_offset,
        data_end=data_end,
        bos_token=specials["bos"],
        eos_token=specials["eos"],
        eot_token=specials["eot"],
        vocab_size=vocab_size,
        languages=languages,
        metadata=metadata,
        tensors=tensors,
    )


def _quant_label(metadata: dict[str, Any], tensors: list[TensorInfo]) -> str | None:
    file_type = metadata.get("general.file_type")
    if isinstance(file_type, int) and file_type in FILE_TYPES:
        return FILE_TYPES[file_type]
    # No (known) file_type: name it after the type holding most of the 2-D weights.
    weights: Counter[str] = Counter()
    for tensor in tensors:
        if len(tensor.shape) >= 2:
            weights[tensor.type_name] += tensor.n_elements
    return weights.most_common(1)[0][0] if weights else None


def read_gguf_info(path: str | os.PathLike[str]) -> GGUFInfo:
    """Header, metadata and tensor table of a GGUF file (no tensor data is read).

    Raises ModelLoadError when the file is missing, unreadable, not a GGUF or its header is cut
    short. Does not check that the tensor data is all there; ``validate_gguf`` does.
    """
    file = Path(path).expanduser()
    buf, size, closer = _open_buffer(file)
    try:
        return _parse(file, buf, size)
    except _Truncated:
        raise ModelLoadError(
            file, f"truncated (file is {size} bytes; its header ends early)"
        ) from None
    except _BadHeader as exc:
        raise ModelLoadError(file, f"corrupt GGUF header ({exc})") from None
    finally:
        closer()


def validate_gguf(path: str | os.PathLike[str]) -> GGUFInfo:
    """``read_gguf_info`` plus a check that the file holds all of its tensor data."""
    info = read_gguf_info(path)
    if info.file_size < info.data_end:
        raise ModelLoadError(
            info.path, f"truncated (file is {info.file_size} bytes, tensors need {info.data_end})"
        )
    # Tensors of a type newer than this reader count as 0 bytes here; llama.cpp judges them.
    return info
