"""funrl equals verl and TRL (to 1e-6) wherever they define the same quantity.

Each ``verl_*`` / ``trl_*`` function below is a slow transcription of the published formula, written
here from reading the source (not copied), citing the function it follows:

- verl: volcengine/verl @ b178a3cd (``agg_loss``'s Dr.GRPO branch as in verl 0.9.1), ``verl/trainer/ppo/core_algos.py`` (``compute_grpo_outcome_advantage``,
  ``agg_loss``, ``compute_policy_loss_vanilla``, ``compute_policy_loss_gspo``, ``kl_penalty_forward``) and
  ``verl/utils/torch_functional.py`` (``logprobs_from_logits_v2``, ``entropy_from_logits``, ``masked_mean``);
  the KL loss is added in ``verl/workers/actor/dp_actor.py`` (``policy_loss + kl_loss * kl_loss_coef``).
- TRL: huggingface/trl @ f2cd5771, ``trl/trainer/grpo_trainer.py`` (``_generate_and_score_completions``
  advantages, ``_compute_loss``) and ``trl/trainer/utils.py`` (``nanstd``, ``selective_log_softmax``,
  ``entropy_from_logits``).
"""

from __future__ import annotations

import math

import pytest
import torch
from tests.policy.test_grpo_loss import random_batch

from funrl.policy.advantages import group_advantages
from funrl.policy.config import AlgorithmConfig
from funrl.policy.logprobs import token_logprobs
from funrl.policy.loss import aggregate_loss, compute_grpo_loss, kl_penalty, local_counts

F64 = torch.float64
SEEDS = range(5)


def _mmean(x, m):  # verl masked_mean: Σ x·m / (Σ m + 1e-8)
    return (torch.where(m, x, 0.0)).sum() / (m.sum() + 1e-8)


# ----------------------------------------------------------------------------- verl transcriptions


def verl_grpo_advantage(scores, index, eps=1e-6, norm_by_std=True):
    """compute_grpo_outcome_advantage: per-index torch.mean / torch.std (unbiased); a singleton gets mean 0, std 1."""
    out = scores.clone()
    for g in set(index.tolist()):
        rows = (index == g).nonzero().flatten()
        mean, std = (torch.tensor(0.0, dtype=F64), torch.tensor(1.0, dtype=F64)) if len(rows) == 1 else (
            scores[rows].mean(), scores[rows].std())
        out[rows] = (scores[rows] - mean) / (std + eps) if norm_by_std else scores[rows] - mean
    return out


def verl_agg_loss(mat, mask, mode, batch_num_tokens, global_batch_size, loss_scale_factor=None):
    """agg_loss with dp_size = 1 and the global batch info passed in."""
    m = mask.to(mat.dtype)
    if mode == "token-mean":
        return (mat * m).sum() / batch_num_tokens
    if mode == "seq-mean-token-mean":
        seq = (mat * m).sum(-1) / (m.sum(-1) + 1e-8)
        return (seq * (m.sum(-1) > 0)).sum() / global_batch_size
    # seq-mean-token-sum-norm: verl 0.9.1 divides the summed sequence losses by the global sequence
    # count times the constant (older verl, b178a3cd, divided by the constant alone)
    return (mat * m).sum(-1).sum() / (global_batch_size * loss_scale_factor)


def verl_vanilla(old, logp, adv, mask, clip_low, clip_high, clip_c, mode, n_tok, n_seq):
    """compute_policy_loss_vanilla (dual clip always on in verl, clip_ratio_c default 3.0)."""
    neg_kl = torch.clamp(logp - old, -20.0, 20.0)
    ratio = torch.exp(neg_kl)
    a = adv.unsqueeze(-1)
    l1, l2 = -a * ratio, -a * torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
    clip1 = torch.maximum(l1, l2)
    l3 = -a * clip_c
    loss = torch.where(a < 0, torch.minimum(l3, clip1), clip1)
    metrics = {
        "pg_clipfrac": _mmean(torch.gt(l2, l1).to(F64), mask),
        "ppo_kl": _mmean(-neg_kl, mask),
        "pg_clipfrac_lower": _mmean((torch.gt(clip1, l3) & (a < 0)).to(F64), mask),
    }
    return verl_agg_loss(loss, mask, mode, n_tok, n_seq), metrics


