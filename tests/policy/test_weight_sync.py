"""Weight sync, policy → HF engine, at the unit level: a real PolicyWorker (FSDP2, 1 gloo rank) and a real HFEngine.

- LoRA: the adapter-only sync (A, B, scaling per layer; the engine merges into the base it
  loaded) leaves the engine with exactly the weights the full merged sync gives, and the
  engine's log-probs equal the policy's to the tolerance of tests/train/test_grpo_ray.py.
- Full fine-tuning with a frozen embedding (frozen right after the worker is built, before any
  forward, as a model with a frozen part would be): the sync carries only the parameters that
  train, and the engine's log-probs still equal the policy's.
"""

from __future__ import annotations

import pytest
import torch

from funrl.policy.fsdp_worker import PolicyWorker
from funrl.policy.teacher_forcing import completion_logprobs
from funrl.rollout.hf_engine import HFEngine
from tests.policy.test_fsdp_worker import ALGO, make_batch, old_noise, policy_cfg, tiny_llm


@pytest.fixture(scope="module")
def llm_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("llm")
    tiny_llm().save_pretrained(path)  # what the engine loads; the policy gets the same weights (seeded)
    return path


def train_two_steps(w: PolicyWorker) -> None:
    batch = make_batch()
    for _ in range(2):
        old = w.compute_logprobs(batch, "old")
        batch.old_logprobs = [o + n for o, n in zip(old, old_noise())]
        batch.ref_logprobs = w.compute_logprobs(batch, "ref")
        w.update(batch)


def engine_logprobs(eng: HFEngine) -> list[torch.Tensor]:
    b = make_batch()
    with torch.inference_mode():
        lp, _, _ = completion_logprobs(eng.model, b.prompt_embeds, b.prompt_index, b.completion_ids, shared=False)
    return [lp[i, : len(c)] for i, c in enumerate(b.completion_ids)]


def sync(w: PolicyWorker, eng: HFEngine) -> dict[str, list[str]]:
    """The new sync (what PolicyActor.push_weights sends), small buckets; returns names by kind."""
    sent: dict[str, list[str]] = {"adapter": [], "weights": []}
    for kind, bucket in w.export_update(bucket_bytes=4 << 10):  # 4 KiB: a layer's A, B, scaling span buckets
        (eng.update_adapter if kind == "adapter" else eng.update_weights)(bucket)
        sent[kind] += [n for n, _ in bucket]
    return sent


def test_adapter_only_sync_equals_the_merged_sync_and_the_policy(llm_dir, tmp_path):
    w = PolicyWorker(policy_cfg(1), ALGO, tiny_llm(), init_method=f"file://{tmp_path}/rendezvous")
    try:
        merged, adapter = HFEngine(llm_dir), HFEngine(llm_dir)
        for step in range(2):  # twice: the second merge must start again from W0, not from the merged weight
            train_two_steps(w)
            sent = sync(w, adapter)
            for bucket in w.export_weights(bucket_bytes=1 << 30):
                merged.update_weights(bucket)
            # only the adapter went: 2 layers x 3 targets x (A, B, scaling), nothing else
            assert sent["weights"] == [] and len(sent["adapter"]) == 2 * 3 * 3
            assert all(n.endswith(("lora_A", "lora_B", "lora_scaling")) and "base_model" not in n for n in sent["adapter"])
            assert not adapter._adapter.pending  # every layer's three parts arrived and were merged
            for name, p in merged.model.named_parameters():  # bit for bit on CPU float32
                assert torch.equal(p, dict(adapter.model.named_parameters())[name]), (step, name)
            policy = w.compute_logprobs(make_batch(), "old")
            for got, want in zip(engine_logprobs(adapter), policy):
                torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        base = HFEngine(llm_dir)
        q = "model.layers.0.self_attn.q_proj.weight"
        assert not torch.equal(dict(adapter.model.named_parameters())[q], dict(base.model.named_parameters())[q])
    finally:
        w.close()


def test_full_finetuning_sync_skips_frozen_parameters(llm_dir, tmp_path):
    w = PolicyWorker(policy_cfg(1, lora=False), ALGO, tiny_llm(), init_method=f"file://{tmp_path}/rendezvous")
    try:
        hf = w.model.hf_model()
        hf.model.embed_tokens.weight.requires_grad_(False)  # tied: lm_head is the same parameter
        emb_before = hf.model.embed_tokens.weight.full_tensor().clone()
        eng = HFEngine(llm_dir)
        train_two_steps(w)
        assert torch.equal(hf.model.embed_tokens.weight.full_tensor(), emb_before)  # it did not train
        sent = sync(w, eng)
        trainable = {n for n, p in hf.named_parameters() if p.requires_grad}
        assert sent["adapter"] == [] and set(sent["weights"]) == trainable
        assert len(trainable) == 2 * 11 + 1  # per layer 7 linears + 4 norms, and the final norm
        assert "model.embed_tokens.weight" not in sent["weights"] and "lm_head.weight" not in sent["weights"]
        policy = w.compute_logprobs(make_batch(), "old")
        for got, want in zip(engine_logprobs(eng), policy):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
        # and the sync did change the engine (a no-op sync would fail here)
        before = engine_logprobs(HFEngine(llm_dir))
        assert max((a - b).abs().max() for a, b in zip(before, policy) if a.numel()) > 1e-4
    finally:
        w.close()
