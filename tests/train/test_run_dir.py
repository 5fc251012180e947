"""The run directory before a run starts (real files and a really killed checkpoint writer; no Ray).

The end-to-end resume with Ray is in test_resume_state.py.
"""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from funrl.config import ConfigError, load_config
from funrl.train import checkpoint as ckpt
from funrl.train.driver import driver_rng_state, restore_driver_rng
from funrl.train.metrics import read_metrics, truncate_metrics
from funrl.train.run_dir import RunDirError, config_dict, config_hash, prepare


def cfg_for(tmp_path, *extra):
    return load_config(None, [f"run.output_dir={tmp_path}", "run.name=r", *extra])


def old_run(run_dir, steps=4, ckpt_steps=(1, 3), cfg=None):
    """A run directory as a finished run leaves it: metrics rows and complete checkpoints."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "metrics.jsonl", "w") as f:
        for s in range(steps):
            f.write(json.dumps({"step": s, "loss": 0.1 * s}) + "\n")
    for s in ckpt_steps:
        state = {"step": s}
        if cfg is not None:
            state.update(config=config_dict(cfg), config_sha256=config_hash(config_dict(cfg)))
        ckpt.save_checkpoint(run_dir, s, state, lambda tmp: (tmp / "policy").mkdir(), keep_last=0)
    for d in ("tensorboard", "profile", "model"):
        (run_dir / d).mkdir(exist_ok=True)
        (run_dir / d / "f").write_text("x")


KILLED_WRITER = """
import os, sys
from pathlib import Path
from funrl.train import checkpoint as ckpt

def parts(tmp):
    (tmp / "policy").mkdir()
    (tmp / "policy" / "optimizer.pt").write_bytes(b"half a file")
    os.kill(os.getpid(), 9)  # killed in the middle of the write