def verl_gspo(old, logp, adv, mask, clip_low, clip_high, n_seq):
    """compute_policy_loss_gspo: sg[s_i]·π/sg[π], log clamped at max 10, always seq-mean-token-mean."""
    m = mask.to(F64)
    log_s = ((logp - old) * m).sum(-1) / m.sum(-1).clamp(min=1)
    log_ratio = torch.clamp(logp - logp.detach() + log_s.detach().unsqueeze(-1), max=10.0)
    ratio = torch.exp(log_ratio)
    a = adv.unsqueeze(-1)
    loss = torch.maximum(-a * ratio, -a * torch.clamp(ratio, 1 - clip_low, 1 + clip_high))
    return verl_agg_loss(loss, mask, "seq-mean-token-mean", None, n_seq)


def verl_kl(logp, ref, kind):
    """kl_penalty_forward: k1 "kl", k2 "mse", k3 "low_var_kl" (clamps as in verl)."""
    if kind == "k1":
        return logp - ref
    if kind == "k2":
        return 0.5 * (logp - ref).square()
    kl = torch.clamp(ref - logp, -20, 20)
    return torch.clamp(torch.exp(kl) - kl - 1, -10, 10)


# ----------------------------------------------------------------------------- TRL transcriptions


def trl_advantages(rewards, G, scale, eps=1e-4):
    """_generate_and_score_completions (sum_then_normalize): group mean, nanstd (Bessel) by group or batch."""
    grouped = rewards.view(-1, G)
    mean = grouped.mean(1).repeat_interleave(G)
    std = grouped.std(1).repeat_interleave(G) if scale == "group" else rewards.std().expand_as(rewards)
    adv = rewards - mean
    return adv / (std + eps) if scale != "none" else adv


