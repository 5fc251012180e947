"""The GPU layout, tested without a GPU through Ray's logical resources (``ray.init(num_gpus=2)``).

What runs for real: :func:`funrl.train.layout.plan`, the placement group that
:func:`funrl.train.cluster.make_placement` builds from it, and the ``.options(...)`` that
:class:`funrl.train.roles.Roles` gives each actor. What stands in: the actors themselves are small
probes that report what Ray gave them (``ray.get_gpu_ids()``, ``CUDA_VISIBLE_DEVICES``), because
the real workers would initialise CUDA, which this machine does not have.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest
import ray

from funrl.config import load_config
from funrl.errors import ConfigValueError
from funrl.train.cluster import make_placement, ray_gpus
from funrl.train.layout import Slot, plan


def cfg_of(**kw):
    return load_config(None, [f"{k}={v}" for k, v in kw.items()])


def test_two_gpus_one_bundle_per_device_shared_by_a_rank_an_engine_and_an_encoder():
    cfg = cfg_of(**{"policy.world_size": 2, "rollout.num_engines": 2, "model.encoder_workers": 1,
                    "rewards.num_workers": 2, "cluster.resources.policy.num_cpus": 1})
    lay = plan(cfg, 2)
    # device 0: policy0 (1 CPU) + rollout0 + encoder0 (0.25 each); device 1: policy1 + rollout1;
    # then one CPU bundle per reward worker
    assert lay.bundles == [{"CPU": 1.5, "GPU": 1.0}, {"CPU": 1.25, "GPU": 1.0}, {"CPU": 0.25}, {"CPU": 0.25}]
    assert lay.slots[("policy", 0)] == Slot(0, 1.0, 0.4, "cuda", 0)
    assert lay.slots[("rollout", 0)] == Slot(0, 0.25, 0.4, "cuda", 0)
    assert lay.slots[("encoder", 0)] == Slot(0, 0.25, 0.2, "cuda", 0)
    assert lay.slots[("policy", 1)] == Slot(1, 1.0, 0.4, "cuda", 1)
    assert lay.slots[("rollout", 1)] == Slot(1, 0.25, 0.4, "cuda", 1)
    assert lay.slots[("reward", 1)] == Slot(3, 0.25, 0.0, "cpu", None)
    assert lay.device == "cuda" and lay.gpus == 2
    assert lay.devices("policy") == ["gpu0", "gpu1"] and lay.devices("encoder") == ["gpu0"]
    assert lay.devices("reward") == ["cpu"]
    assert sorted(lay.actors_on(1)) == [("policy", 1), ("rollout", 1)]


def test_cpu_layout_without_gpus_and_with_gpus_set_to_none():
    cfg = cfg_of(**{"policy.world_size": 2})
    for lay in (plan(cfg, 0), plan(cfg_of(**{"policy.world_size": 2, "cluster.gpus": "none"}), 4)):
        # slot 0: policy0, rollout0, encoder0; slot 1: policy1; then the reward actor
        assert lay.bundles == [{"CPU": 0.75}, {"CPU": 0.25}, {"CPU": 0.25}]
        assert lay.slots[("policy", 1)].bundle == 1 and lay.slots[("reward", 0)].bundle == 2
        assert lay.device == "cpu" and lay.gpus == 0
        assert {s.device for s in lay.slots.values()} == {"cpu"}
        assert all(s.num_gpus == 0 for s in lay.slots.values())


def test_cpu_layout_may_have_more_engines_than_ranks():
    lay = plan(cfg_of(**{"rollout.num_engines": 3}), 0)
    assert lay.bundles == [{"CPU": 0.75}, {"CPU": 0.25}, {"CPU": 0.25}, {"CPU": 0.25}]
    assert [lay.slots[("rollout", i)].bundle for i in range(3)] == [0, 1, 2]


def test_shares_come_from_config_and_a_role_set_to_zero_computes_on_the_cpu():
    cfg = cfg_of(**{"cluster.resources.encoder.num_gpus": 0, "cluster.resources.rollout.num_gpus": 0.5,
                    "cluster.resources.policy.num_gpus": 0.5})
    lay = plan(cfg, 1)
    assert lay.slots[("encoder", 0)].device == "cpu" and lay.slots[("encoder", 0)].bundle == 0
    assert lay.slots[("rollout", 0)].num_gpus == 0.5 and lay.slots[("policy", 0)].device == "cuda"


@pytest.mark.parametrize("kw, gpus, key, words", [
    ({"policy.world_size": 3}, 2, "policy.world_size", "at most the 2 GPU(s) Ray reports"),
    ({"rollout.num_engines": 2}, 1, "rollout.num_engines", "at most policy.world_size=1"),
    ({"model.encoder_workers": 2}, 1, "model.encoder_workers", "at most policy.world_size=1"),
    ({"cluster.resources.rollout.num_gpus": 0.7}, 1, "cluster.resources.<role>.num_gpus", "sum to at most 1"),
    ({"cluster.resources.policy.num_gpus": 0.5}, 0, "cluster.resources.policy.num_gpus", "0 or unset"),
])
def test_layouts_that_cannot_work_are_refused_naming_the_key(kw, gpus, key, words):
    with pytest.raises(ConfigValueError) as e:
        plan(cfg_of(**kw), gpus)
    assert e.value.key == key and words in str(e.value)


@ray.remote
class Probe:
    """Stands in for a role actor: what Ray gave it."""

    def seen(self):
        return [int(g) for g in ray.get_gpu_ids()], os.environ.get("CUDA_VISIBLE_DEVICES")


def test_logical_gpus_each_colocated_group_sees_its_own_device(ray_env):
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    ray.init(num_cpus=4, num_gpus=2, include_dashboard=False, _temp_dir=temp)
    try:
        cfg = cfg_of(**{"policy.world_size": 2, "rollout.num_engines": 2, "model.encoder_workers": 2})
        lay = plan(cfg, ray_gpus())
        placement = make_placement(cfg.cluster, lay, timeout_s=60)
        seen = {}
        for role, i in lay.slots:
            actor = Probe.options(**placement.options(role, i)).remote()
            seen[(role, i)] = ray.get(actor.seen.remote())
        placement.remove()
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    dev0, dev1 = seen[("policy", 0)][0], seen[("policy", 1)][0]
    assert len(dev0) == len(dev1) == 1 and dev0 != dev1  # each rank its own GPU
    for i, dev in ((0, dev0), (1, dev1)):
        for role in ("policy", "rollout", "encoder"):
            ids, visible = seen[(role, i)]
            assert ids == dev, (role, i)  # the rank's engine and encoder share the rank's device
            assert visible == str(dev[0]), (role, i)  # so torch's cuda:0 is that device
    assert seen[("reward", 0)][0] == []  # rewards stay off the GPUs
