"""Per-token log-probabilities and entropy from logits, at the rollout temperature.

``log π(y_t) = x[y_t] - logsumexp(x)`` with ``x = logits / temperature``: the sampling distribution
the rollout engine drew from (before top-p / top-k truncation, per the rollout protocol), so the
ratio of Eq. 3 compares like with like. Temperature 0 means greedy decoding, whose log-probs the
rollout protocol defines on the raw logits, so 0 is treated as 1.

Memory: the full ``log_softmax [B, T, V]`` is never built. Rows of the flattened ``[B*T, V]`` logits
are processed ``chunk_rows`` at a time (TRL ``selective_log_softmax`` and verl
``logprobs_from_logits_v2`` do the same per batch row), so under ``torch.no_grad`` (old and
reference log-probs) the extra memory is one fp32 chunk. Under autograd each chunk keeps its fp32
copy for the backward pass, as in TRL and verl.

Entropy ``H = -Σ p·log p`` with ``log p = x - logsumexp(x)`` (TRL ``entropy_from_logits``; verl's
``logsumexp(x) - Σ p·x`` is the same quantity but loses ~1e-5 to cancellation in fp32 when H is
small) is returned detached: it is a metric here (the report has no entropy bonus), so it costs no
autograd memory.

Unlike the loss functions, :func:`token_logprobs` returns ``(logprobs, entropy)`` rather than
``(value, metrics)``: the entropy is a per-token tensor that the loss masks and averages.
"""

from __future__ import annotations

from typing import Optional

import torch


def tempered(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature``, or the raw logits at temperature 0 (greedy): the one temperature
    rule, shared by the rollout engine's sampler and every teacher-forced log-prob."""
    return logits / temperature if temperature > 0 else logits


def token_logprobs(
    logits: torch.Tensor,  # [B, T, V] (any leading shape [..., V])
    labels: torch.Tensor,  # [B, T] the sampled token ids; padded positions must hold a valid id
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk_rows: int = 1024,
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """``(log π(labels) [B, T], entropy [B, T] detached or None)`` in fp32 (fp64 stays fp64)."""
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} must be labels {tuple(labels.shape)} plus a vocab dimension")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (rollout.temperature), got {temperature}")
    vocab = logits.shape[-1]
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= vocab):
        raise ValueError(
            f"labels must be token ids in [0, {vocab}); got min {int(labels.min())}, max {int(labels.max())} "
            "(put a valid id such as the pad id at padded positions, not -100; the response mask drops them)"
        )
    dtype = torch.promote_types(logits.dtype, torch.float32)
    flat = logits.reshape(-1, vocab)  # [B*T, V]
    flat_labels = labels.reshape(-1, 1)  # [B*T, 1]
    logp_chunks, ent_chunks = [], []
    for start in range(0, flat.shape[0], chunk_rows):
        x = tempered(flat[start : start + chunk_rows].to(dtype), temperature)  # [C, V]
        lse = torch.logsumexp(x, dim=-1)  # [C]
        picked = x.gather(-1, flat_labels[start : start + chunk_rows]).squeeze(-1)  # [C]
        logp_chunks.append(picked - lse)  # [C]
        if with_entropy:
            with torch.no_grad():
                logp_all = x - lse.unsqueeze(-1)  # [C, V]
                ent_chunks.append(-(torch.exp(logp_all) * logp_all).sum(-1))  # [C]
    logp = torch.cat(logp_chunks) if logp_chunks else flat.new_zeros(0, dtype=dtype)  # [B*T]
    logp = logp.reshape(labels.shape)  # [B, T]
    if not with_entropy:
        return logp, None
    entropy = torch.cat(ent_chunks) if ent_chunks else flat.new_zeros(0, dtype=dtype)  # [B*T]
    return logp, entropy.reshape(labels.shape).detach()  # [B, T]
