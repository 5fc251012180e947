"""GRPO across a real 2-node Ray cluster on one machine, with no path shared between the driver
and the workers.

The cluster is :class:`ray.cluster_utils.Cluster`: a head node and a second node, each a raylet
with its own resources and its own temp folder, on loopback. ``cluster.placement_strategy=SPREAD``
puts the two rollout engines and the two policy ranks on different nodes.

"No shared disk" is enforced, not assumed: every Python process of the cluster starts with an
audit hook (a ``sitecustomize`` put on its ``PYTHONPATH``) that refuses to open, list, create,
rename or delete anything under the driver's run directory. A worker that wrote a checkpoint there,
read one back on resume, or loaded the rollout model from it would fail the run. (Physically the
two nodes share this machine's disk; the hook is what stands in for a second machine.)

The result must equal a one-node run with the same seeds, and a resume on the two nodes from the
step-1 checkpoint must reproduce the uninterrupted run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import textwrap

import pytest
import ray
import torch
from safetensors.torch import load_file

from funrl.train import checkpoint as ckpt
from funrl.train.driver import Trainer

from tests.train.test_grpo_ray import config as grpo_config

pytestmark = pytest.mark.slow

HOOK = textwrap.dedent('''
    import os, sys
    _root = os.environ.get("FUNRL_TEST_FORBID")
    _log = os.environ.get("FUNRL_TEST_FORBID_LOG")
    _events = {"open", "os.listdir", "os.scandir", "os.mkdir", "os.rename", "os.replace", "os.remove",
               "os.rmdir", "shutil.rmtree", "os.truncate"}

    def _hook(event, args):
        if event in _events and args and isinstance(args[0], (str, bytes, os.PathLike)):
            p = os.fsdecode(args[0])
            if os.path.isabs(p) and (p == _root or p.startswith(_root + os.sep)):
                with open(_log, "a") as f:  # not under the root: no recursion
                    f.write(f"{os.getpid()} {event} {p}\\n")
                raise PermissionError(f"worker touched the driver's run directory: {event} {p}")

    if _root:
        sys.addaudithook(_hook)
''')


def config(tmp_path, corpus, model, **extra):
    """tests/train/test_grpo_ray.py's run, with 2 engines, checkpoints at steps 1 and 2, and a
    torch.profiler trace of step 1 (written on the policy ranks' nodes)."""
    return grpo_config(tmp_path, corpus, model, **{
        "train.prompts_per_step": 4, "algorithm.group_size": 3, "rollout.max_new_tokens": 5,
        "rollout.num_engines": 2, "checkpoint.every": 2, "checkpoint.keep_last": 3, "profile.plots": False,
        "profile.torch_steps": "[1]", **extra})


def trained(run_dir):
    return load_file(str(run_dir / "model" / "llm" / "model.safetensors"))


@pytest.fixture
def two_nodes(tmp_path, ray_env):
    from ray.cluster_utils import Cluster

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(HOOK)
    forbid = tmp_path / "runs_2n" / "t"
    saved = dict(os.environ)
    os.environ.update({"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                       "FUNRL_TEST_FORBID": str(forbid), "FUNRL_TEST_FORBID_LOG": str(tmp_path / "forbidden.log")})
    temps = [tempfile.mkdtemp(prefix="rn", dir="/tmp") for _ in range(2)]  # short: socket path limits
    os.makedirs("/tmp/ray", exist_ok=True)  # Cluster writes its address to /tmp/ray/ray_current_cluster
    try:
        cluster = Cluster(initialize_head=True, head_node_args={
            "num_cpus": 2, "temp_dir": temps[0], "resources": {"node_a": 1}, "include_dashboard": False})
        cluster.add_node(num_cpus=2, temp_dir=temps[1], resources={"node_b": 1})
        cluster.wait_for_nodes()
    finally:
        os.environ.clear()
        os.environ.update(saved)  # the driver (this process) is not hooked; the nodes' processes are
    try:
        yield cluster, forbid, tmp_path / "forbidden.log"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        for t in temps:
            shutil.rmtree(t, ignore_errors=True)


def test_three_steps_on_two_nodes_equal_one_node_and_resume_without_a_shared_path(
        tmp_path, tiny_corpus, tiny_model, two_nodes):
    cluster, forbid, forbidden_log = two_nodes

    # the same job on two nodes, spread
    two_cfg = dict(**{"run.output_dir": str(tmp_path / "runs_2n"), "cluster.address": cluster.address,
                      "cluster.placement_strategy": "SPREAD"})
    trainer = Trainer(config(tmp_path, tiny_corpus, tiny_model, **two_cfg))
    assert trainer.run_dir == forbid
    trainer.run_steps()
    roles = trainer.roles
    node = dict(zip(roles.names.values(), ray.get([a.node_id.remote() for a in roles.names])))
    assert len(set(node.values())) == 2
    assert node["policy0"] != node["policy1"] and node["rollout0"] != node["rollout1"]
    assert roles.multi_node
    run_dir = trainer.finish()
    ray.shutdown()
    assert not forbidden_log.exists(), forbidden_log.read_text()

    # what the workers made is in the driver's run directory, brought there through Ray
    steps = [s for s, _ in ckpt.list_checkpoints(run_dir)]
    assert steps == [1, 2]
    assert (run_dir / "profile" / "torch" / "policy0_step1.json").stat().st_size > 0
    assert (run_dir / "profile" / "torch" / "policy1_step1.json").stat().st_size > 0
    two = trained(run_dir)
    changed = load_file(str(tiny_model / "llm" / "model.safetensors"))
    assert any(not torch.equal(changed[k], two[k]) for k in two)  # it did train

    # resume on the two nodes from the step-1 checkpoint: the driver reads it and ships it
    resumed = Trainer(config(tmp_path, tiny_corpus, tiny_model, **two_cfg,
                             **{"train.resume": str(ckpt.list_checkpoints(run_dir)[0][1])}))
    assert resumed.start.step == 2
    resumed.run_steps()
    resumed.finish()
    ray.shutdown()
    assert not forbidden_log.exists(), forbidden_log.read_text()
    again = trained(run_dir)
    for k in two:
        assert torch.equal(again[k], two[k]), k

    # the one-node reference (a private cluster, actors packed), same seeds: the nodes changed nothing
    one = Trainer(config(tmp_path, tiny_corpus, tiny_model, **{"run.output_dir": str(tmp_path / "runs_1n")}))
    one.run_steps()
    reference = trained(one.finish())
    assert two.keys() == reference.keys()
    for k in reference:
        assert torch.equal(two[k], reference[k]), k