def trl_loss(logp, old, ref, adv, mask, *, loss_type, level, eps_low, eps_high, beta, max_len=None):
    """_compute_loss for grpo / bnpo / dr_grpo / dapo (one process, no gradient accumulation)."""
    m = mask.to(F64)
    log_ratio = logp - old
    if level == "sequence":
        log_w = ((log_ratio * m).sum(-1) / m.sum(-1).clamp(min=1.0)).unsqueeze(-1)  # (B, 1)
    else:
        log_w = log_ratio
    coef_1 = torch.exp(log_w)
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    a = adv.unsqueeze(1)
    per_tok = -torch.min(coef_1 * a, coef_2 * a)
    if beta != 0.0:
        per_tok = per_tok + beta * (torch.exp(ref - logp) - (ref - logp) - 1)  # k3, unclamped
    if loss_type == "grpo":
        loss = ((per_tok * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()
    elif loss_type in ("bnpo", "dapo"):  # dapo: / num_items_in_batch · num_processes(=1)
        loss = (per_tok * m).sum() / m.sum().clamp(min=1.0)
    else:  # dr_grpo
        loss = (per_tok * m).sum() / (per_tok.size(0) * max_len)
    low = ((coef_1 < 1 - eps_low) & (a < 0)).to(F64).expand_as(m)
    high = ((coef_1 > 1 + eps_high) & (a > 0)).to(F64).expand_as(m)
    return loss, {"low_mean": (low * m).sum() / m.sum(), "high_mean": (high * m).sum() / m.sum()}


# ----------------------------------------------------------------------------- tests


def full_batch(seed):
    """random_batch without its empty row (TRL's "grpo" mean counts every row; verl skips empty ones)."""
    logp, old, ref, adv, mask = random_batch(seed)
    mask[3, :2] = True
    return logp, old, ref, adv, mask


@pytest.mark.parametrize("seed", SEEDS)
def test_advantages_equal_verl_and_trl(seed):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.rand(24, generator=g, dtype=F64).round(decimals=1)  # ties make some zero-variance groups
    index = torch.arange(24) // 4
    for norm in (True, False):
        ours, _ = group_advantages(rewards, index, std_mode="group" if norm else "none", eps=1e-6)
        assert torch.allclose(ours, verl_grpo_advantage(rewards, index, 1e-6, norm), atol=1e-6, rtol=0)
    for scale in ("group", "batch", "none"):
        ours, _ = group_advantages(rewards, index, std_mode=scale, eps=1e-4)
        assert torch.allclose(ours, trl_advantages(rewards, 4, scale), atol=1e-6, rtol=0)


def test_singleton_departs_from_verl_as_documented():
    rewards, index = torch.tensor([0.7], dtype=F64), torch.tensor([0])
    assert verl_grpo_advantage(rewards, index).item() == pytest.approx(0.7, abs=1e-5)  # verl: A = R
    assert group_advantages(rewards, index)[0].item() == 0.0  # funrl: no baseline, A = 0


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean"])
def test_vanilla_loss_equals_verl(seed, mode):
    logp, old, ref, adv, mask = random_batch(seed)
    n_tok, n_seq = local_counts(mask)
    cfg = AlgorithmConfig(clip_low=0.2, clip_high=0.28, dual_clip=3.0, loss_agg_mode=mode, kl_coef=0.05,
                          kl_estimator=["k1", "k2", "k3"][seed % 3])
    x, y = logp.clone().requires_grad_(), logp.clone().requires_grad_()
    ours, m = compute_grpo_loss(x, old, adv, mask, cfg, ref_logp=ref, global_num_tokens=n_tok, global_num_seqs=n_seq)
    pg, vm = verl_vanilla(old, y, adv, mask, 0.2, 0.28, 3.0, mode, n_tok, n_seq)
    theirs = pg + verl_agg_loss(verl_kl(y, ref, cfg.kl_estimator), mask, mode, n_tok, n_seq) * cfg.kl_coef
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    assert torch.allclose(torch.autograd.grad(ours, x)[0], torch.autograd.grad(theirs, y)[0], atol=1e-6)
    assert (m["clip_frac_low"] + m["clip_frac_high"]).item() == pytest.approx(vm["pg_clipfrac"].item(), abs=1e-6)
    assert m["dual_clip_frac"].item() == pytest.approx(vm["pg_clipfrac_lower"].item(), abs=1e-6)
    assert m["approx_kl_old"].item() == pytest.approx(vm["ppo_kl"].item(), abs=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_gspo_equals_verl_and_trl(seed):
    logp, old, ref, adv, mask = full_batch(seed)
    n_tok, n_seq = local_counts(mask)
    cfg = AlgorithmConfig(ratio_level="sequence", clip_low=3e-4, clip_high=4e-4, kl_coef=0.0)  # GSPO paper's clips
    x, y, z = (logp.clone().requires_grad_() for _ in range(3))
    ours, _ = compute_grpo_loss(x, old, adv, mask, cfg, global_num_tokens=n_tok, global_num_seqs=n_seq)
    theirs_verl = verl_gspo(old, y, adv, mask, 3e-4, 4e-4, n_seq)
    theirs_trl, _ = trl_loss(z, old, ref, adv, mask, loss_type="grpo", level="sequence", eps_low=3e-4,
                             eps_high=4e-4, beta=0.0)
    g_ours = torch.autograd.grad(ours, x)[0]
    for theirs, inp in ((theirs_verl, y), (theirs_trl, z)):
        assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
        assert torch.allclose(g_ours, torch.autograd.grad(theirs, inp)[0], atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    "loss_type, mode, level",
    [("grpo", "seq-mean-token-mean", "token"), ("bnpo", "token-mean", "token"), ("dapo", "token-mean", "token"),
     ("dr_grpo", "seq-mean-token-sum-norm", "token"), ("grpo", "seq-mean-token-mean", "sequence")],
)
def test_loss_equals_trl(seed, loss_type, mode, level):
    logp, old, ref, adv, mask = full_batch(seed)
    n_tok, n_seq = local_counts(mask)
    cfg = AlgorithmConfig(clip_low=0.2, clip_high=0.28, kl_coef=0.04, kl_estimator="k3", loss_agg_mode=mode,
                          ratio_level=level, loss_norm_length=12)
    x, y = logp.clone().requires_grad_(), logp.clone().requires_grad_()
    ours, m = compute_grpo_loss(x, old, adv, mask, cfg, ref_logp=ref, global_num_tokens=n_tok, global_num_seqs=n_seq)
    theirs, tm = trl_loss(y, old, ref, adv, mask, loss_type=loss_type, level=level, eps_low=0.2, eps_high=0.28,
                          beta=0.04, max_len=12)
    assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
    assert torch.allclose(torch.autograd.grad(ours, x)[0], torch.autograd.grad(theirs, y)[0], atol=1e-6)
    if level == "token":
        assert m["clip_frac_low"].item() == pytest.approx(tm["low_mean"].item(), abs=1e-6)
        assert m["clip_frac_high"].item() == pytest.approx(tm["high_mean"].item(), abs=1e-6)


@pytest.mark.parametrize("kind", ["k1", "k2", "k3"])
def test_kl_estimators_equal_verl(kind):
    logp, _, ref, _, mask = random_batch(0)
    ref = ref.clone()
    ref[0, 0] = logp[0, 0] + 25.0  # far outside: exercises both k3 clamps
    ours, _ = kl_penalty(logp, ref, mask, estimator=kind)
    assert torch.allclose(ours, verl_kl(logp, ref, kind), atol=1e-6)


def test_dr_grpo_norm_equals_verl():
    # by hand: loss [[1, 2], [3, 0]], mask [[1, 1], [1, 0]], L = 2: (1 + 2 + 3) / (2 seqs · 2) = 1.5
    mat, m = torch.tensor([[1.0, 2.0], [3.0, 0.0]]), torch.tensor([[1, 1], [1, 0]]).bool()
    ours, _ = aggregate_loss(mat, m, "seq-mean-token-sum-norm", global_num_tokens=3, global_num_seqs=2, norm_length=2)
    assert ours.item() == 1.5 == verl_agg_loss(mat, m, "seq-mean-token-sum-norm", 3, 2, loss_scale_factor=2).item()
    logp, _, _, _, mask = random_batch(1)
    n_tok, n_seq = local_counts(mask)
    ours, _ = aggregate_loss(logp, mask, "seq-mean-token-sum-norm", global_num_tokens=n_tok, global_num_seqs=n_seq,
                             norm_length=12)
    verl = verl_agg_loss(logp, mask, "seq-mean-token-sum-norm", n_tok, n_seq, loss_scale_factor=12)
    assert ours.item() == pytest.approx(verl.item(), abs=1e-6)


@pytest.mark.parametrize("temperature", [0.6, 1.0])
def test_logprobs_and_entropy_equal_verl_and_trl(temperature):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 6, 50, generator=g, dtype=F64) * 4
    labels = torch.randint(0, 50, (3, 6), generator=g)
    x = logits / temperature  # both divide the logits by the temperature first (dp_actor, TRL)
    verl_logp = x.gather(-1, labels.unsqueeze(-1)).squeeze(-1) - torch.stack([torch.logsumexp(r, -1) for r in x])
    verl_ent = torch.logsumexp(x, -1) - (torch.softmax(x, -1) * x).sum(-1)
    trl_ent = -(torch.exp(torch.log_softmax(x, -1)) * torch.log_softmax(x, -1)).sum(-1)
    for dtype in (F64, torch.float32):  # fp32 logits, as in training, against the fp64 values
        ours, ent = token_logprobs(logits.to(dtype), labels, temperature=temperature, with_entropy=True, chunk_rows=5)
        assert torch.allclose(ours.double(), verl_logp, atol=1e-5 if dtype == torch.float32 else 1e-12)
        for theirs in (verl_ent, trl_ent):
            assert torch.allclose(ent.double(), theirs, atol=1e-6 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("correction, grad", [(False, 0.04 * (1 - math.exp(-0.5))), (True, 0.04 * 0.5)])
def test_kl_gradient_with_and_without_trls_ratio_correction(correction, grad):
    """One token, log π = -1, log π_ref = -1.5, A = 0, β = 0.04, k3 (worked by hand):
    d = -0.5, KL = e^d - d - 1 ≈ 0.1065, ∂KL/∂log π = 1 - e^d ≈ 0.3935 → gradient β·0.3935 ≈ 0.0157.
    TRL 1.16's default (use_bias_correction_kl=True) takes KL·r with r = 1 and ∂r/∂log π = 1:
    ∂/∂log π = 0.3935 + 0.1065 = 0.5 → gradient 0.0200."""
    logp = torch.tensor([[-1.0]], dtype=F64, requires_grad=True)
    cfg = AlgorithmConfig(kl_coef=0.04, kl_ratio_correction=correction)
    loss, _ = compute_grpo_loss(logp, logp.detach(), torch.zeros(1, dtype=F64), torch.ones(1, 1, dtype=torch.bool), cfg,
                                ref_logp=torch.tensor([[-1.5]], dtype=F64), global_num_tokens=1, global_num_seqs=1)
    loss.backward()
    assert logp.grad.item() == pytest.approx(grad, abs=1e-12)
    assert round(logp.grad.item(), 4) == (0.02 if correction else 0.0157)


def test_approx_kl_old_clamps_the_log_ratio_like_verls_ppo_kl():
    logp, old, _, adv, mask = random_batch(2)
    old = old.clone()
    old[0, 0] = logp[0, 0] + 30.0  # |log r| = 30 > the clamp of 20
    n_tok, n_seq = local_counts(mask)
    _, m = compute_grpo_loss(logp, old, adv, mask, AlgorithmConfig(kl_coef=0.0), global_num_tokens=n_tok,
                             global_num_seqs=n_seq)
    _, vm = verl_vanilla(old, logp, adv, mask, 0.2, 0.2, 3.0, "token-mean", n_tok, n_seq)
    assert bool(mask[0, 0]) and m["approx_kl_old"].item() == pytest.approx(vm["ppo_kl"].item(), abs=1e-6)
