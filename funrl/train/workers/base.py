"""What every role actor shares: a span recorder, torch threads, and a liveness check; and
:func:`prompt_tensors`, the prompt embeddings out of the encoder's packed transport form."""

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

    def node_id(self) -> str:
        """This actor's Ray node (the policy sends weights through shared memory to engines on its own)."""
        import ray

        return ray.get_runtime_context().get_node_id()

    def resident_tensors(self) -> list:
        """The tensors this role keeps between calls (weights, optimizer state, caches): what its
        CPU memory report counts (:func:`funrl.train.ownership.held_memory`)."""
        return []

    def memory(self, device) -> dict[str, int] | None:
        """What this actor holds on ``device`` now (``{"allocated", "reserved"}`` bytes)."""
        from funrl.train.ownership import held_memory

        return held_memory(device, self.resident_tensors)


def prompt_tensors(embeds) -> list:
    """``[L_i, H]`` tensors out of the encoder's :class:`funrl.train.transport.PackedTensors` (one
    byte buffer: Ray hands it over zero-copy, sooner than a list of tensors), or out of a list of
    them, or of refs to them, in order (one per encoder worker: ``model.encoder_workers``). The
    tensors are read-only views: copy before writing."""
    from funrl.train.guide import is_guide  # algorithm.guide's tensors ride along: not prompts

    if isinstance(embeds, (list, tuple)):
        import ray

        parts = [ray.get(p) if isinstance(p, ray.ObjectRef) else p for p in embeds]
        return [t for p in parts for n, t in p.tensors() if not is_guide(n)]
    return [t for n, t in embeds.tensors() if not is_guide(n)]
