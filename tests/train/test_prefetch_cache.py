"""Prompt embeddings off the critical path: the per-row cache (``model.embed_cache_mib``) and the
prefetch of the next step's prompts (``train.prefetch_prompts``). Real encoder, real Ray runs."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from funrl.data.manifest import load_manifest
from funrl.profiling import load_records
from funrl.train import checkpoint as ckpt
from funrl.train.driver import Trainer
from funrl.train.workers.base import prompt_tensors
from funrl.train.workers.encoder import EmbedCache, EncoderWorker

from tests.train.test_grpo_ray import config


def rows_of(corpus, n):
    return [u.to_dict() for u in load_manifest(corpus / "train.jsonl")][:n]


def test_the_cache_returns_the_encoders_own_embeddings_and_stays_within_its_bound(tiny_corpus, tiny_model):
    rows = rows_of(tiny_corpus, 5)
    cached = EncoderWorker("encoder0", str(tiny_model), cache_mib=64)
    plain = EncoderWorker("encoder1", str(tiny_model))
    first = prompt_tensors(cached.encode(rows[:3], 0))
    second = prompt_tensors(cached.encode(rows[1:5], 1))  # rows 1-2 from the cache, 3-4 computed
    hits = [s["args"]["cache_hits"] for s in cached.rec.drain() if s["name"] == "encode"]
    assert hits == [0, 2]
    assert torch.equal(second[0], first[1]) and torch.equal(second[1], first[2])  # the very tensors it made
    fresh = prompt_tensors(plain.encode(rows[1:5], 1))  # a worker without a cache, the same batch
    for a, b in zip(second, fresh):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert [s["args"]["cache_hits"] for s in plain.rec.drain() if s["name"] == "encode"] == [0]

    # the bound: room for two of these embeddings; the least recently used goes first
    size = first[0].numel() * 4
    small = EmbedCache(2 * size + size // 2)
    keys = [EmbedCache.key(r) for r in rows[:3]]
    for k in keys:
        small.put(k, torch.zeros_like(first[0]))
    assert len(small) == 2 and small.used <= small.limit
    assert small.get(keys[0]) is None and small.get(keys[2]) is not None
    changed = dict(rows[0], text="another reference")  # any field of the row is part of the key
    assert EmbedCache.key(changed) != keys[0]


@pytest.mark.slow
def test_prefetch_trains_the_same_rows_in_the_same_order_encoded_during_the_step_before(
        tmp_path, tiny_corpus, tiny_model, ray_env):
    common = {"train.steps": 3, "checkpoint.every": 2, "checkpoint.keep_last": 3, "policy.world_size": 1}
    plain = Trainer(config(tmp_path / "a", tiny_corpus, tiny_model, **common))
    plain.run_steps()
    want = load_file(str(plain.finish() / "model" / "llm" / "model.safetensors"))

    pre = Trainer(config(tmp_path / "b", tiny_corpus, tiny_model, **common,
                         **{"train.prefetch_prompts": True, "model.embed_cache_mib": 16}))
    pre.run_steps()
    run_dir = pre.finish()
    got = load_file(str(run_dir / "model" / "llm" / "model.safetensors"))
    for k in want:  # the same rows, the same embeddings: the same training
        assert torch.equal(got[k], want[k]), k

    rec = load_records(run_dir)
    encodes = {s["step"]: s for s in rec["spans"] if s["name"] == "encode" and s["worker"] == "encoder0"}
    steps = {s["step"]: s for s in rec["steps"]}
    for step in (1, 2):  # encoded during the step before (its rewards, update and weight sync)
        assert steps[step - 1]["start"] < encodes[step]["start"] < steps[step - 1]["end"], step

    # a checkpoint keeps the sampler from before the prefetched draw: a resume replays the run
    resumed = Trainer(config(tmp_path / "b", tiny_corpus, tiny_model, **common,
                             **{"train.prefetch_prompts": True, "train.resume": str(ckpt.list_checkpoints(run_dir)[0][1])}))
    resumed.run_steps()
    again = load_file(str(resumed.finish() / "model" / "llm" / "model.safetensors"))
    for k in want:
        assert torch.equal(again[k], want[k]), k
