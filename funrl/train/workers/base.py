"""What every role actor shares: a span recorder, torch threads, and a liveness check."""

from __future__ import annotations

import os

from funrl.profiling import SpanRecorder


class Worker:
    def __init__(self, name: str, torch_threads: int = 1, profile: bool = True):
        import torch

        torch.set_num_threads(max(1, torch_threads))
        self.name = name
        self.rec = SpanRecorder(name, enabled=profile)

    def drain_spans(self) -> list[dict]:
        return self.rec.drain()

    def pid(self) -> int:
        return os.getpid()

    def ping(self) -> str:
        return self.name
