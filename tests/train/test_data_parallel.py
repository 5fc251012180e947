"""Data-parallel rollout and encoding on Ray, for real on CPU: 2 rollout engines, 2 encoder workers,
2 FSDP2 policy ranks (``rollout.num_engines``, ``model.encoder_workers``; funrl/train/roles.py).

Nothing is mocked: the tiny random model, the HF engine, eSpeak audio, the built-in rewards.
"""

from __future__ import annotations

import dataclasses

import pytest
import ray
import torch

from safetensors.torch import load_file

from funrl.profiling import check_exclusive, load_records
from funrl.rollout.protocol import RolloutBatch
from funrl.train.driver import Trainer
from funrl.train.workers.base import prompt_tensors

from tests.train.test_grpo_ray import config

pytestmark = pytest.mark.slow


def test_two_engines_two_encoders_split_the_prompts_and_both_engines_get_the_weights(
        tmp_path, tiny_corpus, tiny_model, ray_env):
    cfg = config(tmp_path, tiny_corpus, tiny_model, **{
        "rollout.num_engines": 2, "model.encoder_workers": 2, "train.steps": 2, "train.prompts_per_step": 4,
        "algorithm.group_size": 2, "train.samples_every": 0})
    trainer = Trainer(cfg)
    trainer.run_steps()
    roles = trainer.roles
    assert len(roles.engines) == 2 and len(roles.encoders) == 2
    rows = trainer.rows[:5]

    # 1. two encoder workers: each its contiguous slice (2 + 3 rows), together the one worker's embeddings
    split = roles.encode(rows, 99)
    assert isinstance(split, list) and len(split) == 2
    assert [len(prompt_tensors([r])) for r in split] == [2, 3]
    whole = prompt_tensors(ray.get(roles.encoder.encode.remote(rows, 99)))
    parts = prompt_tensors(split)
    assert len(parts) == len(whole) == 5
    for a, b in zip(parts, whole):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)

    # 2. after the last sync both engines score completions exactly as the policy does
    ray.get([e.wake.remote() for e in roles.engines])  # engines sleep between phases
    comp = [[5, 6, 7], [8, 9]]
    pol = ray.get([p.score.remote(split, comp, [0, 3]) for p in roles.policy])[0]
    for eng in roles.engines:
        for e, p in zip(ray.get(eng.score.remote(split, comp, [0, 3])), pol):
            torch.testing.assert_close(e, p, atol=1e-5, rtol=1e-5)

    # 3. the split rollout is engine 0 on prompts 0-1 and engine 1 on prompts 2-4 with its own seed,
    #    in prompt order; the same engine 1 call run on engine 0 gives the same tokens (same weights)
    sampling = dataclasses.replace(cfg.rollout.sampling(), seed=1234, max_new_tokens=4)
    sampling.stop_token_ids = []
    batch, texts = roles.generate(split, 5, 3, sampling, 99)
    first, t0 = ray.get(roles.engines[0].generate.remote(split, 3, sampling, 99, [0, 1]))
    second_seed = dataclasses.replace(sampling, seed=1234 + 104_729)
    second, t1 = ray.get(roles.engines[1].generate.remote(split, 3, second_seed, 99, [2, 3, 4]))
    again, _ = ray.get(roles.engines[0].generate.remote(split, 3, second_seed, 99, [2, 3, 4]))
    want = RolloutBatch.concat([first, second])
    assert batch.token_ids == want.token_ids and texts == t0 + t1
    assert batch.prompt_index == [p for p in range(5) for _ in range(3)]
    assert again.token_ids == second.token_ids

    run_dir = trainer.finish()
    rec = load_records(run_dir)

    # 4. the ownership reports: each policy rank keeps its shard of the weights and of the reference
    #    model and AdamW's two moments (fp32; grads freed, log-prob caches dropped after the update):
    #    about 4x its fp32 weight shard (FSDP2's padding and the storage of tied weights make the exact
    #    figure differ by a few percent); the CPU run records them without a limit
    n = sum(t.numel() for t in load_file(str(tiny_model / "llm" / "model.safetensors")).values())
    shard = 4 * n / 2
    policy_grants = [g for g in rec["grants"] if g["role"] == "policy"]
    assert len(policy_grants) == 2 and all(g["device"] == "cpu" for g in policy_grants)
    for g in policy_grants:
        assert set(g["kept_bytes"]) == {"policy0", "policy1"}
        for rank in ("policy0", "policy1"):
            assert 3.5 * shard < g["kept_bytes"][rank] < 4.5 * shard, (rank, g["kept_bytes"][rank], shard)
        assert g["limit_bytes"] is None
    for rank in ("policy0", "policy1"):  # on CPU, sleep frees nothing: step 1 is granted what step 0 kept
        assert policy_grants[1]["held_bytes"][rank] == policy_grants[0]["kept_bytes"][rank]
        assert policy_grants[0]["held_bytes"][rank] < policy_grants[0]["kept_bytes"][rank]  # AdamW's moments came
    assert check_exclusive(rec["grants"]) == []
    kept = check_exclusive(rec["grants"], limit_bytes=2 * shard)  # a GPU-style limit: the CPU policy keeps it all
    assert {(v.actor, v.grant["role"]) for v in kept} >= {("policy0", "policy"), ("policy1", "policy")}
    for step in range(2):
        spans = [s for s in rec["spans"] if s["step"] == step]
        got = {s["worker"]: s["args"].get("prompts") for s in spans if s["name"] in ("encode", "rollout")
               and s["worker"] != "driver"}
        assert got == {"encoder0": 2, "encoder1": 2, "rollout0": 2, "rollout1": 2}, (step, got)
        syncs = [s for s in spans if s["name"] == "weight_sync"]
        # one gather per policy rank (each names the 2 engines it feeds); every engine loads the buckets
        workers = [s["worker"] for s in syncs]
        assert workers.count("policy0") == workers.count("policy1") == 1
        assert workers.count("rollout0") == workers.count("rollout1") >= 1
        assert all(s["args"]["engines"] == 2 for s in syncs if s["worker"].startswith("policy"))
