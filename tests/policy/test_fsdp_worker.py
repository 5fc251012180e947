"""PolicyWorker on real FSDP2 over 2 gloo ranks on CPU, against one process and a slow HF reference.

One spawn of 2 ranks runs every distributed scenario and saves what it saw (imports dominate the
cost); the single-process runs happen in the pytest process itself (world size 1). The model is a
tiny Qwen3ForCausalLM fed prompt embeddings, as the audio LLM's decoder is.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from transformers import Qwen3Config, Qwen3ForCausalLM

from funrl.policy.batch import PolicyBatch
from funrl.policy.config import AlgorithmConfig, LoraSettings, OptimSettings, PolicyConfig
from funrl.policy.fsdp_worker import PolicyWorker

HIDDEN, VOCAB = 64, 97
SPLIT = 5  # rank 0 gets rows [0, 5), rank 1 rows [5, 8): 3 vs 2 micro-batches of 2 (a dummy pass on rank 1)
ALGO = AlgorithmConfig(kl_coef=0.1, clip_low=0.1, clip_high=0.1)


def tiny_llm() -> Qwen3ForCausalLM:
    torch.manual_seed(1234)
    cfg = Qwen3Config(
        vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, tie_word_embeddings=True, max_position_embeddings=64,
    )
    return Qwen3ForCausalLM(cfg).eval()


def make_batch() -> PolicyBatch:
    """4 prompts x G=2; prompt lengths 3..6, completion lengths 0..6 (row 3 is empty)."""
    g = torch.Generator().manual_seed(7)
    prompts = [torch.randn(3 + p, HIDDEN, generator=g) for p in range(4)]
    lengths = [4, 6, 1, 0, 5, 3, 2, 6]
    ids = [torch.randint(0, VOCAB, (n,), generator=g) for n in lengths]
    adv = torch.randn(8, generator=g)
    return PolicyBatch(prompts, [i // 2 for i in range(8)], ids, advantages=adv)


def old_noise() -> list[torch.Tensor]:
    """Fixed perturbation of the old log-probs so ratios differ from 1 and some are clipped."""
    g = torch.Generator().manual_seed(11)
    return [0.2 * torch.randn(y.numel(), generator=g) for y in make_batch().completion_ids]


def policy_cfg(
    world: int, *, lora: bool = True, mbs: int = 2, dropout: float = 0.0, gc: bool = False, warmup: int = 0,
    share: bool = True,
) -> PolicyConfig:
    return PolicyConfig(
        world_size=world, micro_batch_size=mbs, logprob_micro_batch_size=3, gradient_checkpointing=gc, share_prompt=share,
        lora=LoraSettings(enabled=lora, r=4, alpha=8.0, dropout=dropout, target_modules=["q_proj", "v_proj", "down_proj"]),
        optim=OptimSettings(lr=1e-2, max_grad_norm=0.05, warmup_steps=warmup, schedule="cosine", total_steps=10),
    )


def slow_logprobs(model: torch.nn.Module, batch: PolicyBatch) -> list[torch.Tensor]:
    """Obvious reference: one plain HF forward per row on [prompt; embed(y)], log-softmax, pick y_t."""
    out = []
    with torch.no_grad():
        for p, y in zip(batch.prompt_index, batch.completion_ids):
            prompt = batch.prompt_embeds[p]
            x = torch.cat([prompt, model.get_input_embeddings()(y)])[None]  # [1, L+T, H]
            logits = model(inputs_embeds=x).logits[0].float()  # [L+T, V]
            logp = logits.log_softmax(-1)[prompt.shape[0] - 1 : prompt.shape[0] - 1 + y.numel()]  # [T, V]
            out.append(logp.gather(-1, y[:, None])[:, 0])  # [T]
    return out


def full_params(w: PolicyWorker) -> dict[str, torch.Tensor]:
    """Full parameter tensors by name (collective)."""
    return {n: (p.full_tensor() if hasattr(p, "full_tensor") else p).detach().clone() for n, p in w.model.named_parameters()}


def run_step(w: PolicyWorker, rows: list[int], steps: int = 1) -> list[dict]:
    batch = make_batch().rows(rows)
    noise = [old_noise()[i] for i in rows]
    metrics = []
    for _ in range(steps):
        old = w.compute_logprobs(batch, "old")
        batch.old_logprobs = [o + n for o, n in zip(old, noise)]
        batch.ref_logprobs = w.compute_logprobs(batch, "ref")
        metrics.append(w.update(batch))
    return metrics


# ---------------------------------------------------------------------- the 2-rank job
def _rank_main(rank: int, world: int, init: str, out: str) -> None:
    torch.set_num_threads(1)
    rows = list(range(SPLIT)) if rank == 0 else list(range(SPLIT, 8))
    res: dict = {}
    # (1)(2)(3) LoRA: one update on half the batch each, then log-probs, ref log-probs, export
    w = PolicyWorker(policy_cfg(world), ALGO, tiny_llm(), rank=rank, init_method=init)
    before = full_params(w)
    res["lora_metrics"] = run_step(w, rows, steps=2)
    res["lora_before"], res["lora_after"] = before, full_params(w)
    res["lora_ref"] = w.compute_logprobs(make_batch(), "ref")
    res["lora_old"] = w.compute_logprobs(make_batch(), "old")
    res["export"] = [[(n, t.clone()) for n, t in b] for b in w.export_weights(bucket_bytes=16 << 10)]
    res["update"] = [(k, [(n, t.clone()) for n, t in b]) for k, b in w.export_update(bucket_bytes=16 << 10)]
    # (2) full fine-tuning with a frozen, sharded reference copy
    f = PolicyWorker(policy_cfg(world, lora=False), ALGO, tiny_llm(), rank=rank)
    before = full_params(f)
    res["ft_metrics"] = run_step(f, rows)
    res["ft_before"], res["ft_after"] = before, full_params(f)
    res["ft_ref"] = f.compute_logprobs(make_batch(), "ref")
    # (4) checkpoint: 2 steps, save, 1 step; vs a fresh worker that loads and takes 1 step (dropout on)
    ckpt = os.path.join(out, "ckpt")
    a = PolicyWorker(policy_cfg(world, dropout=0.2, warmup=1), ALGO, tiny_llm(), rank=rank)
    run_step(a, rows, steps=2)
    a.save(ckpt)
    res["ckpt_next_a"] = run_step(a, rows)[0]
    res["ckpt_params_a"] = full_params(a)
    b = PolicyWorker(policy_cfg(world, dropout=0.2, warmup=1), ALGO, tiny_llm(), rank=rank)
    b.load(ckpt)
    res["ckpt_next_b"] = run_step(b, rows)[0]
    res["ckpt_params_b"] = full_params(b)
    if rank == 0:
        torch.save(res, os.path.join(out, "rank0.pt"))
    w.close()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> dict:
    out = str(tmp_path_factory.mktemp("fsdp2"))
    # fork, not spawn: the ranks inherit the imported torch/transformers/peft (re-importing them is most
    # of the cost). Safe here because this fixture runs before this process starts any thread pool or
    # process group (one_rank depends on it).
    mp.start_processes(_rank_main, args=(2, f"file://{out}/rendezvous", out), nprocs=2, join=True, start_method="fork")
    return torch.load(os.path.join(out, "rank0.pt"), weights_only=False)


@pytest.fixture(scope="module")
def one_rank(two_ranks, tmp_path_factory) -> dict:
    """World size 1 in this process: the whole batch, micro-batches of 2, and of 1 with gradient checkpointing."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("fsdp1")
    res = {}
    w = PolicyWorker(policy_cfg(1), ALGO, tiny_llm(), init_method=f"file://{out}/rendezvous")
    try:
        res["metrics"] = run_step(w, list(range(8)), steps=2)
        res["after"] = full_params(w)
        m = PolicyWorker(policy_cfg(1, mbs=1, gc=True), ALGO, tiny_llm())
        res["mb1_checkpointing"] = m.model.hf_model().is_activation_checkpointing
        res["mb1_metrics"] = run_step(m, list(range(8)), steps=2)
        res["mb1_after"] = full_params(m)
        # one row per prompt copy (share_prompt off) vs the default shared segments, micro-batches of 4
        for share in (False, True):
            u = PolicyWorker(policy_cfg(1, mbs=4, share=share), ALGO, tiny_llm())
            res[f"share_{share}"] = (run_step(u, list(range(8)), steps=2), full_params(u),
                                     u.compute_logprobs(make_batch(), "old"))
        # on-policy shortcut: old log-probs = the update's own, detached (no separate pass)
        for shortcut in (False, True):
            v = PolicyWorker(policy_cfg(1), ALGO, tiny_llm())
            batch = make_batch()
            batch.ref_logprobs = v.compute_logprobs(batch, "ref")
            batch.old_logprobs = None if shortcut else v.compute_logprobs(batch, "old")
            res[f"onpolicy_{shortcut}"] = (v.update(batch), full_params(v))
    finally:
        w.close()
    return res


