"""Ratio, clipped surrogate, KL, aggregation and compute_grpo_loss: by hand, vs the loop reference,
gradcheck, and micro-batch invariance."""

from __future__ import annotations

import dataclasses
import math

import pytest
from tests.policy import reference_grpo as ref
import torch

from funrl.policy.config import AlgorithmConfig
from funrl.policy.loss import (
    aggregate_loss,
    clipped_surrogate,
    compute_grpo_loss,
    importance_ratio,
    kl_penalty,
    local_counts,
)

F64 = torch.float64
LN = math.log


def t(rows, dtype=F64, grad=False):
    return torch.tensor(rows, dtype=dtype, requires_grad=grad)


# ----------------------------------------------------------------------------- ratio


def test_token_ratio_by_hand():
    # log r = [ln 1.5, ln 0.5, (masked)] -> r = [1.5, 0.5]; mean 1.0, min 0.5, max 1.5
    # approx_kl_old = mean(-ln 1.5, -ln 0.5) = (-0.405465 + 0.693147)/2 = 0.143841
    logp, old = t([[LN(1.5), LN(0.5), 9.0]]), t([[0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False]])
    ratio, m = importance_ratio(logp, old, mask)
    assert ratio[0, :2].tolist() == pytest.approx([1.5, 0.5])
    assert (m["ratio_mean"].item(), m["ratio_min"].item(), m["ratio_max"].item()) == pytest.approx((1.0, 0.5, 1.5))
    assert m["approx_kl_old"].item() == pytest.approx(0.143841, abs=1e-6)


def test_sequence_ratio_gspo_by_hand():
    # log s = (ln 1.5 + ln 0.5)/2 = ln(0.75)/2 -> s = sqrt(0.75) = 0.866025 on every token
    # d r_t / d log π_t = s (stop-gradient form), d r_t / d log π_u = 0 for u != t
    logp, old = t([[LN(1.5), LN(0.5), 0.0]], grad=True), t([[0.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False]])
    ratio, _ = importance_ratio(logp, old, mask, level="sequence")
    assert ratio[0, :2].tolist() == pytest.approx([0.866025, 0.866025], abs=1e-6)
    ratio[0, 0].backward()
    assert logp.grad[0].tolist() == pytest.approx([0.866025, 0.0, 0.0], abs=1e-6)


def test_log_ratio_is_clamped():
    # log r = 30 is clamped to 20 (and -30 to -20) before exp
    ratio, _ = importance_ratio(t([[30.0, -30.0]]), t([[0.0, 0.0]]), torch.ones(1, 2, dtype=torch.bool))
    assert ratio[0].tolist() == pytest.approx([math.exp(20), math.exp(-20)])


# ----------------------------------------------------------------------------- surrogate

RATIO = t([[1.5, 0.5, 1.1, 0.7, 4.0]])
ADV = t([[1.0, 1.0, -2.0, -2.0, -2.0]])
MASK5 = torch.ones(1, 5, dtype=torch.bool)


def test_clipped_surrogate_by_hand():
    # clip to [0.8, 1.28] (DAPO clip-higher); loss = max(-A·r, -A·clip(r))
    # t0 r=1.5 A=1 : max(-1.5, -1.28) = -1.28   (clipped high)
    # t1 r=0.5 A=1 : max(-0.5, -0.8)  = -0.5
    # t2 r=1.1 A=-2: max(2.2, 2.2)    = 2.2
    # t3 r=0.7 A=-2: max(1.4, 1.6)    = 1.6     (clipped low)
    # t4 r=4.0 A=-2: max(8.0, 2.56)   = 8.0
    loss, m = clipped_surrogate(RATIO, ADV, MASK5, clip_low=0.2, clip_high=0.28)
    assert loss[0].tolist() == pytest.approx([-1.28, -0.5, 2.2, 1.6, 8.0])
    assert m["clip_frac_high"].item() == pytest.approx(1 / 5)
    assert m["clip_frac_low"].item() == pytest.approx(1 / 5)
    assert m["dual_clip_frac"].item() == 0


def test_dual_clip_by_hand():
    # c = 3: A<0 tokens are capped at -A·c = 6; only t4 (8.0) is above -> 6.0
    loss, m = clipped_surrogate(RATIO, ADV, MASK5, clip_low=0.2, clip_high=0.28, dual_clip=3.0)
    assert loss[0].tolist() == pytest.approx([-1.28, -0.5, 2.2, 1.6, 6.0])
    assert m["dual_clip_frac"].item() == pytest.approx(1 / 5)


