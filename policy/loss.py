"""The GRPO loss (report Eq. 2–3) and its published variants, as pure functions on tensors.

Sign convention. The report writes an objective to *maximise*:

    L_GRPO = 1/G Σ_i 1/|o_i| Σ_t min(r_it·A_i, clip(r_it, 1-ε, 1+ε)·A_i) - β·D_KL(π_θ || π_ref)

funrl *minimises* its negative. Per token the loss is

    ℓ_it = max(-A_i·r_it, -A_i·clip(r_it, 1-ε_low, 1+ε_high)) + β·KL_it

and the aggregation below turns ℓ into a scalar. ``-L_GRPO`` is exactly ``loss_agg_mode =
"seq-mean-token-mean"`` with ``clip_low = clip_high = ε``, ``dual_clip = None``, token ratios and
the KL estimator of the GRPO paper (k3); those are the defaults. The KL term sits inside the
per-token sum (as in TRL ``GRPOTrainer._compute_loss`` and the GRPO paper), which by linearity
equals verl's separately aggregated ``kl_loss`` added with ``kl_loss_coef``.

Options, and the published definition each follows (checked against those formulas to 1e-6 in
``tests/policy/test_grpo_published.py``):

knob (``algorithm.*``)         funrl                                 published source
-----------------------------  ------------------------------------  -------------------------------------
clip_low, clip_high            r clipped to [1-low, 1+high]          DAPO clip-higher; verl
                                                                     compute_policy_loss_vanilla; TRL
                                                                     epsilon / epsilon_high
dual_clip = c                  A<0 tokens: min(ℓ, -c·A)              Ye et al. 2019; verl clip_ratio_c
ratio_level = "sequence"       s_i = exp(mean_t log r_it), used per  GSPO (Zheng et al. 2025); verl
                               token as sg[s_i]·π_t/sg[π_t]          compute_policy_loss_gspo; TRL
                                                                     importance_sampling_level
log_ratio_clamp                log r clamped to ±c before exp        verl (±20 vanilla, ≤10 GSPO)
kl_estimator k1 / k2 / k3      log ρ; ½(log ρ)²; 1/ρ + log ρ - 1,    Schulman 2020; verl kl_penalty;
                               ρ = π_θ/π_ref (k3 clamped as verl)    TRL (k3, unclamped)
loss_agg_mode "token-mean"     Σ ℓ / global tokens                   DAPO; verl agg_loss; TRL "dapo"/"bnpo"
"seq-mean-token-mean"          Σ_i (Σ_t ℓ / |o_i|) / global seqs     report Eq. 2; verl; TRL "grpo"
"seq-mean-token-sum-norm"      Σ ℓ / (global seqs·loss_norm_length)  Dr.GRPO; TRL "dr_grpo"
adv_std, filter_zero_var...    see funrl.policy.advantages           Eq. 1; TRL scale_rewards; Dr.GRPO; DAPO

Departures, and why:

- k3 is clamped like verl (``-log ρ`` to [-20, 20], then the estimate to [-10, 10]); TRL does not
  clamp. The values agree wherever |log ρ| stays below ~2.5, i.e. in any sane run.
- ``log_ratio_clamp`` is symmetric and the same for both ratio levels (verl: ±20 token, ≤10 GSPO).
- ``seq-mean-token-sum-norm`` divides by the number of sequences times the constant, as Dr.GRPO's
  paper, TRL and verl 0.9.1's ``agg_loss`` do (older verl omitted the sequence count).
- The KL term is TRL's with ``use_bias_correction_kl=False``. TRL 1.16 defaults to ``True``, which
  multiplies the per-token KL by the importance ratio π_θ/π_old and so changes the gradient (one
  token, log π -1, log π_ref -1.5, A = 0, β = 0.04: gradient 0.0200 there, 0.0157 here, see
  ``tests/policy/test_grpo_published.py``). verl adds the KL without the ratio, as funrl does;
  ``algorithm.kl_ratio_correction=true`` gives TRL's default.
- ``approx_kl_old`` is verl's ``ppo_kl``: the mean of ``log π_old - log π_θ`` after the token
  log-ratio is clamped to ``±log_ratio_clamp`` (verl clamps its ``negative_approx_kl`` to ±20).
- Normalisers are *global*: the caller passes the token and non-empty-sequence counts of the whole
  optimiser step (all micro-batches, all data-parallel ranks; see :func:`local_counts`). A
  micro-batch's loss is then its share of the step's loss: summing the losses (and gradients) over
  micro-batches and ranks gives exactly the whole-batch value, whatever the split. So do not divide
  by the number of micro-batches, and under DDP/FSDP (which *average* gradients over ranks)
  multiply the loss by the world size before ``backward`` (verl's ``dp_size`` factor).

Metrics are 0-dim detached tensors (no host sync). Mean metrics (clip fractions, ratio mean, KLs,
entropy) are divided by ``num_tokens`` when given (the global count), so they too *sum* to the
global mean over micro-batches and ranks; ``ratio_min``/``ratio_max`` reduce with min/max.
"""