def _assert_close_dicts(a: dict, b: dict, atol: float = 1e-5) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=1e-5, msg=lambda m: f"{k}: {m}")


# ---------------------------------------------------------------------- tests
def test_two_ranks_match_one_process(two_ranks, one_rank):
    for m2, m1 in zip(two_ranks["lora_metrics"], one_rank["metrics"]):
        for k in ("loss", "pg_loss", "kl_loss", "grad_norm", "clip_frac_low", "clip_frac_high", "ratio_min", "ratio_max"):
            assert m2[k] == pytest.approx(m1[k], abs=1e-5), k
        assert m2["num_tokens"] == m1["num_tokens"] == 27  # 4+6+1+0+5+3+2+6
        assert m2["num_seqs"] == m1["num_seqs"] == 7  # row 3 is empty
    # lr: cosine over 10 steps, no warm-up: step 0 at 1e-2, step 1 at 1e-2·(1+cos(π/10))/2 = 9.7553e-3
    assert [m["lr"] for m in two_ranks["lora_metrics"]] == pytest.approx([1e-2, 9.7553e-3], abs=1e-7)
    # the clip is active (max_grad_norm 0.05), so a wrong DTensor norm would show in the params too
    assert one_rank["metrics"][0]["grad_norm"] > 0.05
    _assert_close_dicts(two_ranks["lora_after"], one_rank["after"])


