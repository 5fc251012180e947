"""The reward pool's split: whole GRPO groups per worker (a plugin may look at a group together)."""

from __future__ import annotations

import pytest

from funrl.train.roles import group_bounds


@pytest.mark.parametrize("groups, size, workers", [(5, 4, 3), (2, 8, 3), (7, 1, 2), (6, 2, 6), (1, 4, 1)])
def test_every_group_lies_in_one_workers_range_and_rows_are_covered_once(groups, size, workers):
    ids = [g for g in range(groups) for _ in range(size)]
    bounds = group_bounds(ids, workers)
    assert len(bounds) == workers
    assert [r for a, b in bounds for r in range(a, b)] == list(range(len(ids)))  # each row once, in order
    owner = {}
    for w, (a, b) in enumerate(bounds):
        for r in range(a, b):
            assert owner.setdefault(ids[r], w) == w  # a group never spans two workers
    counts = [len({ids[r] for r in range(a, b)}) for a, b in bounds]
    assert max(counts) - min(counts) <= 1  # groups spread evenly


def test_three_workers_on_five_groups_of_four_by_hand():
    ids = [g for g in range(5) for _ in range(4)]
    # 5 groups over 3 workers: group starts at rows 0, 4, 8, 12, 16 → cuts at groups 0, 1, 3
    assert group_bounds(ids, 3) == [(0, 4), (4, 12), (12, 20)]
