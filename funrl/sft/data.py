"""Training data for SFT: fbank features of a whole manifest computed once and kept in memory (the
tiny corpora of the warm start fit easily), length-bucketed batches, and SpecAugment-style masking.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch


@dataclass
class FeatureSet:
    utts: list  # [N] funrl.data.manifest.Utterance
    feats: list  # [N] float32 [T_i, 80]

    def __len__(self) -> int:
        return len(self.utts)


def load_features(manifest: str, log=print, max_duration: float | None = None) -> FeatureSet:
    """Read ``manifest`` and compute every utterance's fbank once (``data.max_duration`` applied)."""
    from funrl.data.config import filter_by_duration
    from funrl.data.manifest import load_manifest
    from funrl.eval.decode import compute_features

    t0 = time.time()
    utts, dropped = filter_by_duration(load_manifest(manifest), max_duration)
    if dropped:
        log(f"features: left out {len(dropped)} utterances of {manifest} longer than data.max_duration={max_duration}s")
    if not utts:
        raise ValueError(f"{manifest}: the manifest has no utterances")
    feats = compute_features(utts)
    log(f"features: {len(utts)} utterances from {manifest} in {time.time() - t0:.1f}s")
    return FeatureSet(utts, feats)


def bucketed_batches(lengths: list[int], batch_size: int, rng: np.random.Generator, bucket: int = 50) -> Iterator[list[int]]:
    """One epoch of index batches: shuffle, sort within windows of ``bucket`` batches by length
    (less padding), then shuffle the batches."""
    order = rng.permutation(len(lengths))
    batches = []
    win = batch_size * bucket
    for s in range(0, len(order), win):
        chunk = sorted(order[s : s + win].tolist(), key=lambda i: lengths[i])
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    for b in rng.permutation(len(batches)):
        yield batches[b]


def spec_augment(x: torch.Tensor, lengths: torch.Tensor, fill: torch.Tensor, gen: torch.Generator,
                 freq_masks: int = 2, freq_width: int = 10, time_masks: int = 2, time_width: int = 20) -> torch.Tensor:
    """Mask random frequency bands and time spans of ``x [B, T, F]`` with ``fill [F]`` (the
    feature mean, which the encoder's normalisation maps to 0). Returns a new tensor."""
    x = x.clone()
    b, _, f = x.shape
    for i in range(b):
        n = int(lengths[i])
        for _ in range(freq_masks):
            w = int(torch.randint(0, freq_width + 1, (1,), generator=gen))
            s = int(torch.randint(0, max(1, f - w), (1,), generator=gen))
            x[i, :n, s : s + w] = fill[s : s + w]
        for _ in range(time_masks):
            w = min(int(torch.randint(0, time_width + 1, (1,), generator=gen)), n // 5)
            s = int(torch.randint(0, max(1, n - w), (1,), generator=gen))
            x[i, s : s + w] = fill
    return x
