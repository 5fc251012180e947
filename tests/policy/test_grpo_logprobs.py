"""Per-token log-probs and entropy at the rollout temperature."""

from __future__ import annotations

import math

import pytest
from tests.policy import reference_grpo as ref
import torch

from funrl.policy.logprobs import token_logprobs

LN3 = math.log(3.0)


def test_by_hand_with_temperature():
    # x = logits / T = [0, 2·ln3] / 2 = [0, ln3] -> softmax [1/4, 3/4]
    # log π(1) = ln 0.75 = -0.287682;  log π(0) = ln 0.25 = -1.386294
    # entropy = 0.25·ln4 + 0.75·ln(4/3) = 0.346574 + 0.215762 = 0.562335
    logits = torch.tensor([[[0.0, 2 * LN3], [0.0, 2 * LN3]]], dtype=torch.float64)  # [1, 2, 2]
    labels = torch.tensor([[1, 0]])
    logp, ent = token_logprobs(logits, labels, temperature=2.0, with_entropy=True)
    assert logp[0].tolist() == pytest.approx([math.log(0.75), math.log(0.25)], abs=1e-12)
    assert ent[0].tolist() == pytest.approx([0.562335, 0.562335], abs=1e-6)
    assert not ent.requires_grad


def test_temperature_zero_means_raw_logits():
    # greedy rollouts report log-softmax of the raw logits (rollout protocol): [0, ln3] -> ln 0.75
    logits = torch.tensor([[[0.0, LN3]]])
    logp, ent = token_logprobs(logits, torch.tensor([[1]]), temperature=0.0)
    assert logp.item() == pytest.approx(math.log(0.75), abs=1e-6)
    assert ent is None


def test_bf16_logits_give_fp32_logprobs():
    logits = torch.randn(2, 3, 11).to(torch.bfloat16)
    labels = torch.randint(0, 11, (2, 3))
    logp, _ = token_logprobs(logits, labels)
    assert logp.dtype == torch.float32
    expected = torch.log_softmax(logits.float(), -1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(logp, expected, atol=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_matches_loop_reference_and_chunking(seed):
    g = torch.Generator().manual_seed(seed)
    B, T, V = 3, 5, 7
    logits = torch.randn(B, T, V, generator=g, dtype=torch.float64) * 3
    labels = torch.randint(0, V, (B, T), generator=g)
    temp = [0.7, 1.0, 1.3, 0.0, 2.0][seed]
    logp, ent = token_logprobs(logits, labels, temperature=temp, with_entropy=True, chunk_rows=4)
    logp1, ent1 = token_logprobs(logits, labels, temperature=temp, with_entropy=True, chunk_rows=1)
    assert torch.equal(logp, logp1) and torch.equal(ent, ent1)  # chunk size changes nothing
    for b in range(B):
        for t in range(T):
            row = logits[b, t].tolist()
            assert logp[b, t].item() == pytest.approx(ref.token_logprob(row, int(labels[b, t]), temp), abs=1e-12)
            assert ent[b, t].item() == pytest.approx(ref.entropy(row, temp), abs=1e-12)


def test_gradcheck():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 5, (2, 3), generator=g)
    assert torch.autograd.gradcheck(lambda x: token_logprobs(x, labels, temperature=0.8, chunk_rows=4)[0], (logits,))


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match=r"not -100"):
        token_logprobs(torch.zeros(1, 2, 4), torch.tensor([[1, -100]]))
    with pytest.raises(ValueError, match="vocab dimension"):
        token_logprobs(torch.zeros(1, 2, 4), torch.tensor([[1]]))
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        token_logprobs(torch.zeros(1, 1, 4), torch.tensor([[1]]), temperature=-1.0)