from __future__ import annotations

from typing import Optional, Union

import torch

from funrl.policy.config import KL_ESTIMATORS, LOSS_AGG_MODES, RATIO_LEVELS, AlgorithmConfig

Count = Union[int, float, torch.Tensor]


def _mean(x: torch.Tensor, mask: torch.Tensor, num_tokens: Optional[Count]) -> torch.Tensor:
    """Σ_{mask} x / num_tokens (default: the mask's own count), detached."""
    x = x.detach()
    total = torch.where(mask, x, torch.zeros_like(x)).sum()  # []
    denom = mask.sum().clamp(min=1) if num_tokens is None else num_tokens
    return total / denom


def _extreme(x: torch.Tensor, mask: torch.Tensor, largest: bool) -> torch.Tensor:
    if not bool(mask.any()):
        return x.new_zeros(())
    return x.detach()[mask].max() if largest else x.detach()[mask].min()


def local_counts(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tokens, non-empty sequences)`` of one micro-batch ``mask [B, T]``, as 0-dim float64 tensors.

    Sum them over the micro-batches of a step and ``all_reduce(SUM)`` them over ranks to get the
    ``global_num_tokens`` / ``global_num_seqs`` the loss needs.
    """
    mask = mask.bool()
    return mask.sum().double(), mask.any(dim=-1).sum().double()


def importance_ratio(
    logp: torch.Tensor,  # [B, T] log π_θ, with grad
    old_logp: torch.Tensor,  # [B, T] log π_θold (rollout-time policy), no grad
    mask: torch.Tensor,  # [B, T] bool, response tokens
    *,
    level: str = "token",
    log_clamp: float = 20.0,
    num_tokens: Optional[Count] = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 3 ``r = exp(log π_θ - log π_old)`` per token, or GSPO's per-sequence ratio at token level.

    Metrics: ``ratio_mean/min/max`` and ``approx_kl_old`` = mean(log π_old - log π_θ), the token
    log-ratio clamped to ±``log_clamp`` (k1 of the old policy, verl's ``ppo_kl``), over the masked tokens.
    """
    if level not in RATIO_LEVELS:
        raise ValueError(f"level must be one of {RATIO_LEVELS} (algorithm.ratio_level), got {level!r}")
    mask = mask.bool()
    old_logp = old_logp.detach()
    log_r = torch.where(mask, logp - old_logp, torch.zeros_like(logp))  # [B, T]  0 at padding
    if level == "sequence":
        lengths = mask.sum(-1).clamp(min=1)  # [B]
        log_s = log_r.sum(-1) / lengths  # [B]  log s_i = mean_t log r_it (GSPO Eq. 7)
        # value s_i, gradient s_i·∇log π_t per token (GSPO-token with sg[·]; verl compute_policy_loss_gspo)
        log_ratio = logp - logp.detach() + log_s.detach().unsqueeze(-1)  # [B, T]
    else:
        log_ratio = log_r  # [B, T]
    ratio = torch.exp(log_ratio.clamp(-log_clamp, log_clamp))  # [B, T]
    metrics = {
        "ratio_mean": _mean(ratio, mask, num_tokens),
        "ratio_min": _extreme(ratio, mask, largest=False),
        "ratio_max": _extreme(ratio, mask, largest=True),
        "approx_kl_old": _mean(-log_r.clamp(-log_clamp, log_clamp), mask, num_tokens),
    }
    return ratio, metrics


