"""Engine vs trainer: the mismatch metrics and algorithm.rollout_is weights worked by hand, the
weights' effect on the loss and its gradient, and the worker path (engine = trainer gives 1s)."""

from __future__ import annotations

import math

import pytest
import torch

from funrl.errors import ConfigValueError
from funrl.policy.config import AlgorithmConfig
from funrl.policy.loss import compute_grpo_loss
from funrl.policy.rollout_correction import rollout_correction

F64 = torch.float64
# one row, two response tokens and one pad: d = log π_old − log π_engine = [0.5, −1.0]
OLD = torch.tensor([[-1.0, -2.0, -0.5]], dtype=F64)
ENG = torch.tensor([[-1.5, -1.0, -3.0]], dtype=F64)
MASK = torch.tensor([[True, True, False]])


def test_mismatch_metrics_by_hand():
    w, m = rollout_correction(OLD, ENG, MASK)  # mode none: metrics only
    assert w is None
    assert float(m["rollout_logp_diff_mean"]) == pytest.approx(0.75)  # (0.5 + 1.0) / 2
    assert float(m["rollout_logp_diff_max"]) == pytest.approx(1.0)
    # k3: e^d − 1 − d = (e^0.5 − 1.5) and (e^−1 − 0) -> 0.148721, 0.367879; mean 0.258300
    assert float(m["rollout_kl"]) == pytest.approx(((math.exp(0.5) - 1.5) + math.exp(-1.0)) / 2)


@pytest.mark.parametrize("mode, level, cap, want, capped", [
    ("tis", "token", 1.5, [1.5, math.exp(-1.0), 0.0], 0.5),  # e^0.5 = 1.6487 truncated at 1.5
    ("mis", "token", 1.5, [0.0, math.exp(-1.0), 0.0], 0.5),  # ... dropped
    ("tis", "sequence", 1.5, [math.exp(-0.5)] * 2 + [0.0], 0.0),  # Σd = −0.5 for every token of the row
    ("mis", "sequence", 1.5, [math.exp(-0.5)] * 2 + [0.0], 0.0),
    ("tis", "sequence", 0.5, [0.5, 0.5, 0.0], 1.0),  # e^−0.5 = 0.6065 > 0.5
    ("mis", "sequence", 0.5, [0.0, 0.0, 0.0], 1.0),
])
def test_weights_by_hand(mode, level, cap, want, capped):
    w, m = rollout_correction(OLD, ENG, MASK, mode=mode, level=level, cap=cap)
    assert w[0].tolist() == pytest.approx(want)
    assert float(m["rollout_is_capped_frac"]) == pytest.approx(capped)
    assert float(m["rollout_is_weight_mean"]) == pytest.approx(sum(want) / 2)


def test_no_overflow_for_a_huge_log_ratio():
    w, _ = rollout_correction(torch.tensor([[0.0]]), torch.tensor([[-1e4]]), torch.tensor([[True]]), mode="tis", cap=3.0)
    assert w.tolist() == [[3.0]]


def test_weights_scale_the_policy_gradient_and_not_the_kl():
    """On-policy (π_old = π_θ, ratio 1, no clipping): the token-mean loss is mean_t(−A·w_t) + β·KL,
    so d loss / d log π_t = (−A·w_t + β·dKL_t) / N."""
    cfg = AlgorithmConfig(kl_coef=0.1, loss_agg_mode="token-mean")
    logp = torch.tensor([[-1.0, -2.0, -0.5]], dtype=F64, requires_grad=True)
    ref = torch.tensor([[-1.2, -1.5, 0.0]], dtype=F64)
    adv = torch.tensor([2.0], dtype=F64)
    w = torch.tensor([[1.5, 0.25, 0.0]], dtype=F64)
    common = dict(global_num_tokens=2, global_num_seqs=1, ref_logp=ref)
    loss_w, _ = compute_grpo_loss(logp, logp.detach(), adv, MASK, cfg, is_weights=w, **common)
    loss_w.backward()
    g_w = logp.grad.clone()
    logp.grad = None
    loss_1, _ = compute_grpo_loss(logp, logp.detach(), adv, MASK, cfg, **common)
    loss_1.backward()
    # the KL part of the gradient is the same in both; the pg part is −A·w_t/N against −A/N
    assert (g_w - logp.grad)[0, :2].tolist() == pytest.approx([-2.0 * (1.5 - 1) / 2, -2.0 * (0.25 - 1) / 2])
    assert float(loss_w.detach() - loss_1.detach()) == pytest.approx(-2.0 * ((1.5 - 1) + (0.25 - 1)) / 2)  # pg values only


def test_worker_takes_the_engines_logprobs_from_the_batch(tmp_path):
    """The engine's log-probs, off from the trainer's by a known noise: the worker's mismatch metrics
    are that noise's, and a correction whose cap nothing reaches weights by e^noise."""
    from funrl.policy.fsdp_worker import PolicyWorker
    from tests.policy.test_fsdp_worker import make_batch, old_noise, policy_cfg, tiny_llm

    torch.set_num_threads(1)
    res = {}
    for mode in ("none", "tis"):
        algo = AlgorithmConfig(kl_coef=0.0, rollout_is=mode, rollout_is_cap=10.0)
        w = PolicyWorker(policy_cfg(1), algo, tiny_llm(), init_method=f"file://{tmp_path}/rendezvous_{mode}")
        try:
            batch = make_batch()
            trainer = w.compute_logprobs(batch, "old")
            batch.rollout_logprobs = [t - n for t, n in zip(trainer, old_noise())]  # d = old − engine = noise
            res[mode] = w.update(batch)
        finally:
            w.close()
    noise = torch.cat(old_noise()).double()
    none, tis = res["none"], res["tis"]
    assert none["rollout_logp_diff_mean"] == pytest.approx(float(noise.abs().mean()), rel=1e-4)
    assert none["rollout_logp_diff_max"] == pytest.approx(float(noise.abs().max()), rel=1e-4)
    assert none["rollout_kl"] == pytest.approx(float((noise.expm1() - noise).mean()), rel=1e-3)
    assert "rollout_is_weight_mean" not in none
    assert tis["rollout_is_weight_mean"] == pytest.approx(float(noise.exp().mean()), rel=1e-4)
    assert tis["rollout_is_capped_frac"] == 0.0 and tis["loss"] != pytest.approx(none["loss"])


def test_bad_settings_name_their_key():
    with pytest.raises(ConfigValueError, match="algorithm.rollout_is"):
        AlgorithmConfig(rollout_is="yes")
    with pytest.raises(ConfigValueError, match="algorithm.rollout_is_cap"):
        AlgorithmConfig(rollout_is_cap=0)