def test_micro_batch_count_and_checkpointing_do_not_change_the_update(one_rank):
    assert one_rank["mb1_checkpointing"]  # micro-batches of 1 ran with activation checkpointing
    for ma, mb in zip(one_rank["metrics"], one_rank["mb1_metrics"]):
        assert ma["loss"] == pytest.approx(mb["loss"], abs=1e-6)
        assert ma["grad_norm"] == pytest.approx(mb["grad_norm"], abs=1e-6)  # Adam would hide a uniform scale
    _assert_close_dicts(one_rank["after"], one_rank["mb1_after"])


def test_shared_prompt_segments_give_the_same_update_as_one_row_per_sample(one_rank):
    (m_rows, p_rows, lp_rows), (m_seg, p_seg, lp_seg) = one_rank["share_False"], one_rank["share_True"]
    for a, b in zip(m_rows, m_seg):
        for k in ("loss", "pg_loss", "kl_loss", "grad_norm", "entropy"):
            assert a[k] == pytest.approx(b[k], abs=1e-6), k
    _assert_close_dicts(p_rows, p_seg)
    for a, b in zip(lp_rows, lp_seg):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_lora_trains_only_the_adapter_and_ref_is_the_base_model(two_ranks):
    before, after = two_ranks["lora_before"], two_ranks["lora_after"]
    lora = [n for n in before if "lora_" in n]
    assert len(lora) == 2 * 2 * 3  # 2 layers x 3 target modules x (A, B)
    for n in before:
        changed = not torch.equal(before[n], after[n])
        assert changed == (n in lora), n
    # adapter disabled == the untouched base model, row by row (slow HF reference)
    for got, want in zip(two_ranks["lora_ref"], slow_logprobs(tiny_llm(), make_batch())):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # and the adapter does change the policy (the update was not a no-op)
    diffs = [(a - b).abs().max() for a, b in zip(two_ranks["lora_old"], two_ranks["lora_ref"]) if a.numel()]
    assert max(diffs) > 1e-3


