"""Resume for real (Ray, the policy's checkpoint files, a really killed checkpoint writer): the
last complete checkpoint is taken, a changed learning rate takes effect, frozen keys are refused,
the driver's RNG states come back and metrics.jsonl holds each step once."""

from __future__ import annotations

import json
import logging
import random

import numpy as np
import pytest

from funrl.config import load_config
from funrl.train import checkpoint as ckpt
from funrl.train.driver import Trainer
from funrl.train.metrics import read_metrics
from funrl.train.run_dir import RunDirError, config_dict, config_hash
from tests.train.test_run_dir import killed_write

pytestmark = pytest.mark.slow


def config(root, corpus, model, *extra):
    base = [
        f"run.output_dir={root}", "run.name=r",
        f"data.train_manifest={corpus / 'train.jsonl'}", f"model.path={model}",
        "train.steps=4", "train.prompts_per_step=2", "algorithm.group_size=2", "rollout.max_new_tokens=4",
        "policy.world_size=1", "policy.optim.lr=1e-3", "policy.optim.warmup_steps=0",
        "checkpoint.every=2", "checkpoint.keep_last=3", "cluster.num_cpus=2", "profile.enabled=false",
    ]
    return load_config(None, base + list(extra))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, tiny_corpus, tiny_model):
    """Steps 0-3 at lr 1e-3, checkpoints after steps 1 and 3."""
    import ray

    root = tmp_path_factory.mktemp("resume")
    Trainer(config(root, tiny_corpus, tiny_model)).fit()
    assert not ray.is_initialized()
    return root


def test_frozen_keys_are_refused_before_ray_starts(first_run, tiny_corpus, tiny_model):
    import ray

    cfg = config(first_run, tiny_corpus, tiny_model, "train.resume=latest", "algorithm.group_size=3", "run.seed=5")
    with pytest.raises(RunDirError) as e:
        Trainer(cfg)
    assert "algorithm.group_size: 2 in the checkpoint, 3 now" in str(e.value) and "run.seed" in str(e.value)
    assert not ray.is_initialized()


def test_resume_after_a_killed_write_with_a_new_lr(first_run, tiny_corpus, tiny_model, ray_env, caplog):
    run = first_run / "r"
    assert [s for s, _ in ckpt.list_checkpoints(run)] == [1, 3]
    leftover = killed_write(run, 5)  # a later run killed while it wrote the checkpoint of step 5
    saved = ckpt.load_state(run / "checkpoints" / "step_000003")
    cfg = config(first_run, tiny_corpus, tiny_model, "train.resume=latest", "train.steps=6", "policy.optim.lr=5e-4")

    random.seed(12345), np.random.seed(12345)  # the driver's RNGs elsewhere than the checkpoint's
    with caplog.at_level(logging.WARNING):
        trainer = Trainer(cfg)
        start = trainer.resume()
    assert start == 4 and not leftover.exists()
    assert leftover.name in caplog.text and "step_000003" in caplog.text
    assert "policy.optim.lr=0.0005 (was 0.001)" in caplog.text
    py = saved["rng"]["python"]
    assert random.getstate() == (py[0], tuple(py[1]), py[2])
    assert np.random.get_state()[1].tolist() == saved["rng"]["numpy"][1]
    trainer.run_steps(start)
    trainer.finish()

    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4, 5]  # each step once
    assert [r["lr"] for r in rows] == [1e-3] * 4 + [5e-4] * 2  # the new rate is the one used
    state = ckpt.load_state(run / "checkpoints" / "step_000005")
    assert state["config"]["policy"]["optim"]["lr"] == 5e-4
    assert state["config_sha256"] == config_hash(config_dict(cfg))
    assert json.loads((run / "checkpoints" / "step_000005" / "trainer_state.json").read_text())["step"] == 5
