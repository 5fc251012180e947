"""LoRA adapters arriving at a rollout engine: collect each layer's parts, merge them into its base.

The policy sends, per peft LoRA linear, ``{module}.lora_A`` ``[r, in]``, ``{module}.lora_B``
``[out, r]`` and ``{module}.lora_scaling`` (0-dim float64; see
:func:`funrl.policy.weights.adapter_named_tensors`); a bucket boundary may fall between them.
:func:`lora_delta` is the policy's merge term ``scaling * (B @ A)`` computed with the same ops in
the same order, so ``W0 + lora_delta(...)`` equals the merged export bit for bit.
"""

from __future__ import annotations

from typing import Iterable, Iterator

import torch

PARTS = ("lora_A", "lora_B", "lora_scaling")


class AdapterParts:
    """Buffers adapter tensors by layer until all three parts of a layer are there."""

    def __init__(self) -> None:
        self.pending: dict[str, dict[str, torch.Tensor]] = {}

    def add(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> Iterator[tuple[str, dict[str, torch.Tensor]]]:
        """Yield ``(module name, {part: tensor})`` for each layer completed by ``named_tensors``."""
        for name, t in named_tensors:
            prefix, _, part = name.rpartition(".")
            if part not in PARTS:
                raise KeyError(f"update_adapter: {name} is not a LoRA part (expected a name ending in {PARTS})")
            got = self.pending.setdefault(prefix, {})
            got[part] = t.detach()
            if len(got) == len(PARTS):
                yield prefix, self.pending.pop(prefix)


def lora_delta(parts: dict[str, torch.Tensor], shape: tuple[int, ...], device) -> torch.Tensor:
    """``scaling * (B @ A)`` ``[out, in]`` on ``device``, in the adapter's dtype; checked against ``shape``."""
    a, b = parts["lora_A"].to(device), parts["lora_B"].to(device)  # [r, in], [out, r]
    if (b.shape[0], a.shape[1]) != tuple(shape) or a.shape[0] != b.shape[1]:
        raise ValueError(f"update_adapter: lora_B {tuple(b.shape)} @ lora_A {tuple(a.shape)} does not fit the weight {tuple(shape)}")
    delta = b @ a  # [out, in]
    delta.mul_(float(parts["lora_scaling"]))  # as the policy's ``W + scaling * (B @ A)``
    return delta