def test_full_finetuning_changes_every_parameter_and_keeps_a_frozen_reference(two_ranks):
    before, after = two_ranks["ft_before"], two_ranks["ft_after"]
    assert len(before) == 2 * 11 + 2  # per layer: 7 linears + 4 norms; plus embed (tied lm_head) and final norm
    for n in before:
        assert not torch.equal(before[n], after[n]), n
    for got, want in zip(two_ranks["ft_ref"], slow_logprobs(tiny_llm(), make_batch())):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_exported_merged_weights_reproduce_the_policy_in_plain_hf(two_ranks):
    buckets = two_ranks["export"]
    assert len(buckets) > 1 and all(sum(t.numel() * 4 for _, t in b) <= 16 << 10 for b in buckets if len(b) > 1)
    named = dict(kv for b in buckets for kv in b)
    plain = tiny_llm()
    assert set(named) == set(plain.state_dict()) - {"lm_head.weight"}  # tied: sent once as the embedding
    missing, unexpected = plain.load_state_dict(named, strict=False)
    assert missing == ["lm_head.weight"] and unexpected == []
    assert plain.lm_head.weight is plain.model.embed_tokens.weight
    for got, want in zip(slow_logprobs(plain, make_batch()), two_ranks["lora_old"]):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_adapter_export_gathers_the_full_lora_tensors_over_two_ranks(two_ranks):
    """What the weight sync sends under LoRA on 2 ranks: the whole A and B of each layer, nothing else."""
    sent = [(k, n, t) for k, b in two_ranks["update"] for n, t in b]
    assert {k for k, _, _ in sent} == {"adapter"}
    params = two_ranks["lora_after"]  # full tensors by parameter name
    for _, name, t in sent:
        prefix, _, part = name.rpartition(".")
        if part == "lora_scaling":
            assert t.item() == 8.0 / 4  # alpha / r
        else:
            assert torch.equal(t, params[f"llm.base_model.model.{prefix}.{part}.default.weight"]), name
    assert len(sent) == 2 * 3 * 3  # 2 layers x 3 targets x (A, B, scaling)


def test_checkpoint_restore_reproduces_the_next_update_exactly(two_ranks):
    a, b = two_ranks["ckpt_params_a"], two_ranks["ckpt_params_b"]
    assert a.keys() == b.keys()
    for n in a:
        assert torch.equal(a[n], b[n]), n
    assert two_ranks["ckpt_next_a"] == two_ranks["ckpt_next_b"]  # every metric, lr and step included


def test_on_policy_old_logprobs_shortcut_equals_a_separate_pass(one_rank):
    (m_pass, p_pass), (m_short, p_short) = one_rank["onpolicy_False"], one_rank["onpolicy_True"]
    assert m_short["ratio_mean"] == 1.0 and m_short["clip_frac_low"] == 0.0  # exactly on-policy
    assert m_pass["ratio_mean"] == pytest.approx(1.0, abs=1e-5)
    for k in ("loss", "pg_loss", "kl_ref", "grad_norm"):
        assert m_short[k] == pytest.approx(m_pass[k], rel=1e-4, abs=1e-6), k
    _assert_close_dicts(p_short, p_pass)


def test_bad_config_and_batch_errors_name_the_key_and_row():
    with pytest.raises(ValueError, match=r"policy.optim.total_steps: expected an integer > optim.warmup_steps"):
        PolicyConfig(optim=OptimSettings(schedule="cosine", warmup_steps=5, total_steps=5))
    batch = make_batch()
    batch.old_logprobs = [torch.zeros(y.numel()) for y in batch.completion_ids]
    batch.old_logprobs[2] = torch.zeros(3)  # row 2 has 1 token
    with pytest.raises(ValueError, match=r"old_logprobs\[2\] is \(3,\) but completion_ids\[2\] is \(1,\)"):
        batch.validate()
    batch.prompt_index[5] = 4
    with pytest.raises(ValueError, match=r"prompt_index\[5\] = 4 but there are 4 prompt embeddings"):
        batch.validate()