def test_sequence_advantages_broadcast():
    # [B] advantages equal the same value repeated over tokens
    per_seq, _ = clipped_surrogate(RATIO, t([-2.0]), MASK5)
    per_tok, _ = clipped_surrogate(RATIO, t([[-2.0] * 5]), MASK5)
    assert torch.equal(per_seq, per_tok)


# ----------------------------------------------------------------------------- KL


@pytest.mark.parametrize(
    "estimator, expected",
    [
        # d = ln π_ref - ln π = ln 0.25 - ln 0.5 = -ln 2 = -0.693147
        ("k1", 0.693147),  # -d
        ("k2", 0.240227),  # d²/2 = 0.480453/2
        ("k3", 0.193147),  # e^d - d - 1 = 0.5 + 0.693147 - 1
    ],
)
def test_kl_estimators_by_hand(estimator, expected):
    kl, m = kl_penalty(t([[LN(0.5)]]), t([[LN(0.25)]]), torch.ones(1, 1, dtype=torch.bool), estimator=estimator)
    assert kl.item() == pytest.approx(expected, abs=1e-6)
    assert m["kl_ref"].item() == pytest.approx(expected, abs=1e-6)


def test_k3_is_clamped_like_verl():
    # d = -30 -> clamped to -20: e^-20 + 20 - 1 = 19.000000002 -> clamped to 10
    kl, _ = kl_penalty(t([[30.0]]), t([[0.0]]), torch.ones(1, 1, dtype=torch.bool), estimator="k3")
    assert kl.item() == 10.0


# ----------------------------------------------------------------------------- aggregation

