"""Group advantages (report Eq. 1) and the DAPO zero-variance filter."""

from __future__ import annotations

import random

import pytest
from tests.policy import reference_grpo as ref
import torch

from funrl.policy.advantages import group_advantages, group_index_from_size, zero_variance_keep_mask

# Two groups of G=4: group 0 = [1, 0, 0, 1], group 1 = [0.2] * 4 (zero variance).
REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.2, 0.2, 0.2, 0.2], dtype=torch.float64)
GROUPS = group_index_from_size(8, 4)


def test_group_index_from_size_is_prompt_major():
    assert GROUPS.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="10 rows cannot be split into groups of 4"):
        group_index_from_size(10, 4)


def test_group_std_by_hand():
    # group 0: mean 0.5, deviations ±0.5, unbiased var = 4·0.25/3 = 1/3, std = 0.577350
    # A = ±0.5 / 0.577350 = ±0.866025; group 1: all equal -> exactly 0
    adv, m = group_advantages(REWARDS, GROUPS, std_mode="group", eps=0.0)
    a = 0.5 / (1 / 3) ** 0.5
    assert adv.tolist() == pytest.approx([a, -a, -a, a, 0, 0, 0, 0], abs=1e-12)
    assert (adv[4:] == 0).all()
    assert m["zero_variance_group_frac"].item() == 0.5  # 1 of 2 groups
    assert m["num_groups"].item() == 2
    assert m["adv_max"].item() == pytest.approx(a)
    assert m["adv_mean"].item() == pytest.approx(0.0, abs=1e-12)
    # reward mean = (1+0+0+1+4·0.2)/8 = 2.8/8 = 0.35
    assert m["reward_mean"].item() == pytest.approx(0.35)
    assert not any(t.requires_grad for t in m.values())


def test_eps_is_added_to_std():
    # A = 0.5 / (0.577350 + 0.1) = 0.738173
    adv, _ = group_advantages(REWARDS, GROUPS, std_mode="group", eps=0.1)
    assert adv[0].item() == pytest.approx(0.5 / ((1 / 3) ** 0.5 + 0.1))


def test_batch_std_by_hand():
    # batch mean 0.35; squared deviations 2·0.65² + 2·0.35² + 4·0.15² = 0.845 + 0.245 + 0.09 = 1.18
    # unbiased var = 1.18/7 = 0.168571, std = 0.410574; A = ±0.5/0.410574 = ±1.217807
    adv, _ = group_advantages(REWARDS, GROUPS, std_mode="batch", eps=0.0)
    a = 0.5 / (1.18 / 7) ** 0.5
    assert adv.tolist() == pytest.approx([a, -a, -a, a, 0, 0, 0, 0], abs=1e-12)


def test_no_std_scaling_dr_grpo():
    adv, _ = group_advantages(REWARDS, GROUPS, std_mode="none")
    assert adv.tolist() == pytest.approx([0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0], abs=1e-12)


def test_group_of_one_gets_zero():
    # groups: {7: [3.0]}, {2: [1.0, 2.0]}; the singleton has no baseline -> 0 (verl would give 3.0)
    rewards = torch.tensor([3.0, 1.0, 2.0])
    adv, m = group_advantages(rewards, torch.tensor([7, 2, 2]), eps=0.0)
    # group 2: mean 1.5, unbiased std = sqrt(2·0.25/1) = 0.707107; A = ∓0.5/0.707107 = ∓0.707107
    assert adv.tolist() == pytest.approx([0.0, -0.707107, 0.707107], abs=1e-6)
    assert m["zero_variance_group_frac"].item() == 0.5  # the singleton counts as zero-variance


def test_group_ids_need_not_be_contiguous():
    # interleaved ids give the same per-row advantages as the sorted layout
    perm = torch.tensor([4, 0, 5, 1, 6, 2, 7, 3])
    adv, _ = group_advantages(REWARDS[perm], GROUPS[perm], eps=0.0)
    expected, _ = group_advantages(REWARDS, GROUPS, eps=0.0)
    assert torch.allclose(adv, expected[perm])


def test_zero_variance_filter():
    keep, m = zero_variance_keep_mask(REWARDS, GROUPS)
    assert keep.tolist() == [True] * 4 + [False] * 4
    assert m["filter_kept_rows"].item() == 4
    assert m["filter_dropped_groups"].item() == 1


def test_bad_rewards_are_named():
    with pytest.raises(ValueError, match="reward of row 1 is nan"):
        group_advantages(torch.tensor([1.0, float("nan")]), torch.tensor([0, 0]))
    with pytest.raises(ValueError, match="1-D"):
        group_advantages(torch.ones(2, 2), torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="algorithm.adv_std"):
        group_advantages(REWARDS, GROUPS, std_mode="rank")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("std_mode", ["group", "batch", "none"])
def test_matches_loop_reference(seed, std_mode):
    rng = random.Random(seed)
    groups, rewards = [], []
    for g in range(rng.randint(3, 7)):
        size = rng.choice([1, 2, 3, 5, 8])  # ragged groups, singletons included
        tie = rng.random() < 0.3  # some zero-variance groups
        for _ in range(size):
            groups.append(g * 3 + 1)  # sparse ids
            rewards.append(0.5 if tie else rng.choice([0.0, 0.25, 1.0, rng.uniform(-1, 2)]))
    order = list(range(len(groups)))
    rng.shuffle(order)  # rows of a group need not be adjacent
    groups = [groups[i] for i in order]
    rewards = [rewards[i] for i in order]
    adv, _ = group_advantages(torch.tensor(rewards, dtype=torch.float64), torch.tensor(groups), std_mode=std_mode)
    expected = ref.advantages(rewards, groups, std_mode, eps=1e-6)
    assert adv.tolist() == pytest.approx(expected, abs=1e-9)
