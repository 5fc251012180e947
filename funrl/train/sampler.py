"""Which manifest rows each step trains on: epochs of a seeded permutation, resumable exactly."""

from __future__ import annotations

import numpy as np


class PromptSampler:
    """Yields ``batch_size`` row indices per step; every row once per epoch, none dropped.

    The last batch of an epoch is topped up from the next epoch's permutation, so steps always
    have the same size and no row is skipped.

    >>> s = PromptSampler(5, 2, seed=0, shuffle=False)
    >>> [s.next() for _ in range(3)]
    [[0, 1], [2, 3], [4, 0]]
    """

    def __init__(self, num_rows: int, batch_size: int, seed: int, shuffle: bool = True):
        if num_rows <= 0:
            raise ValueError("the training manifest has no rows")
        self.n, self.b, self.seed, self.shuffle = num_rows, batch_size, seed, shuffle
        self.epoch, self.pos = 0, 0

    def _order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def next(self) -> list[int]:
        out: list[int] = []
        while len(out) < self.b:
            order = self._order(self.epoch)
            take = order[self.pos : self.pos + self.b - len(out)]
            out += take.tolist()
            self.pos += len(take)
            if self.pos >= self.n:
                self.epoch, self.pos = self.epoch + 1, 0
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
