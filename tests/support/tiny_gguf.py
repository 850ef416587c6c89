"""Tiny GGUF files for tests.

``write_tiny_gguf``: a minimal but valid GGUF (header + metadata, no tensors) for registry tests;
it only needs to pass the header check that ``chatapp models add`` does. ``write_scripted_gguf``:
a real model llama.cpp loads and runs, whose replies are scripted token by token (written with
gguf-py, llama.cpp's own GGUF library); ``write_thinking_gguf`` is one whose template thinks.
"""

from __future__ import annotations

import itertools
import struct
from pathlib import Path

_UINT32, _STRING = 4, 8


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("<Q", len(data)) + data


def write_tiny_gguf(
    path: Path,
    *,
    architecture: str = "llama",
    name: str = "tiny",
    context_length: int = 2048,
    chat_template: str | None = None,
) -> Path:
    """A GGUF v3 file with a few metadata keys and no tensors."""
    items: list[tuple[str, int, bytes]] = [
        ("general.architecture", _STRING, _string(architecture)),
        ("general.name", _STRING, _string(name)),
        (f"{architecture}.context_length", _UINT32, struct.pack("<I", context_length)),
    ]
    if chat_template is not None:
        items.append(("tokenizer.chat_template", _STRING, _string(chat_template)))
    body = b"GGUF" + struct.pack("<IQQ", 3, 0, len(items))
    for key, value_type, value in items:
        body += _string(key) + struct.pack("<I", value_type) + value
    body += b"\0" * (-len(body) % 32)  # the data section starts aligned
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return path


# -- a real, loadable model whose replies are scripted ------------------------------------------

THINK_TOKENS = ("<think>", "</think>")


def _byte_level(text: str) -> str:
    """``text`` as a GPT-2 byte-level BPE token string (" a" -> "Ġa", "\\n" -> "Ċ")."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table: dict[int, str] = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return "".join(table[b] for b in text.encode("utf-8"))


def write_scripted_gguf(
    path: Path,
    *,
    tokenizer_from: Path,
    chat_template: str,
    paths: list[list[str]],
    added_tokens: tuple[str, ...] = THINK_TOKENS,
    name: str = "scripted",
    n_embd: int = 32,
) -> Path:
    """A real llama-architecture GGUF (about 7 MB) that llama.cpp loads and runs, with the
    tokenizer of ``tokenizer_from`` (a GPT-2 BPE GGUF such as the bundled SmolLM2) plus
    ``added_tokens`` as added tokens, and weights made so that the next token depends only on
    the current one: attention and feed-forward weights are zero, so each position's hidden
    state is its token's embedding, a one-hot vector naming the token's "state"; the output
    matrix maps each state to its successor. Each path in ``paths`` is a list of token texts
    (each one token of the vocabulary); consecutive texts define successors, a path's last
    token is followed by the end-of-sequence token (unless another path continues from it),
    and so is every other token. A path starting with
    the last token of a prompt scripts the reply to that prompt, with any sampler settings.
    """
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter, TokenType

    source = GGUFReader(str(tokenizer_from))

    def field(key: str):  # type: ignore[no-untyped-def]
        return source.fields[key]

    def strings(key: str) -> list[str]:
        f = field(key)
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]

    def scalar(key: str) -> int:
        f = field(key)
        return int(f.parts[f.data[0]][0])

    tokens = strings("tokenizer.ggml.tokens")
    types_field = field("tokenizer.ggml.token_type")
    types = [int(types_field.parts[i][0]) for i in types_field.data]
    for text in added_tokens:
        tokens.append(text)
        types.append(int(TokenType.USER_DEFINED))
    index = {t: i for i, t in enumerate(tokens)}
    eos = scalar("tokenizer.ggml.eos_token_id")

    def token_id(text: str) -> int:
        key = text if text in added_tokens else _byte_level(text)
        if key not in index:
            raise ValueError(f"{text!r} is not one token of this vocabulary")
        return index[key]

    successor: dict[int, int] = {}
    ends: list[int] = []
    for chain in paths:
        ids = [token_id(t) for t in chain]
        for current, following in itertools.pairwise(ids):
            if successor.setdefault(current, following) != following:
                raise ValueError(f"token {tokens[current]!r} is given two successors")
        ends.append(ids[-1])
    for last in ends:  # a path's last token ends the reply, unless another path goes on
        successor.setdefault(last, eos)
    if len(successor) + 1 > n_embd:
        raise ValueError(f"{len(successor)} scripted tokens need n_embd > {len(successor)}")
    state = {token: n for n, token in enumerate(successor, start=1)}  # 0: every other token
    n_vocab = len(tokens)
    embedding = np.zeros((n_vocab, n_embd), dtype=np.float32)
    embedding[:, 0] = 1.0
    for token, n in state.items():
        embedding[token] = 0.0
        embedding[token, n] = 1.0
    output = np.zeros((n_vocab, n_embd), dtype=np.float32)
    output[eos, 0] = 10.0
    for token, n in state.items():
        output[successor[token], n] = 10.0  # ≈ 57 after RMS norm: a certain choice

    writer = GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_context_length(2048)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(1)
    writer.add_feed_forward_length(n_embd)
    writer.add_head_count(1)
    writer.add_head_count_kv(1)
    writer.add_rope_dimension_count(n_embd)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(1)  # mostly F16
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(bytes(field("tokenizer.ggml.pre").parts[-1]).decode())
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(strings("tokenizer.ggml.merges"))
    writer.add_bos_token_id(scalar("tokenizer.ggml.bos_token_id"))
    writer.add_eos_token_id(eos)
    writer.add_add_bos_token(False)
    writer.add_chat_template(chat_template)
    zeros = np.zeros((n_embd, n_embd), dtype=np.float32)
    ones = np.ones(n_embd, dtype=np.float32)
    f16 = GGMLQuantizationType.F16
    writer.add_tensor("token_embd.weight", embedding.astype(np.float16), raw_dtype=f16)
    for part in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
        writer.add_tensor(f"blk.0.{part}.weight", zeros)
    writer.add_tensor("blk.0.attn_norm.weight", ones)
    writer.add_tensor("blk.0.ffn_norm.weight", ones)
    writer.add_tensor("output_norm.weight", ones)
    writer.add_tensor("output.weight", output.astype(np.float16), raw_dtype=f16)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


THINKING_TEMPLATE = Path(__file__).resolve().parent.parent / "data" / "chat_templates"
THINKING_REASONING = "Cats sleep a lot."
"""What the thinking test model thinks before every reply (thinking on)."""
THINKING_ANSWER = "Hello!"
"""Its answer, with thinking on or off."""


def write_thinking_gguf(path: Path, *, tokenizer_from: Path) -> Path:
    """A tiny real model with Qwen3's published chat template (``enable_thinking``, on by
    default) that answers every chat with ``<think>Cats sleep a lot.</think>Hello!`` and, with
    thinking off (the template then writes an empty think block), with ``Hello!``."""
    template = (THINKING_TEMPLATE / "Qwen-Qwen3-0.6B.jinja").read_text(encoding="utf-8")
    return write_scripted_gguf(
        path,
        tokenizer_from=tokenizer_from,
        chat_template=template,
        name="tiny thinking",
        paths=[
            # thinking on: the generation prompt ends "<|im_start|>assistant\n"
            ["\n", "<think>", "Cats", " sleep", " a", " lot", ".", "</think>", "Hello", "!"],
            # thinking off: it ends "<think>\n\n</think>\n\n"
            ["\n\n", "Hello"],
        ],
    )
