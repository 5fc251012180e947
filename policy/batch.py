"""The policy's batch format and its teacher-forcing layout.

A :class:`PolicyBatch` holds one rank's rows (sampled sequences) of a GRPO step. Prompt
embeddings are stored once per *prompt* and shared by that prompt's G samples through
``prompt_index`` (no G-fold copy travels through Ray or sits in memory until a micro-batch is
built). Completions are ragged lists; padding is done per micro-batch, right-padded.

Teacher forcing (:func:`build_inputs`): row ``i`` with prompt ``p = prompt_index[i]`` of length
``L`` and completion ``y`` of length ``T`` feeds the LLM ``[prompt_embeds[p]; embed(y[:T-1])]``
(length ``L + T - 1``, right-padded to the micro-batch's longest row). The logits at position
``L - 1 + t`` predict ``y[t]``, so ``positions[i, t] = L - 1 + t`` picks the ``T`` hidden states
whose log-probs the loss needs; everything else (prompt, padding) is outside ``mask``.

Shared prompts (:func:`build_shared_inputs`, ``policy.share_prompt``, the default): the G rows of a
group share one prompt, and an audio prompt is long next to its transcript (56 embeddings vs 32
tokens in ``bench/vs_trl.py``), so feeding it G times repeats most of the work. Instead each
micro-batch holds one *segment* per prompt, ``[prompt; y_1[:-1]; y_2[:-1]; ...]``, with a 4-D
attention mask in which each completion block sees the prompt and its own earlier tokens, never a
sibling's, and position ids that restart at ``L`` for every block. Every logit is the same
function of the same inputs as in the per-row layout (tested to 1e-5, gradients included), with
``L + ΣT`` tokens through the layers instead of ``G·L + ΣT``. The price is attention over the dense
``[S, S]`` mask of a segment (``S`` the segment length): cheap next to the projections and MLPs
at these lengths, quadratic in ``G·T`` for very long completions (then set ``share_prompt: false``
or smaller micro-batches).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

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
        for name in ("old_logprobs", "ref_logprobs"):
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
        )


def pad_right(rows: Sequence[torch.Tensor], length: int, value: float = 0) -> torch.Tensor:
    """Stack 1-D tensors into ``[N, length]``, right-padded with ``value``."""
    dtype, device = (rows[0].dtype, rows[0].device) if rows else (torch.float32, None)
    out = torch.full((len(rows), length), value, dtype=dtype, device=device)
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
    return out


def build_inputs(
    prompt_embeds: list[torch.Tensor],  # [P] each [L_p, H]
    prompt_index: Sequence[int],  # [N]
    completion_ids: list[torch.Tensor],  # [N] each [T_i]
    embed: Callable[[torch.Tensor], torch.Tensor],  # token ids [T] -> [T, H] (the LLM's input embedding)
) -> dict[str, torch.Tensor]:
    """Right-padded teacher-forcing inputs for one micro-batch (see the module docstring).

    Returns ``inputs_embeds [N, S, H]``, ``attention_mask [N, S]`` (long), ``positions [N, T]``
    (the hidden-state index predicting each completion token), ``labels [N, T]`` (0 at padding)
    and ``mask [N, T]`` (bool, completion tokens), with ``T = max T_i`` and ``S = max(L_i + T_i - 1)``.
    """
    device = prompt_embeds[0].device
    seqs, pos, lengths = [], [], []
    for p, y in zip(prompt_index, completion_ids):
        prompt = prompt_embeds[int(p)]  # [L, H]
        y = y.to(device)
        tail = embed(y[:-1]).to(prompt.dtype) if y.numel() > 1 else prompt.new_zeros(0, prompt.shape[-1])  # [T-1, H]
        seqs.append(torch.cat([prompt, tail]))  # [L+T-1, H] (just the prompt when T <= 1)
        pos.append(torch.arange(y.numel(), device=device) + prompt.shape[0] - 1)  # [T]
        lengths.append(seqs[-1].shape[0])
    n, s, t = len(seqs), max(lengths), max(1, max(y.numel() for y in completion_ids))
    hidden = seqs[0].shape[-1]
    inputs = seqs[0].new_zeros(n, s, hidden)  # [N, S, H]
    attention = torch.zeros(n, s, dtype=torch.long, device=device)  # [N, S]
    for i, x in enumerate(seqs):
        inputs[i, : x.shape[0]] = x
        attention[i, : x.shape[0]] = 1
    labels = pad_right([y.to(device).long() for y in completion_ids], t, 0)  # [N, T]
    mask = pad_right([torch.ones(y.numel(), dtype=torch.bool, device=device) for y in completion_ids], t, False)  # [N, T]
    positions = pad_right(pos, t, 0)  # [N, T]
    return {"inputs_embeds": inputs, "attention_mask": attention, "positions": positions, "labels": labels, "mask": mask}


def build_shared_inputs(
    prompt_embeds: list[torch.Tensor],  # [P] each [L_p, H]
    prompt_index: Sequence[int],  # [N]
    completion_ids: list[torch.Tensor],  # [N] each [T_i]
    embed: Callable[[torch.Tensor], torch.Tensor],  # token ids [T] -> [T, H]
) -> dict[str, torch.Tensor]:
    """Teacher-forcing inputs with one segment per distinct prompt (see the module docstring).

    Returns ``inputs_embeds [G, S, H]`` (``G`` segments, right-padded to the longest ``S``),
    ``attention_mask [G, 1, S, S]`` (bool, True = may attend; a padded query attends to itself
    only, so no softmax row is empty), ``position_ids [G, S]``, and per row ``flat_positions
    [N, T]`` (index into the ``[G*S]`` flattened hidden states predicting each completion token),
    ``labels [N, T]`` and ``mask [N, T]`` as :func:`build_inputs`.
    """
    device = prompt_embeds[0].device
    order: dict[int, list[int]] = {}  # prompt -> its rows, in first-appearance order
    for i, p in enumerate(prompt_index):
        order.setdefault(int(p), []).append(i)
    ids = [y.tolist() for y in completion_ids]
    # plain Python over token counts (cheap), tensors built once at the end
    lengths, blocks, positions, starts = [], [], [], {}  # per segment; starts: row -> first tail slot
    for p, rows in order.items():  # segment k = the k-th distinct prompt
        length = int(prompt_embeds[p].shape[0])
        blk, pos, offset = [0] * length, list(range(length)), length
        for b, i in enumerate(rows, start=1):
            tail = max(len(ids[i]) - 1, 0)  # y[:-1] is fed; y[0] is predicted from the prompt's last position
            starts[i] = offset
            blk += [b] * tail
            pos += range(length, length + tail)
            offset += tail
        lengths.append(offset)
        blocks.append(blk)
        positions.append(pos)
    g, s = len(lengths), max(lengths)
    hidden = prompt_embeds[0].shape[-1]
    dtype = prompt_embeds[0].dtype
    inputs = prompt_embeds[0].new_zeros(g, s, hidden)  # [G, S, H]
    fed = [t for rows in order.values() for i in rows for t in ids[i][:-1]]  # every fed token, segment order
    tails = embed(torch.tensor(fed, dtype=torch.long, device=device)).to(dtype) if fed else None  # [ΣT-1, H]
    used = 0
    for k, (p, rows) in enumerate(order.items()):
        length = prompt_embeds[p].shape[0]
        inputs[k, :length] = prompt_embeds[p]
        n = lengths[k] - length
        if n:
            inputs[k, length : lengths[k]] = tails[used : used + n]
            used += n
    block = torch.tensor([b + [-1] * (s - len(b)) for b in blocks])  # [G, S] 0 prompt, b > 0 row block, -1 padding
    position_ids = torch.tensor([q + [0] * (s - len(q)) for q in positions])  # [G, S]
    causal = torch.ones(s, s, dtype=torch.bool).tril()  # [S, S] key <= query
    bq, bk = block[:, :, None], block[:, None, :]  # [G, S, 1], [G, 1, S]
    allowed = causal & (bq >= 0) & (bk >= 0) & ((bk == 0) | (bk == bq))  # [G, S, S]
    allowed |= torch.eye(s, dtype=torch.bool) & (bq < 0)  # padded queries: themselves only
    t = max(1, max(len(y) for y in ids))
    segment = {i: k for k, rows in enumerate(order.values()) for i in rows}
    flat, labels, mask = [], [], []
    for i, y in enumerate(ids):
        base = segment[i] * s
        prompt_last = base + int(prompt_embeds[int(prompt_index[i])].shape[0]) - 1
        row = ([prompt_last] + list(range(base + starts[i], base + starts[i] + len(y) - 1)))[: len(y)]
        flat.append(row + [0] * (t - len(row)))
        labels.append(y + [0] * (t - len(y)))
        mask.append([True] * len(y) + [False] * (t - len(y)))
    return {
        "inputs_embeds": inputs,
        "attention_mask": allowed[:, None].to(device),  # [G, 1, S, S]
        "position_ids": position_ids.to(device),
        "flat_positions": torch.tensor(flat, dtype=torch.long, device=device),  # [N, T]
        "labels": torch.tensor(labels, dtype=torch.long, device=device),  # [N, T]
        "mask": torch.tensor(mask, dtype=torch.bool, device=device),  # [N, T]
    }
