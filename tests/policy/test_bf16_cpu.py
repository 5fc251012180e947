"""``policy.param_dtype: bfloat16`` on CPU: FSDP2 computes in bf16 over 2 gloo ranks, the masters stay fp32.

One fork of 2 ranks runs a bf16 PolicyWorker (full fine-tuning, as the demo, with its frozen
reference copy) and an fp32 one on the tiny Qwen3 of ``test_fsdp_worker``, and saves what it saw:
the dtypes inside the forward (a Linear's weight and output) and at the loss, the parameters and
optimizer state before and after one update, and the log-probs. The slow reference is the same
model with its *parameters* cast to bf16 in plain torch (no FSDP; buffers such as the rotary
``inv_freq`` stay fp32, as FSDP2's MixedPrecisionPolicy leaves them), log-softmax in fp32.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
import torch.multiprocessing as mp

import funrl.policy.fsdp_worker as fsdp_worker
from funrl.policy.batch import PolicyBatch
from funrl.policy.fsdp_worker import PolicyWorker
from tests.policy.test_fsdp_worker import ALGO, SPLIT, full_params, make_batch, policy_cfg, run_step, tiny_llm

BF16_TOL = 1e-5  # bf16 policy vs the bf16 reference: measured 5e-7 (same ops, fp32 log-softmax)
FP32_GAP = 1e-3  # bf16 vs fp32 log-probs: measured 3.6e-3 on this model and batch (the update moves them 1.3e-2)


def bf16_cfg(world: int):
    """Full fine-tuning at lr 1e-5 (the default): Adam's first step moves each weight by ~1e-5, below
    bf16's spacing (~1.2e-4 at the init's typical 0.02), so only fp32 masters can hold it."""
    cfg = policy_cfg(world, lora=False)
    return dataclasses.replace(cfg, param_dtype="bfloat16", optim=dataclasses.replace(cfg.optim, lr=1e-5))


def slow_logprobs(model: torch.nn.Module, batch: PolicyBatch, dtype: torch.dtype) -> list[torch.Tensor]:
    """One plain forward per row on [prompt; embed(y)] in ``dtype``; log-softmax of the logits in fp32."""
    out = []
    with torch.no_grad():
        for p, y in zip(batch.prompt_index, batch.completion_ids):
            prompt = batch.prompt_embeds[p].to(dtype)  # [L, H]
            x = torch.cat([prompt, model.get_input_embeddings()(y)])[None]  # [1, L+T, H]
            logits = model(inputs_embeds=x).logits[0].float()  # [L+T, V] fp32 from bf16
            logp = logits.log_softmax(-1)[prompt.shape[0] - 1 : prompt.shape[0] - 1 + y.numel()]  # [T, V]
            out.append(logp.gather(-1, y[:, None])[:, 0])  # [T]
    return out


def with_bf16_params(model: torch.nn.Module) -> torch.nn.Module:
    """Parameters to bf16, buffers untouched (``model.to(bfloat16)`` would also round ``inv_freq``)."""
    for p in model.parameters():
        p.data = p.data.to(torch.bfloat16)
    return model


def model_from(params: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The tiny LLM holding a full fine-tuned worker's parameters (names ``llm.<HF name>``)."""
    model = tiny_llm()
    missing, unexpected = model.load_state_dict({n.removeprefix("llm."): t for n, t in params.items()}, strict=False)
    assert missing == ["lm_head.weight"] and unexpected == []  # tied to the embedding
    return model


def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b) if x.numel())