def clipped_surrogate(
    ratio: torch.Tensor,  # [B, T]
    advantages: torch.Tensor,  # [B] per sequence (or [B, T] per token)
    mask: torch.Tensor,  # [B, T] bool
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: Optional[float] = None,
    num_tokens: Optional[Count] = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token ``max(-A·r, -A·clip(r, 1-low, 1+high))`` (minimised), optionally dual-clipped.

    Metrics: ``clip_frac_low`` (r < 1-low with A < 0), ``clip_frac_high`` (r > 1+high with A > 0),
    as TRL's ``clip_ratio/low_mean`` / ``high_mean``; their sum is verl's ``pg_clipfrac``;
    ``dual_clip_frac`` is verl's ``pg_clipfrac_lower`` (0 when dual clip is off).
    """
    mask = mask.bool()
    adv = advantages.detach()
    adv = adv.unsqueeze(-1) if adv.dim() == 1 else adv  # [B, 1] or [B, T]
    loss_unclipped = -adv * ratio  # [B, T]
    loss_clipped = -adv * ratio.clamp(1 - clip_low, 1 + clip_high)  # [B, T]
    loss = torch.maximum(loss_unclipped, loss_clipped)  # [B, T]
    low = (ratio < 1 - clip_low) & (adv < 0)  # [B, T]
    high = (ratio > 1 + clip_high) & (adv > 0)  # [B, T]
    dual = torch.zeros_like(mask)  # [B, T]
    if dual_clip is not None:
        if dual_clip <= 1:
            raise ValueError(f"dual_clip must be > 1 (algorithm.dual_clip), got {dual_clip}")
        bound = -adv * dual_clip  # [B, 1] or [B, T]
        dual = (adv < 0) & (loss > bound)  # [B, T]
        loss = torch.where(adv < 0, torch.minimum(loss, bound), loss)  # [B, T]
    metrics = {
        "clip_frac_low": _mean(low.to(ratio.dtype), mask, num_tokens),
        "clip_frac_high": _mean(high.to(ratio.dtype), mask, num_tokens),
        "dual_clip_frac": _mean(dual.to(ratio.dtype), mask, num_tokens),
    }
    return loss, metrics


def kl_penalty(
    logp: torch.Tensor,  # [B, T] log π_θ
    ref_logp: torch.Tensor,  # [B, T] log π_ref
    mask: torch.Tensor,  # [B, T] bool
    *,
    estimator: str = "k3",
    num_tokens: Optional[Count] = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-token estimate of KL(π_θ || π_ref) on tokens sampled from π_θ (Schulman 2020).

    With ``d = log π_ref - log π_θ``: k1 = -d, k2 = d²/2, k3 = e^d - d - 1 (d clamped to [-20, 20],
    result to [-10, 10], as verl ``kl_penalty_forward``). Metric: ``kl_ref`` (masked mean).
    """
    if estimator not in KL_ESTIMATORS:
        raise ValueError(f"estimator must be one of {KL_ESTIMATORS} (algorithm.kl_estimator), got {estimator!r}")
    d = ref_logp.detach() - logp  # [B, T]
    if estimator == "k1":
        kl = -d  # [B, T]
    elif estimator == "k2":
        kl = 0.5 * d * d  # [B, T]
    else:
        d = d.clamp(-20.0, 20.0)  # [B, T]
        kl = (torch.exp(d) - d - 1).clamp(-10.0, 10.0)  # [B, T]
    return kl, {"kl_ref": _mean(kl, mask.bool(), num_tokens)}


def aggregate_loss(
    loss_mat: torch.Tensor,  # [B, T] per-token loss
    mask: torch.Tensor,  # [B, T] bool
    mode: str,
    *,
    global_num_tokens: Count,
    global_num_seqs: Count,
    norm_length: Optional[int] = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """This micro-batch's share of the step loss under ``mode`` (see the module docstring), in
    ``loss_mat``'s dtype, at least fp32: the counts (float64 after the all-reduce) are cast to it
    (exact below 2**24 in fp32), so an fp32 loss is not promoted to float64.

    Metrics: ``local_tokens`` and ``local_seqs`` (this micro-batch's counts).
    """
    if mode not in LOSS_AGG_MODES:
        raise ValueError(f"mode must be one of {LOSS_AGG_MODES} (algorithm.loss_agg_mode), got {mode!r}")
    for name, value in (("global_num_tokens", global_num_tokens), ("global_num_seqs", global_num_seqs)):
        if float(value) < 1:
            raise ValueError(
                f"{name} is {float(value)}: the step has no response tokens (every group filtered or every "
                "mask empty); skip the update for this step"
            )
    mask = mask.bool()
    masked = torch.where(mask, loss_mat, torch.zeros_like(loss_mat))  # [B, T]
    dtype = torch.promote_types(loss_mat.dtype, torch.float32)  # never bf16 counts (inexact above 256)
    global_num_tokens, global_num_seqs = (torch.as_tensor(c, dtype=dtype, device=loss_mat.device)
                                          for c in (global_num_tokens, global_num_seqs))  # [], []
    if mode == "token-mean":
        loss = masked.sum() / global_num_tokens  # []
    elif mode == "seq-mean-token-mean":
        lengths = mask.sum(-1).clamp(min=1)  # [B]  empty rows contribute 0
        loss = (masked.sum(-1) / lengths).sum() / global_num_seqs  # []
    else:
        if norm_length is None or norm_length < 1:
            raise ValueError(
                "loss_agg_mode 'seq-mean-token-sum-norm' needs a constant length: set algorithm.loss_norm_length "
                f"(Dr.GRPO uses the rollout's max_new_tokens); got {norm_length!r}"
            )
        loss = masked.sum() / (global_num_seqs * norm_length)  # []
    tokens, seqs = local_counts(mask)
    return loss, {"local_tokens": tokens, "local_seqs": seqs}


def compute_grpo_loss(
    logp: torch.Tensor,  # [B, T] log π_θ at rollout.temperature, with grad
    old_logp: torch.Tensor,  # [B, T] log π_θold
    advantages: torch.Tensor,  # [B] (or [B, T])
    mask: torch.Tensor,  # [B, T] bool or 0/1
    cfg: AlgorithmConfig,
    *,
    global_num_tokens: Count,
    global_num_seqs: Count,
    ref_logp: Optional[torch.Tensor] = None,  # [B, T] log π_ref; required when cfg.kl_coef > 0
    entropy: Optional[torch.Tensor] = None,  # [B, T] for the entropy metric
    max_response_length: Optional[int] = None,  # fallback for cfg.loss_norm_length
    is_weights: Optional[torch.Tensor] = None,  # [B, T] engine/trainer correction (policy.rollout_correction)
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """ratio → clipped surrogate → + β·KL → aggregate: the micro-batch's share of ``-L_GRPO``.

    Metrics: ``loss``, ``pg_loss`` and ``kl_loss`` (shares: sum them over micro-batches and ranks),
    the ratio, clip and KL metrics above and ``entropy`` (means over ``global_num_tokens``).
    """
    mask = mask.bool()
    if not (logp.shape == old_logp.shape == mask.shape) or (ref_logp is not None and ref_logp.shape != mask.shape):
        raise ValueError(
            f"logp {tuple(logp.shape)}, old_logp {tuple(old_logp.shape)}, ref_logp "
            f"{None if ref_logp is None else tuple(ref_logp.shape)} and mask {tuple(mask.shape)} must all be [B, T]"
        )
    n_tok = global_num_tokens
    ratio, metrics = importance_ratio(
        logp, old_logp, mask, level=cfg.ratio_level, log_clamp=cfg.log_ratio_clamp, num_tokens=n_tok
    )  # [B, T]
    pg_mat, m = clipped_surrogate(
        ratio, advantages, mask,
        clip_low=cfg.clip_low, clip_high=cfg.clip_high, dual_clip=cfg.dual_clip, num_tokens=n_tok,
    )  # [B, T]
    metrics.update(m)
    if is_weights is not None:  # algorithm.rollout_is: the policy-gradient term only, as verl and TRL
        pg_mat = pg_mat * is_weights.detach()  # [B, T]
    agg = dict(
        mode=cfg.loss_agg_mode,
        global_num_tokens=global_num_tokens,
        global_num_seqs=global_num_seqs,
        norm_length=cfg.loss_norm_length if cfg.loss_norm_length is not None else max_response_length,
    )
    total_mat = pg_mat  # [B, T]
    if cfg.kl_coef > 0:
        if ref_logp is None:
            raise ValueError(
                "algorithm.kl_coef > 0 needs ref_logp (reference-policy log-probs); pass it or set algorithm.kl_coef=0"
            )
        kl_mat, m = kl_penalty(logp, ref_logp, mask, estimator=cfg.kl_estimator, num_tokens=n_tok)  # [B, T]
        metrics.update(m)
        if cfg.kl_ratio_correction:  # TRL use_bias_correction_kl: the KL of samples from π_old, reweighted
            kl_mat = kl_mat * ratio  # [B, T]
        total_mat = pg_mat + cfg.kl_coef * kl_mat  # [B, T]
        metrics["kl_loss"] = aggregate_loss(kl_mat.detach(), mask, **agg)[0]
    loss, _ = aggregate_loss(total_mat, mask, **agg)  # []
    metrics["pg_loss"] = aggregate_loss(pg_mat.detach(), mask, **agg)[0]
    metrics["loss"] = loss.detach()
    if entropy is not None:
        metrics["entropy"] = _mean(entropy, mask, n_tok)
    return loss, metrics
