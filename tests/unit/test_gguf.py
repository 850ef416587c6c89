"""The GGUF header reader on the real bundled file and on broken copies of it (no model load)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from chatapp.errors import ModelLoadError
from chatapp.models.gguf import read_gguf_info, validate_gguf


@pytest.fixture(scope="module")
def bundled_info(bundled_gguf: Path):
    return validate_gguf(bundled_gguf)


def test_bundled_model_header(bundled_info, bundled_gguf: Path) -> None:
    info = bundled_info
    assert info.architecture == "llama"
    assert info.file_type == "Q4_1"
    assert info.context_length == 8192
    assert info.file_size == bundled_gguf.stat().st_size
    # Data section ends exactly where the file does: every tensor accounted for.
    assert info.data_end == info.file_size
    assert info.tensor_count == len(info.tensors) > 0
    # SmolLM2-135M: ~135 M parameters, derived from the tensor shapes.
    assert 130e6 < info.parameters < 140e6
    assert info.parameters_label == "135M"
    assert info.vocab_size == info.metadata["llama.vocab_size"]
    assert info.key("block_count") == 30


def test_bundled_model_tokens_and_template(bundled_info) -> None:
    info = bundled_info
    assert info.bos_token == "<|im_start|>"
    assert info.eos_token == "<|im_end|>"
    assert info.chat_template is not None and "<|im_start|>" in info.chat_template
    # Only scalars are kept in metadata; the token list (an array) is not.
    assert "tokenizer.ggml.tokens" not in info.metadata
    assert all(not isinstance(v, list | dict) for v in info.metadata.values())


def _problem(path: Path) -> str:
    with pytest.raises(ModelLoadError) as caught:
        validate_gguf(path)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    return caught.value.problem


def test_missing_file(tmp_path: Path) -> None:
    assert _problem(tmp_path / "nope.gguf") == "no such file"


def test_directory(tmp_path: Path) -> None:
    assert "is a directory" in _problem(tmp_path)


def test_not_a_gguf(tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_text("# these are notes, not a model\n" * 10)
    assert _problem(path) == "not a GGUF file (bad magic)"


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.gguf"
    path.write_bytes(b"")
    assert "empty" in _problem(path)


def test_unsupported_version(tmp_path: Path) -> None:
    path = tmp_path / "v9.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 9, 0, 0))
    assert "unsupported GGUF version 9" in _problem(path)


def _truncated_copy(source: Path, target: Path, size: int) -> Path:
    with open(source, "rb") as src:
        target.write_bytes(src.read(size))
    return target


def test_truncated_tensor_data(tmp_path: Path, bundled_gguf: Path, bundled_info) -> None:
    size = bundled_info.file_size // 2
    path = _truncated_copy(bundled_gguf, tmp_path / "half.gguf", size)
    problem = _problem(path)
    assert problem == f"truncated (file is {size} bytes, tensors need {bundled_info.file_size})"
    # The header itself is intact, so reading it (without the size check) still works.
    assert read_gguf_info(path).file_type == "Q4_1"


def test_truncated_header(tmp_path: Path, bundled_gguf: Path) -> None:
    path = _truncated_copy(bundled_gguf, tmp_path / "cut.gguf", 4096)
    assert _problem(path).startswith("truncated (file is 4096 bytes")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "secret.gguf"
    path.write_bytes(b"GGUF")
    path.chmod(0)
    assert _problem(path) == "unreadable (permission denied)"
