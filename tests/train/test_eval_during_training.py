"""Evaluation during training, on Ray: the rollout engine's greedy decoding of data.eval_manifest,
scored by funrl eval's code, equals funrl eval of the exported model; checkpoint.best_metric keeps
RUN_DIR/best at the best step; eval is a phase of its own in the profile."""

from __future__ import annotations

import json
import math

import pytest

from funrl.config import ConfigError, load_config
from funrl.eval.cli import evaluate
from funrl.train.driver import Trainer
from funrl.train.metrics import read_metrics

pytestmark = pytest.mark.slow


def overrides(tmp_path, corpus, model, *extra):
    return [
        f"run.output_dir={tmp_path}", "run.name=ev", f"data.train_manifest={corpus / 'train.jsonl'}",
        f"data.eval_manifest={corpus / 'dev.jsonl'}", f"model.path={model}", "train.steps=3",
        "train.prompts_per_step=2", "algorithm.group_size=2", "rollout.max_new_tokens=6", "train.eval_every=1",
        "checkpoint.best_metric=eval/error_rate", "policy.world_size=1", "policy.lora.enabled=false",
        "policy.optim.lr=5e-2", "policy.optim.warmup_steps=0", "checkpoint.every=0", "cluster.num_cpus=2",
        *extra,
    ]


def test_eval_during_training_equals_funrl_eval_and_keeps_the_best(tmp_path, tiny_corpus, tiny_model, ray_env):
    trainer = Trainer(load_config(None, overrides(tmp_path, tiny_corpus, tiny_model)))
    trainer.run_steps()
    run_dir = trainer.finish()
    rows = read_metrics(run_dir)
    dev = len((tiny_corpus / "dev.jsonl").read_text().splitlines())
    assert [r["eval/utterances"] for r in rows] == [dev] * 3
    rates = [r["eval/error_rate"] for r in rows]
    assert len(set(rates)) > 1, f"the test wants the policy's decoding to change: {rates}"

    # the last step's eval is the exported (last) model's funrl eval, by the same code
    report, _ = evaluate(str(run_dir / "model"), str(tiny_corpus / "dev.jsonl"), max_new_tokens=6, n_boot=0)
    assert report["overall"]["error_rate"] == pytest.approx(rates[-1])
    for key in ("hallucination_rate", "language_mismatch_rate"):
        a, b = report[key], rows[-1][f"eval/{key}"]
        assert (isinstance(b, str) and math.isnan(a)) or a == pytest.approx(b)

    # best/: the first step with the lowest error rate, exported then; funrl eval agrees
    best = json.loads((run_dir / "best" / "best.json").read_text())
    assert best == {"step": rates.index(min(rates)), "metric": "eval/error_rate", "value": pytest.approx(min(rates))}
    again, _ = evaluate(str(run_dir / "best"), str(tiny_corpus / "dev.jsonl"), max_new_tokens=6, n_boot=0)
    assert again["overall"]["error_rate"] == pytest.approx(min(rates))

    report = json.loads((run_dir / "profile" / "report.json").read_text())
    assert report["phases"]["eval"]["steps"] == 3


def test_eval_settings_are_checked_before_ray(tmp_path, tiny_corpus, tiny_model):
    with pytest.raises(ConfigError, match="checkpoint.best_metric"):
        load_config(None, overrides(tmp_path, tiny_corpus, tiny_model, "checkpoint.best_metric=eval/wer"))
    with pytest.raises(ConfigError, match="train.eval_every"):
        load_config(None, overrides(tmp_path, tiny_corpus, tiny_model, "train.eval_every=0"))
    cfg = load_config(None, overrides(tmp_path, tiny_corpus, tiny_model, "data.eval_manifest=null"))
    with pytest.raises(ConfigError, match="data.eval_manifest"):
        Trainer(cfg)
    assert not (tmp_path / "ev").exists()  # refused before the run directory was made