# ---------------------------------------------------------------------- the 2-rank job
def _rank_main(rank: int, world: int, init: str, out: str) -> None:
    torch.set_num_threads(1)
    rows = list(range(SPLIT)) if rank == 0 else list(range(SPLIT, 8))
    seen: dict[str, set] = {"loss": set(), "logp": set(), "linear_weight": set(), "linear_out": set()}
    grpo_loss = fsdp_worker.compute_grpo_loss

    def recording_loss(logp, *args, **kwargs):
        loss, metrics = grpo_loss(logp, *args, **kwargs)
        seen["logp"].add(logp.dtype)
        seen["loss"].add(loss.dtype)
        return loss, metrics

    fsdp_worker.compute_grpo_loss = recording_loss  # this forked rank's copy of the module only
    res: dict = {}
    w = PolicyWorker(bf16_cfg(world), ALGO, tiny_llm(), rank=rank, init_method=init)
    q_proj = w.model.hf_model().model.layers[0].self_attn.q_proj

    def record_linear(module, args, output) -> None:
        seen["linear_weight"].add(module.weight.dtype)
        seen["linear_out"].add(output.dtype)

    q_proj.register_forward_hook(record_linear)
    res["before"] = full_params(w)
    res["logp_before"] = w.compute_logprobs(make_batch(), "old")
    res["metrics"] = run_step(w, rows)[0]
    res["after"] = full_params(w)
    res["logp_after"] = w.compute_logprobs(make_batch(), "old")
    res["ref_after"] = w.compute_logprobs(make_batch(), "ref")
    res["optim_dtypes"] = {k: v.dtype for s in w.optim.state.values() for k, v in s.items() if k != "step"}
    res["seen"] = seen
    f = PolicyWorker(policy_cfg(world, lora=False), ALGO, tiny_llm(), rank=rank)  # fp32, same weights
    res["fp32_logp"] = f.compute_logprobs(make_batch(), "old")
    if rank == 0:
        torch.save(res, os.path.join(out, "rank0.pt"))
    w.close()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> dict:
    out = str(tmp_path_factory.mktemp("bf16"))
    # fork, as tests/policy/test_fsdp_worker.py (the ranks inherit the imports); nothing in this
    # process has started threads or a process group yet
    mp.start_processes(_rank_main, args=(2, f"file://{out}/rendezvous", out), nprocs=2, join=True, start_method="fork")
    return torch.load(os.path.join(out, "rank0.pt"), weights_only=True)


# ---------------------------------------------------------------------- tests
def test_forward_runs_in_bf16_while_the_loss_and_log_probs_are_fp32(two_ranks):
    seen = two_ranks["seen"]
    assert seen["linear_weight"] == seen["linear_out"] == {torch.bfloat16}  # FSDP2 gathered bf16 params
    assert seen["logp"] == seen["loss"] == {torch.float32}
    for key in ("logp_before", "logp_after", "ref_after"):
        assert {t.dtype for t in two_ranks[key]} == {torch.float32}, key
    m = two_ranks["metrics"]
    assert m["num_tokens"] == 27 and all(torch.isfinite(torch.tensor(v)) for v in m.values())


def test_masters_and_optimizer_state_stay_fp32_and_keep_steps_finer_than_bf16(two_ranks):
    before, after = two_ranks["before"], two_ranks["after"]
    assert len(before) == 2 * 11 + 2
    for n in before:
        assert before[n].dtype == after[n].dtype == torch.float32, n
        assert not torch.equal(before[n], after[n]), n
        assert not torch.equal(after[n], after[n].bfloat16().float()), n  # not bf16 values stored as fp32
    # most of the step is finer than bf16's spacing at the weight: bf16 masters would have lost it
    fine = sum(int(((after[n] != before[n]) & (after[n].bfloat16() == before[n].bfloat16())).sum()) for n in before)
    assert fine > 0.5 * sum(t.numel() for t in before.values())
    assert set(two_ranks["optim_dtypes"].values()) == {torch.float32}
    assert set(two_ranks["optim_dtypes"]) == {"exp_avg", "exp_avg_sq"}


def test_bf16_log_probs_match_a_plain_bf16_model_and_differ_from_fp32(two_ranks):
    batch = make_batch()
    want_before = slow_logprobs(with_bf16_params(tiny_llm()), batch, torch.bfloat16)
    want_after = slow_logprobs(with_bf16_params(model_from(two_ranks["after"])), batch, torch.bfloat16)
    assert max_diff(two_ranks["logp_before"], want_before) < BF16_TOL
    assert max_diff(two_ranks["logp_after"], want_after) < BF16_TOL  # bf16 copies of the updated fp32 masters
    assert max_diff(want_after, want_before) > FP32_GAP  # measured 1.3e-2: stale bf16 weights would show
    assert max_diff(two_ranks["ref_after"], want_before) < BF16_TOL  # the frozen reference, also in bf16
    # fp32 reference and fp32 worker: the bf16 result is measurably elsewhere (no silent fp32 fallback)
    fp32 = slow_logprobs(tiny_llm(), batch, torch.float32)
    assert max_diff(two_ranks["fp32_logp"], fp32) < BF16_TOL
    assert max_diff(two_ranks["logp_before"], two_ranks["fp32_logp"]) > FP32_GAP

