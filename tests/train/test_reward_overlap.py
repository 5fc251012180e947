"""rollout.reward_overlap_chunks on a real Ray run: each chunk's completions go to the reward pool as
soon as they exist, and every reward still belongs to its own row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from funrl.rollout.protocol import RolloutBatch
from tests.train.runs import train_to_end

pytestmark = pytest.mark.slow
PLUGINS = Path(__file__).with_name("fault_plugins.py")


def test_concat_shifts_prompt_indices():
    a = RolloutBatch([[1], [2]], [[-0.1], [-0.2]], ["stop", "length"], [0, 0])
    b = RolloutBatch([[3], [4], [5], [6]], [[-0.3], [-0.4], [-0.5], [-0.6]], ["stop"] * 4, [0, 0, 1, 1])
    c = RolloutBatch.concat([a, b])
    assert c.token_ids == [[1], [2], [3], [4], [5], [6]] and c.prompt_index == [0, 0, 1, 1, 2, 2]
    assert c.finish_reasons == ["stop", "length", "stop", "stop", "stop", "stop"]


def test_chunks_are_scored_separately_and_rewards_stay_with_their_rows(tmp_path, tiny_corpus, tiny_model, ray_env):
    run_dir, rows = train_to_end([
        f"run.output_dir={tmp_path}", "run.name=overlap", f"data.train_manifest={tiny_corpus / 'train.jsonl'}",
        f"model.path={tiny_model}", "train.steps=2", "train.prompts_per_step=3", "algorithm.group_size=2",
        "rollout.reward_overlap_chunks=2", f"rewards.components=[{{name: '{PLUGINS}:length_on_odd_ids'}}]",
        "rewards.num_workers=2", "algorithm.kl_coef=0", "rollout.max_new_tokens=6", "train.samples_every=1",
        "train.samples_prompts=3", "policy.world_size=1", "checkpoint.every=0", "checkpoint.save_final=false",
        "cluster.num_cpus=4",
    ])
    recs = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [0, 0, 0, 1, 1, 1]
    for r in recs:  # every logged reward is the plugin's value for that row's own text and id
        sign = 1 if int(r["id"][-1]) % 2 else -1
        assert [s["reward"] for s in r["samples"]] == [sign * float(len(s["text"])) for s in r["samples"]]
    for step, m in enumerate(rows):  # the step's reward metrics are over all its 6 rows
        logged = [s["reward"] for r in recs if r["step"] == step for s in r["samples"]]
        assert m["reward/total_mean"] == pytest.approx(sum(logged) / 6)
    records = [json.loads(line) for line in (run_dir / "profile" / "spans.jsonl").read_text().splitlines()]
    spans = [r for r in records if r["type"] == "span"]
    for step in (0, 1):  # two chunks (prompts 0 | 1, 2) generated apart and scored apart
        assert sorted(s["args"].get("prompts") for s in spans if s["name"] == "rollout" and s["worker"] == "rollout0"
                      and s["step"] == step) == [1, 2]
        scored = [s["args"]["completions"] for s in spans if s["name"] == "reward" and s["worker"].startswith("reward")
                  and s["step"] == step]
        assert sum(scored) == 6 and len(scored) >= 2
        # the overlap itself: chunk 1's scoring starts after chunk 1 is generated and while chunk 2 is
        first, second = sorted((s for s in spans if s["name"] == "rollout" and s["worker"] == "rollout0"
                                and s["step"] == step), key=lambda s: s["start"])
        scoring = min((s for s in spans if s["name"] == "reward" and s["worker"].startswith("reward")
                       and s["step"] == step), key=lambda s: s["start"])
        assert first["end"] <= scoring["start"] < second["end"], step


@pytest.mark.parametrize("engines", [1, 2])
def test_groups_are_scored_as_they_finish_in_one_generate_call(tmp_path, tiny_corpus, tiny_model, ray_env, engines):
    """rollout.reward_overlap_groups: one generate call a step (per engine); each group goes to the
    reward pool when its samples have all ended, whole, to one worker, while the others still
    decode; every reward stays with its own row."""
    stops = ",".join(str(t) for t in range(100, 120))  # 20 of the 200 tokens: groups end at different steps
    run_dir, rows = train_to_end([
        f"run.output_dir={tmp_path}", "run.name=groups", f"data.train_manifest={tiny_corpus / 'train.jsonl'}",
        f"model.path={tiny_model}", "train.steps=2", "train.prompts_per_step=4", "algorithm.group_size=2",
        "rollout.reward_overlap_groups=true", f"rewards.components=[{{name: '{PLUGINS}:length_on_odd_ids'}}]",
        "rewards.num_workers=3", "algorithm.kl_coef=0", "rollout.max_new_tokens=64", f"rollout.stop_token_ids=[{stops}]",
        "train.samples_every=1", "train.samples_prompts=4", "policy.world_size=1", "checkpoint.every=0",
        "checkpoint.save_final=false", "cluster.num_cpus=6", f"rollout.num_engines={engines}",
    ])
    recs = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [0] * 4 + [1] * 4
    for r in recs:  # every logged reward is the plugin's value for that row's own text and id
        sign = 1 if int(r["id"][-1]) % 2 else -1
        assert [s["reward"] for s in r["samples"]] == [sign * float(len(s["text"])) for s in r["samples"]]
    for step, m in enumerate(rows):
        logged = [s["reward"] for r in recs if r["step"] == step for s in r["samples"]]
        assert m["reward/total_mean"] == pytest.approx(sum(logged) / 8)
    records = [json.loads(line) for line in (run_dir / "profile" / "spans.jsonl").read_text().splitlines()]
    spans = [r for r in records if r["type"] == "span"]
    for step in (0, 1):
        mine = [s for s in spans if s["step"] == step]
        gen = [s for s in mine if s["name"] == "rollout" and s["worker"].startswith("rollout")]
        assert sorted(s["worker"] for s in gen) == [f"rollout{e}" for e in range(engines)]  # one call each
        assert sum(s["args"]["prompts"] for s in gen) == 4
        handed = sorted((s for s in mine if s["name"] == "groups_done"), key=lambda s: s["start"])
        assert sum(s["args"]["groups"] for s in handed) == 4 and len(handed) >= 2
        scored = sorted((s for s in mine if s["name"] == "reward" and s["worker"].startswith("reward")),
                        key=lambda s: s["start"])
        assert all(s["args"]["completions"] % 2 == 0 for s in scored)  # whole groups of 2
        assert sum(s["args"]["completions"] for s in scored) == 8
        # the overlap: the first groups are scored after they were handed back, before the last were
        assert handed[0]["start"] <= scored[0]["start"] < handed[-1]["start"], (handed, scored)
