"""The reward pool's split: whole GRPO groups per worker (a plugin may look at a group together)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter

import pytest

from funrl.train.roles import Roles, group_bounds


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


def test_uneven_groups_by_hand():
    # groups of 3, 1, 4, 2, 2 rows (a refill or a filter leaves groups of any size); the ids need
    # not be sorted or consecutive numbers, only each group's rows adjacent
    ids = [7, 7, 7, 2, 5, 5, 5, 5, 0, 0, 9, 9]
    # group starts: rows 0, 3, 4, 8, 10 (m = 5). Worker j starts at group j·5//3: groups 0, 1, 3,
    # i.e. rows 0, 3, 8; the last range ends at n = 12. Groups per worker: {7}, {2, 5}, {0, 9}
    assert group_bounds(ids, 3) == [(0, 3), (3, 8), (8, 12)]
    # more workers than groups: worker j starts at group j·2//4 = 0, 0, 1, 1 → rows 0, 0, 3, 3
    assert group_bounds([4, 4, 4, 1], 4) == [(0, 0), (0, 3), (3, 3), (3, 4)]
    assert group_bounds([4, 4, 4, 1], 1) == [(0, 4)]


# ---------------------------------------------------------------------- 3 real reward actors on Ray
PLUGIN = '''
import json, os, uuid


def group_probe(completions, *, references, samples, group_ids, step, log_dir, **kwargs):
    """Logs the group ids of this call (one file per call, with this worker's pid) and returns the
    number each completion's text spells ("nan" returns NaN, a bad value the combiner rejects)."""
    with open(os.path.join(log_dir, uuid.uuid4().hex + ".json"), "w") as f:
        json.dump({"pid": os.getpid(), "group_ids": list(group_ids), "step": step}, f)
    for c, g in zip(completions, group_ids):  # rows and their group ids arrive aligned
        assert c == "nan" or int(c) // 10 == g, (c, g)
    return [float(c) for c in completions]
'''


@pytest.fixture
def reward_pool(tmp_path, ray_env):
    """3 RewardWorker actors running ``group_probe``, and a bare Roles holding them.

    The real ``Roles`` starts every role's actors in ``__init__`` (encoder, rollout engine, policy
    ranks); ``score_submit`` and ``score_merge`` use only ``self.rewarders``, so the test builds
    ``Roles.__new__(Roles)`` and sets just that attribute."""
    import ray

    from funrl.rewards.config import RewardsConfig, RewardSpec
    from funrl.train.workers.reward import RewardWorker

    plugin, log_dir = tmp_path / "group_probe.py", tmp_path / "calls"
    plugin.write_text(PLUGIN)
    log_dir.mkdir()
    cfg = RewardsConfig(components=[RewardSpec(name=f"{plugin}:group_probe",
                                               kwargs={"log_dir": str(log_dir)})], num_workers=3)
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    ray.init(num_cpus=1, include_dashboard=False, _temp_dir=temp, configure_logging=False)
    try:
        workers = [ray.remote(RewardWorker).options(num_cpus=0).remote(f"reward{i}", cfg, 1, False) for i in range(3)]
        roles = Roles.__new__(Roles)
        roles.rewarders = workers
        pids = ray.get([w.pid.remote() for w in workers])
        yield roles, log_dir, pids
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_each_group_reaches_exactly_one_of_three_reward_workers_whole(reward_pool):
    import ray

    from funrl.rewards.protocol import RewardError

    roles, log_dir, pids = reward_pool
    G, B = 4, 5
    ids = [g for g in range(B) for _ in range(G)]
    texts = [str(10 * g + j) for g in range(B) for j in range(G)]  # row r spells 10·group + index in group
    samples = [{"id": f"u{g}", "text": "ref"} for g in ids]
    # a naive split of the 20 rows over 3 workers (rows 0-5 | 6-12 | 13-19) would cut groups 1 and 3
    parts = ray.get(roles.score_submit(texts, samples, ids, step=3))
    merged = roles.score_merge(parts)
    assert merged["total"] == [float(t) for t in texts]  # row order kept
    assert merged["components"]["group_probe"] == [float(t) for t in texts]
    calls = [json.loads(p.read_text()) for p in log_dir.iterdir()]
    assert len(calls) == 3 and sorted(c["pid"] for c in calls) == sorted(pids)  # one call on each worker
    assert {c["step"] for c in calls} == {3}
    seen = Counter(g for c in calls for g in set(c["group_ids"]))
    assert seen == Counter(range(B))  # every group went to exactly one worker
    for c in calls:
        assert all(n == G for n in Counter(c["group_ids"]).values())  # and arrived whole
    assert sorted(len(set(c["group_ids"])) for c in calls) == [1, 2, 2]

    # an error names the row of the whole step (the worker's offset), not of its own slice
    bad = list(texts)
    bad[13] = "nan"  # group 3 → the third worker, rows 12..19 (its local index 1)
    with pytest.raises(RewardError, match=r"that is row 13 of step 3's batch \(reward worker reward2\)"):
        ray.get(roles.score_submit(bad, samples, ids, step=3))
