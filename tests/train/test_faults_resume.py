"""Faults and resume, for real on CPU: a raising plugin, a killed worker, an exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from funrl.config import load_config
from funrl.rewards.protocol import RewardError
from funrl.train import checkpoint as ckpt
from funrl.train.driver import Trainer
from funrl.train.metrics import read_metrics
from funrl.train.roles import WorkerDied

pytestmark = pytest.mark.slow

PLUGINS = Path(__file__).with_name("fault_plugins.py")
# deterministic quantities (everything but timings) that must match after a resume
COMPARED = ("reward/total_mean", "reward/accuracy_mean", "loss", "kl_ref", "grad_norm", "entropy",
            "response_len_mean", "ratio_mean")


def config(tmp_path, corpus, model, name, *extra):
    base = [
        f"run.output_dir={tmp_path / 'runs'}", f"run.name={name}",
        f"data.train_manifest={corpus / 'train.jsonl'}", f"model.path={model}",
        "train.steps=4", "train.prompts_per_step=2", "algorithm.group_size=3", "rollout.max_new_tokens=5",
        "policy.world_size=1", "policy.optim.lr=1e-3", "checkpoint.every=2", "checkpoint.keep_last=3",
        "cluster.num_cpus=4", "profile.plots=false",
    ]
    return load_config(None, base + list(extra))


def test_raising_plugin_through_the_cli_is_one_line_naming_sample_id_and_exit_2(tmp_path, tiny_corpus, tiny_model,
                                                                                 ray_env, capsys):
    import json

    from funrl.cli import main
    from funrl.train.sampler import PromptSampler

    cfg_file = tmp_path / "boom.yaml"
    cfg_file.write_text(f"rewards:\n  components:\n    - name: accuracy\n    - name: '{PLUGINS}:explode'\n")
    overrides = [f"run.output_dir={tmp_path / 'runs'}", "run.name=boom", f"data.train_manifest={tiny_corpus / 'train.jsonl'}",
                 f"model.path={tiny_model}", "train.steps=1", "train.prompts_per_step=2", "algorithm.group_size=3",
                 "rollout.max_new_tokens=5", "cluster.num_cpus=4", "profile.plots=false"]
    assert main(["train", str(cfg_file), *overrides]) == 2
    err = capsys.readouterr().err
    rows = [json.loads(line) for line in (tiny_corpus / "train.jsonl").read_text().splitlines()]
    second_prompt = rows[PromptSampler(len(rows), 2, 0, True).next()[1]]  # group 1: samples 3-5
    assert err.endswith(f"\nfunrl train: reward 'explode' raised on sample 3 (id {second_prompt['id']!r}): "
                        "ZeroDivisionError: boom; that is row 3 of step 0's batch (reward worker reward0)\n")
    assert "Traceback" not in err  # (the lines before are the workers' logs)


def killer(marker: Path, die_step: int) -> list[str]:
    return [
        "rewards.components=[{name: accuracy}, {name: hallucination}, "
        f"{{name: '{PLUGINS}:die_at_step', kwargs: {{die_step: {die_step}, marker: '{marker}'}}}}]"
    ]


def test_raising_plugin_stops_the_run_naming_plugin_and_sample(tmp_path, tiny_corpus, tiny_model, ray_env):
    cfg = config(tmp_path, tiny_corpus, tiny_model, "boom",
                 f"rewards.components=[{{name: accuracy}}, {{name: '{PLUGINS}:explode'}}]")
    with pytest.raises(RewardError) as e:
        Trainer(cfg).fit()
    msg = str(e.value)
    assert "explode" in msg and "ZeroDivisionError" in msg and "boom" in msg
    # group_size=3: rows 3-5 belong to the second prompt; row 3 is the first that raises
    assert "sample 3" in msg and "row 3 of step 0" in msg


def test_killed_worker_stops_cleanly_and_resume_matches_uninterrupted(tmp_path, tiny_corpus, tiny_model, ray_env):
    import ray

    # A: the uninterrupted run (the killer plugin is present but never fires)
    Trainer(config(tmp_path, tiny_corpus, tiny_model, "a", *killer(tmp_path / "never", -1))).fit()
    ray.shutdown()
    # B: the reward actor is SIGKILLed during step 3 (after the checkpoint of step 1)
    marker = tmp_path / "killed"
    cfg_b = config(tmp_path, tiny_corpus, tiny_model, "b", *killer(marker, 3))
    with pytest.raises(WorkerDied) as e:
        Trainer(cfg_b).fit()
    assert marker.exists()
    assert str(e.value).startswith("worker reward0 died (")  # the killed actor, by its role name
    assert "train.resume=latest" in str(e.value)
    ray.shutdown()
    run_b = tmp_path / "runs" / "b"
    assert [s for s, _ in ckpt.list_checkpoints(run_b)] == [1]  # the last checkpoint is intact
    assert not list((run_b / "checkpoints").glob(".*tmp*"))
    # B resumed completes, and its steps 2-3 equal A's
    Trainer(config(tmp_path, tiny_corpus, tiny_model, "b", *killer(marker, 3), "train.resume=latest")).fit()
    a = {r["step"]: r for r in read_metrics(tmp_path / "runs" / "a")}
    b = {r["step"]: r for r in read_metrics(run_b)}  # steps 0-2 from the first try, 2-3 after resume
    assert sorted(a) == [0, 1, 2, 3] and 3 in b
    for step in (2, 3):
        for key in COMPARED:
            assert b[step][key] == pytest.approx(a[step][key], rel=1e-6, abs=1e-7), (step, key)
