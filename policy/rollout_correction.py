"""Engine vs trainer log-probs: the mismatch metrics, and the importance weights that correct the
policy-gradient term for it (``algorithm.rollout_is``).

The rollout engine samples from its own π_engine (SGLang's kernels, bf16, another attention
implementation), while the loss's ratio is taken against π_old as the trainer computes it. The
samples are then off-policy by ``w = π_old / π_engine``. As verl's ``rollout_is`` and TRL's
``vllm_importance_sampling_correction`` (modes ``token_truncate``, ``token_mask``,
``sequence_truncate``, ``sequence_mask``):

- token level: ``w_t = exp(log π_old,t − log π_engine,t)``;
- sequence level: ``w_i = exp(Σ_t (log π_old,t − log π_engine,t))``, the same for every token of row i;
- ``tis`` truncates, ``min(w, cap)``; ``mis`` masks, ``w`` where ``w ≤ cap`` else 0 (the upper bound
  only, as TRL's mask modes; verl's mask mode can also drop weights below a lower bound).

The weights carry no gradient and multiply the per-token policy-gradient loss, not the KL term, as
in both. Metrics (over the masked tokens, shares of the step's token count like the loss's other
means): ``rollout_logp_diff_mean`` = mean |log π_old − log π_engine|, ``rollout_logp_diff_max``
its max, ``rollout_kl`` = the k3 estimate of KL(π_engine ‖ π_old) on the engine's samples
(``e^d − 1 − d`` with ``d = log π_old − log π_engine``); a row whose engine log-probs are NaN (one
the engine did not sample: ``algorithm.guide``) counts as ``d = 0``, weight 1; with a correction on,
``rollout_is_weight_mean`` and ``rollout_is_capped_frac`` (tokens whose weight hit the cap).
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from funrl.policy.config import ROLLOUT_IS_MODES
from funrl.policy.loss import Count, _extreme, _mean


def rollout_correction(
    old_logp: torch.Tensor,  # [B, T] log π_old (the trainer's), no grad
    engine_logp: torch.Tensor,  # [B, T] log π_engine of the sampled tokens, as the engine returned them
    mask: torch.Tensor,  # [B, T] bool, response tokens
    *,
    mode: str = "none",
    level: str = "token",
    cap: float = 2.0,
    num_tokens: Optional[Count] = None,
) -> tuple[Optional[torch.Tensor], dict[str, torch.Tensor]]:
    """``(weights [B, T] or None when mode is "none", metrics)``; weights are 0 at padding.

    >>> old = torch.tensor([[-1.0, -2.0]]); eng = torch.tensor([[-1.5, -1.0]]); m = torch.ones(1, 2, dtype=torch.bool)
    >>> w, _ = rollout_correction(old, eng, m, mode="tis", cap=1.5)
    >>> [round(x, 4) for x in w[0].tolist()]  # e^0.5 = 1.6487 -> 1.5; e^-1
    [1.5, 0.3679]
    """
    if mode not in ROLLOUT_IS_MODES:
        raise ValueError(f"mode must be one of {ROLLOUT_IS_MODES} (algorithm.rollout_is), got {mode!r}")
    mask = mask.bool()
    # NaN engine log-probs: a row the engine did not sample (algorithm.guide): zero difference, weight 1
    known = mask & torch.isfinite(engine_logp)
    d = torch.where(known, old_logp.detach() - engine_logp.detach(), torch.zeros_like(old_logp))  # [B, T] log w_t
    metrics = {
        "rollout_logp_diff_mean": _mean(d.abs(), mask, num_tokens),
        "rollout_logp_diff_max": _extreme(d.abs(), mask, largest=True),
        "rollout_kl": _mean(torch.expm1(d) - d, mask, num_tokens),
    }
    if mode == "none":
        return None, metrics
    log_w = d.sum(-1, keepdim=True).expand_as(d) if level == "sequence" else d  # [B, T]
    log_cap = math.log(cap)
    over = log_w > log_cap  # [B, T]
    w = torch.exp(log_w.clamp(max=log_cap))  # [B, T] min(w, cap), without overflow
    if mode == "mis":
        w = torch.where(over, torch.zeros_like(w), w)
    w = torch.where(mask, w, torch.zeros_like(w))
    metrics["rollout_is_weight_mean"] = _mean(w, mask, num_tokens)
    metrics["rollout_is_capped_frac"] = _mean(over.float(), mask, num_tokens)
    return w, metrics
