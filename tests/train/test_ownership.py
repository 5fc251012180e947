"""The ownership check measures: a role that keeps memory after releasing its device fails it.

The grant/wake/sleep machinery (:class:`funrl.train.ownership.Ownership`), the memory reports
(:func:`funrl.train.ownership.held_memory`, CPU bytes of the tensors a role keeps), the profiler
and :func:`funrl.profiling.check_exclusive` run for real on Ray. The two roles are small actors
written here, one that frees its buffer on ``sleep`` and one that forgets to, because the real
roles free device memory only on a GPU.
"""

from __future__ import annotations

import shutil
import tempfile

import pytest
import ray
import torch

from funrl.profiling import KeptMemory, Profiler, Violation, check_exclusive, load_records
from funrl.train.ownership import Ownership, tensor_bytes
from funrl.train.workers.base import Worker

MIB = 1 << 20


def grant(role, start, end, kept=None, limit=None):
    g = {"device": "gpu0", "role": role, "step": 0, "start": start, "end": end}
    if kept is not None:
        g.update(kept_bytes=kept, limit_bytes=limit)
    return g


def test_a_role_that_kept_more_than_the_limit_after_releasing_fails_the_check():
    clean = [grant("rollout", 0, 2, {"rollout0": 10 * MIB}, 64 * MIB), grant("policy", 2, 3, {"policy0": 0}, 64 * MIB)]
    assert check_exclusive(clean) == []
    bad = [*clean, grant("encoder", 3, 4, {"encoder0": 65 * MIB, "encoder1": 1 * MIB}, 64 * MIB)]
    (v,) = check_exclusive(bad)
    assert isinstance(v, KeptMemory) and v.actor == "encoder0" and v.kept == 65 * MIB
    assert str(v).startswith("gpu0: encoder0 (encoder, step 0) kept 65.0 MiB after releasing it at 4.000, "
                             "over the limit of 64.0 MiB")
    assert check_exclusive(bad, limit_bytes=100 * MIB) == []  # a limit passed in replaces the grants' own
    unchecked = [grant("encoder", 3, 4, {"encoder0": 65 * MIB}, None)]  # CPU run: recorded, no limit
    assert check_exclusive(unchecked) == []
    both = check_exclusive([*bad, grant("rollout", 3.5, 5)])  # and an overlap in time as well
    assert [type(x) for x in both] == [Violation, KeptMemory]


def test_tensor_bytes_counts_each_storage_once():
    a = torch.zeros(1000)
    view = a[10:20]
    b = torch.zeros(10, dtype=torch.float64)
    assert tensor_bytes([a, view, b, None, a]) == 4000 + 80


class Role(Worker):
    """Holds an 8 MiB buffer while awake; ``tidy=False`` forgets to free it on sleep."""

    def __init__(self, name: str, tidy: bool):
        super().__init__(name, 1, True)
        self.tidy, self.buf = tidy, None

    def wake(self, step=None):
        self.buf = torch.ones(2 * MIB)  # 2 Mi floats: 8 MiB
        return self.memory("cpu")

    def sleep(self, step=None):
        if self.tidy:
            self.buf = None
        return self.memory("cpu")

    def resident_tensors(self):
        return [self.buf]


def test_ownership_on_ray_catches_the_role_that_forgets_to_release(tmp_path, ray_env):
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp)
    try:
        actor = ray.remote(num_cpus=0)(Role)
        tidy, hoarder = actor.remote("rollout0", True), actor.remote("policy0", False)
        names = {tidy: "rollout0", hoarder: "policy0"}
        own = Ownership({"rollout": [tidy], "policy": [hoarder]}, names, {"rollout0": "gpu0", "policy0": "gpu0"},
                        ray.get, switching=True, limit_bytes=1 * MIB)
        prof = Profiler(tmp_path)
        for step in range(2):
            for role in ("rollout", "policy"):
                with own.own(role, step, prof):
                    pass
        prof.close(plots=False)
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    grants = load_records(tmp_path)["grants"]
    assert [(g["role"], g["step"]) for g in grants] == [("rollout", 0), ("policy", 0), ("rollout", 1), ("policy", 1)]
    for g in grants:
        (name,) = g["held_bytes"]
        assert g["held_bytes"][name] == 8 * MIB  # what it holds while granted
        assert g["kept_bytes"][name] == (0 if g["role"] == "rollout" else 8 * MIB)
    found = check_exclusive(grants)
    assert [(type(v), v.actor, v.grant["step"]) for v in found] == [(KeptMemory, "policy0", 0), (KeptMemory, "policy0", 1)]


@pytest.mark.parametrize("switching", [False])
def test_without_switch_calls_grants_carry_no_memory(switching, tmp_path):
    own = Ownership({"rollout": []}, {}, {}, ray.get, switching=switching, limit_bytes=None)
    prof = Profiler(tmp_path)
    with own.own("rollout", 0, prof):
        pass
    prof.close(plots=False)
    assert load_records(tmp_path)["grants"] == []  # no actors, no devices: nothing was granted
