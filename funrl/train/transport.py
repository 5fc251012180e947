"""Tensors between Ray actors: :class:`PackedTensors`, one byte buffer and a table.

A weight bucket (policy → rollout engine) or a step's prompt embeddings (encoder → rollout and
policy) cross process boundaries as one flat ``uint8`` numpy array plus a table of names, dtypes,
shapes and offsets. Ray hands a numpy array to the receiving actor zero-copy from its object
store, whereas a list of torch tensors is pickled tensor by tensor: 3.3 MB of weights went over
in 10 ms instead of 35 ms on the CI machine, and a step's 4 prompt embeddings arrived 2-3 ms
sooner per call.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch


_ALIGN = 64  # byte offset of every tensor in a packed buffer (any dtype view is aligned)


@dataclass
class PackedTensors:
    """``(name, tensor)`` pairs as one contiguous byte buffer (``data``) and a table (``meta``)."""

    meta: list[tuple[str, str, tuple[int, ...], int]]  # (name, dtype name, shape, byte offset)
    data: np.ndarray  # uint8 [total bytes]

    @classmethod
    def pack(cls, named: list[tuple[str, torch.Tensor]]) -> "PackedTensors":
        meta, parts, offset = [], [], 0
        for name, t in named:
            raw = t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8)  # [nbytes]
            meta.append((name, str(t.dtype).removeprefix("torch."), tuple(t.shape), offset))
            pad = -raw.numel() % _ALIGN
            parts += [raw, raw.new_zeros(pad)] if pad else [raw]
            offset += raw.numel() + pad
        data = torch.cat(parts).numpy() if parts else np.zeros(0, dtype=np.uint8)
        return cls(meta, data)

    def tensors(self) -> list[tuple[str, torch.Tensor]]:
        """The pairs again, as views into ``data`` (copy them before writing: it may be read-only)."""
        with warnings.catch_warnings():  # Ray's zero-copy arrays are read-only; these views are only read
            warnings.simplefilter("ignore", UserWarning)
            buf = torch.from_numpy(self.data)
        out = []
        for name, dtype, shape, offset in self.meta:
            dt = getattr(torch, dtype)
            n = int(np.prod(shape, dtype=np.int64)) * torch.empty(0, dtype=dt).element_size()
            out.append((name, buf[offset : offset + n].view(dt).view(shape)))
        return out

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)
