"""A killed worker is named: each role's actor is SIGKILLed for real and the WorkerDied says which."""

from __future__ import annotations

import os
import signal

import pytest

from funrl.config import load_config
from funrl.train.roles import Roles, WorkerDied

pytestmark = pytest.mark.slow


def test_each_killed_role_actor_is_named(tmp_path, tiny_corpus, tiny_model, ray_env):
    import ray

    cfg = load_config(None, [
        f"run.output_dir={tmp_path / 'runs'}", f"model.path={tiny_model}", "policy.world_size=2",
        "rewards.num_workers=1", "rollout.max_new_tokens=4", "cluster.num_cpus=4",
    ])
    run_dir = tmp_path / "runs" / "funrl"
    run_dir.mkdir(parents=True)
    roles = Roles.start(cfg, run_dir)
    try:
        for name, actor, call in [
            ("policy1", roles.policy[1], lambda: roles.wait_all([p.ping.remote() for p in roles.policy])),
            ("rollout0", roles.rollout, lambda: roles.call(roles.rollout.ping.remote())),
            ("encoder0", roles.encoder, lambda: roles.call(roles.encoder.ping.remote())),
            ("reward0", roles.rewarders[0], lambda: roles.call(roles.rewarders[0].ping.remote())),
        ]:
            os.kill(roles.call(actor.pid.remote()), signal.SIGKILL)
            with pytest.raises(WorkerDied) as e:
                call()
            msg = str(e.value)
            assert msg.startswith(f"worker {name} died ("), msg
            assert "rerun the same command with train.resume=latest" in msg
    finally:
        roles.shutdown()
        ray.shutdown()
