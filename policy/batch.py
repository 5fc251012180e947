"""The policy's batch format.

A :class:`PolicyBatch` holds one rank's rows (sampled sequences) of a GRPO step. Prompt
embeddings are stored once per *prompt* and shared by that prompt's G samples through
``prompt_index`` (no G-fold copy travels through Ray or sits in memory until a micro-batch is
built). Completions are ragged lists; how a micro-batch is laid out for the LLM (teacher forcing)
lives in :mod:`funrl.policy.teacher_forcing`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch


@dataclass
class PolicyBatch:
    """One rank's share of a step: ``N`` rows drawn from ``P`` prompts."""

    prompt_embeds: list[torch.Tensor]  # [P] each [L_p, H] float, one per prompt
    prompt_index: list[int]  # [N] row -> prompt (prompt-major rows, as the rollout protocol)
    completion_ids: list[torch.Tensor]  # [N] each [T_i] long, the sampled tokens (stop token included)
    advantages: Optional[torch.Tensor] = None  # [N] float, one per row (update only)
    old_logprobs: Optional[list[torch.Tensor]] = None  # [N] each [T_i]; None in update(): on-policy, π_old = π_θ
    ref_logprobs: Optional[list[torch.Tensor]] = None  # [N] each [T_i] (update with kl_coef > 0)
    rollout_logprobs: Optional[list[torch.Tensor]] = None  # [N] each [T_i] the engine's (mismatch, rollout_is)

    def __len__(self) -> int:
        return len(self.completion_ids)

    def validate(self) -> None:
        """Raise a ValueError naming the field and row if the shapes do not line up."""
        n, p = len(self.completion_ids), len(self.prompt_embeds)
        if len(self.prompt_index) != n:
            raise ValueError(f"PolicyBatch: prompt_index has {len(self.prompt_index)} entries for {n} completions")
        for i, j in enumerate(self.prompt_index):
            if not 0 <= int(j) < p:
                raise ValueError(f"PolicyBatch: prompt_index[{i}] = {j} but there are {p} prompt embeddings")
        hidden = {e.shape[-1] for e in self.prompt_embeds}
        if any(e.dim() != 2 or e.shape[0] < 1 for e in self.prompt_embeds) or len(hidden) > 1:
            raise ValueError("PolicyBatch: prompt_embeds must be non-empty [L_p, H] tensors with one H for all")
        for i, y in enumerate(self.completion_ids):
            if y.dim() != 1 or y.dtype not in (torch.int32, torch.int64):
                raise ValueError(f"PolicyBatch: completion_ids[{i}] must be a 1-D integer tensor, got {y.dtype} {tuple(y.shape)}")
        if self.advantages is not None and tuple(self.advantages.shape) != (n,):
            raise ValueError(f"PolicyBatch: advantages must be [{n}], got {tuple(self.advantages.shape)}")
        for name in ("old_logprobs", "ref_logprobs", "rollout_logprobs"):
            lps = getattr(self, name)
            if lps is None:
                continue
            if len(lps) != n:
                raise ValueError(f"PolicyBatch: {name} has {len(lps)} rows for {n} completions")
            for i, (lp, y) in enumerate(zip(lps, self.completion_ids)):
                if lp.shape != y.shape:
                    raise ValueError(f"PolicyBatch: {name}[{i}] is {tuple(lp.shape)} but completion_ids[{i}] is {tuple(y.shape)}")

    def rows(self, idx: Sequence[int]) -> "PolicyBatch":
        """The rows ``idx`` (prompt embeddings are shared, not copied)."""
        pick = lambda xs: None if xs is None else [xs[i] for i in idx]  # noqa: E731
        return PolicyBatch(
            prompt_embeds=self.prompt_embeds,
            prompt_index=[self.prompt_index[i] for i in idx],
            completion_ids=[self.completion_ids[i] for i in idx],
            advantages=None if self.advantages is None else self.advantages[list(idx)],
            old_logprobs=pick(self.old_logprobs),
            ref_logprobs=pick(self.ref_logprobs),
            rollout_logprobs=pick(self.rollout_logprobs),
        )


def pad_right(rows: Sequence[torch.Tensor], length: int, value: float = 0) -> torch.Tensor:
    """Stack 1-D tensors into ``[N, length]``, right-padded with ``value``."""
    dtype, device = (rows[0].dtype, rows[0].device) if rows else (torch.float32, None)
    out = torch.full((len(rows), length), value, dtype=dtype, device=device)
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
    return out


