"""`funrl train` with the real SGLang engine as the rollout role, on CPU (runs in the SGLang env)."""

from __future__ import annotations

import pytest

from funrl.config import load_config
from funrl.profiling import check_exclusive, load_records
from funrl.train.driver import Trainer
from funrl.train.metrics import read_metrics

pytestmark = [pytest.mark.sglang, pytest.mark.slow]


def sglang_run(tmp_path, corpus, model, *extra: str):
    """Two GRPO steps with the SGLang engine as the rollout role; ``extra`` overrides; the run folder."""
    overrides = [
        f"run.output_dir={tmp_path / 'runs'}", "run.name=sg", f"data.train_manifest={corpus / 'train.jsonl'}",
        f"model.path={model}", "train.steps=2", "algorithm.group_size=2", "rollout.engine=sglang",
        "policy.world_size=1", "checkpoint.every=0", "profile.plots=false", *extra,
    ]
    return Trainer(load_config(None, overrides)).fit()


def test_short_grpo_run_with_sglang_rollout(tmp_path, tiny_corpus, tiny_model, ray_env):
    run_dir = sglang_run(tmp_path, tiny_corpus, tiny_model, "train.prompts_per_step=2", "rollout.max_new_tokens=4",
                         "rollout.bucket_mb=0.05", "policy.optim.lr=1e-3", "cluster.num_cpus=4")
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [0, 1]
    for r in rows:
        assert r["rollout/tokens"] > 0 and isinstance(r["reward/total_mean"], float)
    rec = load_records(run_dir)
    assert check_exclusive(rec["grants"]) == []
    # the weights went to SGLang through update_weights_from_tensor in several 50 KB buckets, every step
    syncs = [s for s in rec["spans"] if s["worker"] == "rollout0" and s["name"] == "weight_sync"]
    assert {s["step"] for s in syncs} == {0, 1} and len(syncs) > 2
    assert (run_dir / "model" / "llm" / "model.safetensors").is_file()


def test_sglang_hands_groups_back_to_the_reward_pool(tmp_path, tiny_corpus, tiny_model, ray_env):
    """rollout.reward_overlap_groups with the real SGLang engine: one request per group, each group
    handed back (a groups_done mark) and scored whole while the step's generate call runs."""
    run_dir = sglang_run(tmp_path, tiny_corpus, tiny_model, "train.prompts_per_step=3", "rollout.max_new_tokens=6",
                         "rollout.reward_overlap_groups=true", "rewards.num_workers=2", "checkpoint.save_final=false",
                         "cluster.num_cpus=5")
    assert [r["step"] for r in read_metrics(run_dir)] == [0, 1]
    spans = load_records(run_dir)["spans"]
    for step in (0, 1):
        marks = [s for s in spans if s["step"] == step and s["name"] == "groups_done"]
        assert sum(s["args"]["groups"] for s in marks) == 3
        scored = [s for s in spans if s["step"] == step and s["name"] == "reward" and s["worker"].startswith("reward")]
        assert sum(s["args"]["completions"] for s in scored) == 6
        assert all(s["args"]["completions"] % 2 == 0 for s in scored)  # whole groups