ckpt.save_checkpoint(Path(sys.argv[1]), int(sys.argv[2]), {"step": int(sys.argv[2])}, parts, keep_last=3)
"""


def killed_write(run_dir, step):
    """A real process killed (SIGKILL) while writing checkpoint ``step``."""
    p = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(run_dir), str(step)])
    assert p.returncode == -9
    left = list(ckpt.checkpoint_dir(run_dir).glob(f".step_{step:06d}.tmp-*"))
    assert len(left) == 1, "the killed writer left its temporary folder"
    return left[0]


# ---------------------------------------------------------------- run.name (item: writes outside output_dir)

@pytest.mark.parametrize("name", ["../..", "..", "/tmp/x", "a/b", "a\\b", "."])
def test_run_name_that_leaves_output_dir_is_a_config_error(tmp_path, name):
    with pytest.raises(ConfigError) as e:
        cfg_for(tmp_path, f"run.name={name}")
    assert "run.name" in str(e.value) and repr(name) in str(e.value)


# ---------------------------------------------------------------- fresh run into an old run's directory

def test_fresh_run_into_a_used_run_dir_is_refused(tmp_path):
    old_run(tmp_path / "r")
    with pytest.raises(RunDirError) as e:
        prepare(cfg_for(tmp_path), tmp_path / "r")
    msg = str(e.value)
    assert "metrics.jsonl" in msg and "step_000003" in msg and "train.resume=latest" in msg and "run.overwrite=true" in msg
    assert len(read_metrics(tmp_path / "r")) == 4 and len(ckpt.list_checkpoints(tmp_path / "r")) == 2  # untouched


def test_cli_refuses_it_with_exit_code_2_and_one_line(tmp_path, tiny_corpus, tiny_model):
    old_run(tmp_path / "r")
    conf = tmp_path / "run.yaml"
    conf.write_text(f"run: {{output_dir: '{tmp_path}', name: r}}\n"
                    f"data: {{train_manifest: '{tiny_corpus / 'train.jsonl'}'}}\nmodel: {{path: '{tiny_model}'}}\n")
    p = subprocess.run([sys.executable, "-m", "funrl", "train", str(conf)], capture_output=True, text=True)
    assert p.returncode == 2, p.stderr[-2000:]
    assert "already holds a run" in p.stderr and "Traceback" not in p.stderr
    assert len(read_metrics(tmp_path / "r")) == 4


def test_overwrite_removes_the_old_outputs_first(tmp_path):
    old_run(tmp_path / "r")
    (tmp_path / "r" / "notes.txt").write_text("mine")
    start = prepare(cfg_for(tmp_path, "run.overwrite=true"), tmp_path / "r")
    assert start.checkpoint is None and start.step == 0
    for name in ("metrics.jsonl", "checkpoints", "tensorboard", "profile", "model"):
        assert not (tmp_path / "r" / name).exists(), name
    assert (tmp_path / "r" / "notes.txt").read_text() == "mine"  # only what a run writes is removed


# ---------------------------------------------------------------- killed checkpoint writes, resume=latest

def test_resume_latest_removes_a_killed_write_and_takes_the_last_complete_checkpoint(tmp_path, caplog):
    cfg = cfg_for(tmp_path, "train.resume=latest")
    old_run(tmp_path / "r", steps=6, cfg=cfg)  # steps 0-5 logged, checkpoints 1 and 3 complete
    tmp = killed_write(tmp_path / "r", 5)
    with caplog.at_level(logging.WARNING):
        start = prepare(cfg, tmp_path / "r")
    assert not tmp.exists()
    assert start.checkpoint.name == "step_000003" and start.step == 4
    assert "half-written" in caplog.text and tmp.name in caplog.text and "step_000003" in caplog.text
    assert [r["step"] for r in read_metrics(tmp_path / "r")] == [0, 1, 2, 3]  # 4, 5 are redone


def test_resume_latest_with_only_a_killed_write_says_it_starts_from_zero(tmp_path, caplog):
    run = tmp_path / "r"
    old_run(run, steps=2, ckpt_steps=())
    tmp = killed_write(run, 1)
    with caplog.at_level(logging.WARNING):
        start = prepare(cfg_for(tmp_path, "train.resume=latest"), run)
    assert start.checkpoint is None and start.step == 0 and not tmp.exists()
    assert "STARTING FROM STEP 0" in caplog.text and "half-written" in caplog.text
    assert read_metrics(run) == []


def test_truncate_metrics_drops_later_steps_and_a_torn_line(tmp_path):
    with open(tmp_path / "metrics.jsonl", "w") as f:
        f.write("".join(json.dumps({"step": s}) + "\n" for s in range(5)) + '{"step": 5, "lo')
    assert truncate_metrics(tmp_path, 2) == 3
    assert [r["step"] for r in read_metrics(tmp_path)] == [0, 1, 2]
    assert not list(tmp_path.glob(".metrics*"))


# ---------------------------------------------------------------- changed config under a checkpoint

def test_resume_refuses_each_frozen_key_and_names_it(tmp_path):
    old_run(tmp_path / "r", cfg=cfg_for(tmp_path))
    new = cfg_for(tmp_path, "train.resume=latest", "algorithm.group_size=4", "policy.lora.r=4",
                  "run.seed=7", "policy.optim.lr=5e-4", "train.steps=40")
    with pytest.raises(RunDirError) as e:
        prepare(new, tmp_path / "r")
    msg = str(e.value)
    for key in ("algorithm.group_size", "policy.lora.r", "run.seed"):
        assert key in msg, key
    assert "policy.optim.lr" not in msg and "train.steps" not in msg  # these may change


def test_resume_applies_and_lists_changeable_keys(tmp_path, caplog):
    old_run(tmp_path / "r", cfg=cfg_for(tmp_path))
    new = cfg_for(tmp_path, "train.resume=latest", "policy.optim.lr=5e-4", "train.steps=40", "checkpoint.every=5")
    with caplog.at_level(logging.WARNING):
        start = prepare(new, tmp_path / "r")
    assert start.step == 4
    for key in ("policy.optim.lr=0.0005", "train.steps=40", "checkpoint.every=5"):
        assert key in caplog.text, key


def test_resume_with_the_same_config_says_unchanged(tmp_path, caplog):
    cfg = cfg_for(tmp_path, "train.resume=latest")
    old_run(tmp_path / "r", cfg=cfg)
    with caplog.at_level(logging.WARNING):
        assert prepare(cfg, tmp_path / "r").step == 4
    assert "config unchanged" in caplog.text and "changed settings" not in caplog.text


def test_a_hash_other_than_the_new_configs_means_key_by_key(tmp_path, caplog):
    # the stored hash matches neither the new config nor its own snapshot: the keys decide
    cfg = cfg_for(tmp_path, "train.resume=latest")
    old = config_dict(cfg_for(tmp_path, "train.resume=latest", "algorithm.group_size=4"))
    ckpt.save_checkpoint(tmp_path / "r", 1, {"step": 1, "config": old, "config_sha256": "0" * 64},
                         lambda tmp: (tmp / "policy").mkdir(), keep_last=0)
    with caplog.at_level(logging.WARNING), pytest.raises(RunDirError, match="algorithm.group_size"):
        prepare(cfg, tmp_path / "r")
    assert "config unchanged" not in caplog.text


# ---------------------------------------------------------------- the driver's RNG states

def test_driver_rng_states_round_trip_through_trainer_state_json(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.random(), np.random.rand(3), torch.rand(2)  # mid-stream, and numpy's gauss cache set
    np.random.standard_normal()
    saved = json.loads(json.dumps(driver_rng_state()))  # as trainer_state.json holds it
    want = (random.random(), np.random.rand(3).tolist(), np.random.standard_normal(), torch.rand(2).tolist())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_driver_rng(saved)
    got = (random.random(), np.random.rand(3).tolist(), np.random.standard_normal(), torch.rand(2).tolist())
    assert got == want


def test_python_state_of_older_checkpoints_still_restores(tmp_path):
    random.seed(5)
    old = driver_rng_state()
    old["python"] = repr(random.getstate())  # how trainer_state.json stored it before
    want = random.random()
    random.seed(0)
    restore_driver_rng(json.loads(json.dumps(old)))
    assert random.random() == want