LOSS_MAT = t([[1.0, 2.0, 3.0], [4.0, 7.0, 7.0], [5.0, 5.0, 5.0]])
AGG_MASK = torch.tensor([[1, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=torch.bool)  # row 2 empty


def test_local_counts_skip_empty_rows():
    tokens, seqs = local_counts(AGG_MASK)
    assert (tokens.item(), seqs.item()) == (4, 2)


@pytest.mark.parametrize(
    "mode, n_tok, n_seq, expected",
    [
        ("token-mean", 4, 2, 2.5),  # (1+2+3+4)/4
        ("token-mean", 8, 2, 1.25),  # a global count of 8 tokens: 10/8
        ("seq-mean-token-mean", 4, 2, 3.0),  # (6/3 + 4/1)/2
        ("seq-mean-token-mean", 4, 4, 1.5),  # (2 + 4)/4
        ("seq-mean-token-sum-norm", 4, 2, 1.0),  # 10/(2·5), norm_length 5
    ],
)
def test_aggregation_by_hand(mode, n_tok, n_seq, expected):
    loss, _ = aggregate_loss(LOSS_MAT, AGG_MASK, mode, global_num_tokens=n_tok, global_num_seqs=n_seq, norm_length=5)
    assert loss.item() == pytest.approx(expected)


def test_aggregation_errors_are_actionable():
    with pytest.raises(ValueError, match="loss_norm_length"):
        aggregate_loss(LOSS_MAT, AGG_MASK, "seq-mean-token-sum-norm", global_num_tokens=4, global_num_seqs=2)
    with pytest.raises(ValueError, match="skip the update"):
        aggregate_loss(LOSS_MAT, AGG_MASK, "token-mean", global_num_tokens=0, global_num_seqs=0)
    with pytest.raises(ValueError, match="algorithm.loss_agg_mode"):
        aggregate_loss(LOSS_MAT, AGG_MASK, "sum", global_num_tokens=4, global_num_seqs=2)


# ----------------------------------------------------------------------------- compute_grpo_loss

# rows: r = [[1.5, 1.0], [0.5, -]], A = [1, -1], ref = logp - 0.2 (k1 = 0.2 everywhere), β = 0.1
HAND_LOGP = [[LN(1.5), 0.0], [LN(0.5), 0.0]]
HAND_MASK = torch.tensor([[True, True], [True, False]])


def _hand(cfg):
    logp = t(HAND_LOGP, grad=True)
    loss, m = compute_grpo_loss(
        logp, t([[0.0, 0.0], [0.0, 0.0]]), t([1.0, -1.0]), HAND_MASK, cfg,
        ref_logp=(logp - 0.2).detach(), global_num_tokens=3, global_num_seqs=2,
    )
    loss.backward()
    return loss, m, logp.grad


def test_compute_grpo_loss_by_hand_report_form():
    # pg: row0 t0 max(-1.5, -1.2) = -1.2 (clipped), t1 -1.0; row1 t0 max(0.5, 0.8) = 0.8 (clipped)
    # ℓ = pg + 0.1·0.2 = [-1.18, -0.98], [0.82]
    # seq-mean-token-mean: ((-1.18 - 0.98)/2 + 0.82/1)/2 = (-1.08 + 0.82)/2 = -0.13
    # pg_loss = ((-2.2)/2 + 0.8)/2 = -0.15, kl_loss = 0.2
    # grads: clipped tokens get only the KL part 0.1·(1/2)(1/2) = 0.025 (row0) and 0.1·(1/1)(1/2) = 0.05 (row1);
    #        row0 t1 unclipped: d(-A·r)/d log π = -A·r = -1, times (1/2)(1/2) -> -0.25 + 0.025 = -0.225
    cfg = AlgorithmConfig(kl_coef=0.1, kl_estimator="k1")
    loss, m, grad = _hand(cfg)
    assert loss.item() == pytest.approx(-0.13)
    assert m["pg_loss"].item() == pytest.approx(-0.15)
    assert m["kl_loss"].item() == pytest.approx(0.2)
    assert m["clip_frac_high"].item() == pytest.approx(1 / 3)
    assert m["clip_frac_low"].item() == pytest.approx(1 / 3)
    assert grad.tolist()[0] == pytest.approx([0.025, -0.225])
    assert grad.tolist()[1] == pytest.approx([0.05, 0.0])
    assert all(not v.requires_grad and v.dim() == 0 for v in m.values())


def test_compute_grpo_loss_by_hand_token_mean():
    # token-mean: (-1.18 - 0.98 + 0.82)/3 = -1.34/3 = -0.446667
    loss, _, _ = _hand(AlgorithmConfig(kl_coef=0.1, kl_estimator="k1", loss_agg_mode="token-mean"))
    assert loss.item() == pytest.approx(-1.34 / 3)


def test_kl_needs_reference():
    with pytest.raises(ValueError, match="needs ref_logp"):
        compute_grpo_loss(t([[0.0]]), t([[0.0]]), t([1.0]), torch.ones(1, 1), AlgorithmConfig(kl_coef=0.1),
                          global_num_tokens=1, global_num_seqs=1)


# ----------------------------------------------------------------------------- random batches

CONFIGS = [
    AlgorithmConfig(),  # the report's form
    AlgorithmConfig(clip_high=0.28, dual_clip=3.0, loss_agg_mode="token-mean", kl_estimator="k2"),
    AlgorithmConfig(ratio_level="sequence", kl_coef=0.0),
    AlgorithmConfig(loss_agg_mode="seq-mean-token-sum-norm", loss_norm_length=9, kl_estimator="k1"),
    AlgorithmConfig(ratio_level="sequence", dual_clip=2.0, loss_agg_mode="token-mean", clip_low=0.1),
    AlgorithmConfig(kl_coef=0.5, clip_high=0.3, dual_clip=1.5),
]


def random_batch(seed: int, B: int = 8, T: int = 9):
    """Ragged masks (lengths 1..T, plus one empty row), ratios around 1 so that some tokens clip, and
    large ratios on the first token of negative-advantage rows."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[3] = 0
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
    logp = -torch.rand(B, T, generator=g, dtype=F64) * 3  # [B, T]
    old = logp + torch.randn(B, T, generator=g, dtype=F64) * 0.3
    ref_logp = logp + torch.randn(B, T, generator=g, dtype=F64) * 0.3
    adv = torch.randn(B, generator=g, dtype=F64)
    old[:, 0] -= torch.where(adv < 0, 1.5, 0.0)  # ratio ~e^1.5 = 4.5 on A < 0 rows: the dual clip bites
    return logp, old, ref_logp, adv, mask


def _ref_loss(logp, old, ref_logp, adv, mask, cfg, n_tok, n_seq):
    return ref.loss(
        logp, old, ref_logp, adv.tolist(), mask, clip_low=cfg.clip_low, clip_high=cfg.clip_high,
        dual_clip=cfg.dual_clip, ratio_level=cfg.ratio_level, log_clamp=cfg.log_ratio_clamp, kl_coef=cfg.kl_coef,
        kl_estimator=cfg.kl_estimator, agg=cfg.loss_agg_mode, num_tokens=n_tok, num_seqs=n_seq,
        norm_length=cfg.loss_norm_length,
    )


@pytest.mark.parametrize("seed", range(6))
def test_matches_loop_reference(seed):
    cfg = CONFIGS[seed]
    logp, old, ref_logp, adv, mask = random_batch(seed)
    n_tok, n_seq = (float(c) for c in local_counts(mask))
    x = logp.clone().requires_grad_()
    loss, _ = compute_grpo_loss(x, old, adv, mask, cfg, ref_logp=ref_logp, global_num_tokens=n_tok,
                                global_num_seqs=n_seq)
    (grad,) = torch.autograd.grad(loss, x)
    y = logp.clone().requires_grad_()
    expected = _ref_loss(y, old, ref_logp, adv, mask, cfg, n_tok, n_seq)
    (expected_grad,) = torch.autograd.grad(expected, y)
    assert loss.item() == pytest.approx(expected.item(), abs=1e-12)
    assert torch.allclose(grad, expected_grad, atol=1e-12)


@pytest.mark.parametrize("cfg", CONFIGS[:5], ids=lambda c: f"{c.ratio_level}-{c.loss_agg_mode}-dual{c.dual_clip}")
def test_gradcheck(cfg):
    logp, old, ref_logp, adv, mask = random_batch(11, B=4, T=5)
    n_tok, n_seq = local_counts(mask)
    x = logp.clone().requires_grad_()

    def fn(lp):
        return compute_grpo_loss(lp, old, adv, mask, cfg, ref_logp=ref_logp, global_num_tokens=n_tok,
                                 global_num_seqs=n_seq)[0]

    assert torch.autograd.gradcheck(fn, (x,))


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.ratio_level}-{c.loss_agg_mode}")
def test_four_micro_batches_equal_whole_batch(cfg):
    logp, old, ref_logp, adv, mask = random_batch(5, B=8)
    n_tok, n_seq = local_counts(mask)
    whole_x = logp.clone().requires_grad_()
    whole, whole_m = compute_grpo_loss(whole_x, old, adv, mask, cfg, ref_logp=ref_logp, global_num_tokens=n_tok,
                                       global_num_seqs=n_seq)
    whole.backward()
    x = logp.clone().requires_grad_()
    total, sums = torch.zeros((), dtype=F64), {}
    for rows in torch.arange(8).chunk(4):  # 4 micro-batches of 2 rows, each normalised by the global counts
        part, m = compute_grpo_loss(x[rows], old[rows], adv[rows], mask[rows], cfg, ref_logp=ref_logp[rows],
                                    global_num_tokens=n_tok, global_num_seqs=n_seq)
        part.backward()
        total = total + part.detach()
        for k, v in m.items():
            sums[k] = sums.get(k, 0.0) + v
    assert total.item() == pytest.approx(whole.item(), abs=1e-12)
    assert torch.allclose(x.grad, whole_x.grad, atol=1e-12)
    for k in ("loss", "pg_loss", "clip_frac_low", "clip_frac_high", "ratio_mean", "approx_kl_old"):
        assert sums[k].item() == pytest.approx(whole_m[k].item(), abs=1e-12), k


def test_config_rejects_bad_values_with_key():
    with pytest.raises(ValueError, match=r"algorithm.dual_clip: expected null or a number > 1"):
        AlgorithmConfig(dual_clip=0.5)
    with pytest.raises(ValueError, match=r"algorithm.loss_agg_mode: expected one of"):
        dataclasses.replace(AlgorithmConfig(), loss_agg_mode="seq-sum")


def test_algorithm_section_loads_from_overrides():
    from funrl.config import load_config

    cfg = load_config(None, ["algorithm.clip_high=0.28", "algorithm.dual_clip=3.0", "algorithm.ratio_level=sequence"])
    assert isinstance(cfg.algorithm, AlgorithmConfig)
    assert (cfg.algorithm.clip_high, cfg.algorithm.dual_clip, cfg.algorithm.ratio_level) == (0.28, 3.0, "sequence")
    with pytest.raises(ValueError, match="algorithm.kl_estimator"):
        load_config(None, ["algorithm.kl_estimator=k4"])
