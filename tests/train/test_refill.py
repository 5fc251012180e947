"""DAPO dynamic sampling with refill: the batch built from several rounds by hand, and a real run on
Ray whose reward makes half the groups teach nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from funrl.config import load_config
from funrl.rollout.protocol import RolloutBatch
from funrl.train.refill import combine_rounds, informative_groups
from funrl.train.transport import PackedTensors
from funrl.train.workers.base import prompt_tensors

PLUGINS = Path(__file__).with_name("fault_plugins.py")


def a_round(tag: str, totals: list[float]):
    """B=2 prompts, G=2: prompt p's embedding is filled with 10*ord(tag)+p, completion i is [i]."""
    rows = [{"id": f"{tag}{p}"} for p in range(2)]
    embeds = PackedTensors.pack([(str(p), torch.full((3, 4), 10.0 * ord(tag) + p)) for p in range(2)])
    rollout = RolloutBatch([[i] for i in range(4)], [[-0.1 * i] for i in range(4)], ["stop", "length"] * 2, [0, 0, 1, 1])
    rewards = {"total": totals, "components": {"acc": list(totals), "kw": [None, 1.0, None, 0.0]}, "error_rates": {"wer": "acc"}}
    return rows, embeds, rollout, [f"{tag}{i}" for i in range(4)], rewards


def test_informative_groups():
    assert informative_groups([1.0, 1.0, 0.0, 1.0, 0.5, 0.5], 2) == [1]
    assert informative_groups([0.0, 0.0], 2) == []


def test_the_first_informative_groups_in_draw_order():
    # round a: group 0 all equal, group 1 teaches; round b: both teach -> a1, b0 (b1 is not needed)
    rows, embeds, rollout, texts, rewards = combine_rounds(
        [a_round("a", [1.0, 1.0, 0.0, 1.0]), a_round("b", [0.2, 0.4, 0.0, 1.0])], group_size=2, want=2)
    assert [r["id"] for r in rows] == ["a1", "b0"]
    assert [float(e[0, 0]) for e in prompt_tensors(embeds)] == [10.0 * ord("a") + 1, 10.0 * ord("b")]
    assert texts == ["a2", "a3", "b0", "b1"]
    assert rollout.token_ids == [[2], [3], [0], [1]] and rollout.prompt_index == [0, 0, 1, 1]
    assert rollout.logprobs == [[-0.2], [-0.30000000000000004], [0.0], [-0.1]]
    assert rollout.finish_reasons == ["stop", "length", "stop", "length"]
    assert rewards["total"] == [0.0, 1.0, 0.2, 0.4]
    assert rewards["components"] == {"acc": [0.0, 1.0, 0.2, 0.4], "kw": [None, 0.0, None, 1.0]}
    assert rewards["error_rates"] == {"wer": "acc"}


def test_fewer_informative_groups_than_wanted_gives_what_there_is():
    rows, _, rollout, _, _ = combine_rounds([a_round("a", [1.0, 1.0, 0.0, 1.0])], group_size=2, want=2)
    assert [r["id"] for r in rows] == ["a1"] and rollout.prompt_index == [0, 0]


def test_refill_needs_the_filter():
    with pytest.raises(Exception, match="algorithm.max_refill_rounds"):
        load_config(None, ["algorithm.max_refill_rounds=2"])


@pytest.mark.slow
def test_a_run_refills_until_every_group_teaches(tmp_path, tiny_corpus, tiny_model, ray_env):
    from tests.train.runs import train_to_end

    run_dir, rows = train_to_end([
        f"run.output_dir={tmp_path}", "run.name=refill", f"data.train_manifest={tiny_corpus / 'train.jsonl'}",
        f"model.path={tiny_model}", "train.steps=3", "train.prompts_per_step=2", "algorithm.group_size=2",
        f"rewards.components=[{{name: '{PLUGINS}:constant_on_even_ids'}}]", "algorithm.kl_coef=0",
        "algorithm.filter_zero_variance_groups=true", "algorithm.max_refill_rounds=4", "rollout.max_new_tokens=6",
        "train.samples_every=1", "policy.world_size=1", "checkpoint.every=0", "checkpoint.save_final=false",
        "cluster.num_cpus=2", "profile.enabled=false",
    ])
    recs = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert recs and all(int(r["id"][-1]) % 2 == 1 for r in recs)  # no group of an even id was kept
    assert all(len({s["reward"] for s in r["samples"]}) > 1 for r in recs)  # every kept group teaches
    refilled = [r for r in rows if "adv/refill_rounds" in r]
    assert refilled, "the test wants at least one step that refilled"
    for r in refilled:
        assert 1 <= r["adv/refill_rounds"] <= 4 and 0 < r["adv/zero_variance_share"] < 1
        if r["adv/refill_rounds"] < 4:  # stopped because it had B groups that teach: a full batch
            assert r["num_seqs"] == 4
