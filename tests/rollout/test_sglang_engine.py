"""The SGLang engine, run for real on CPU against a plain transformers reference.

These tests need the SGLang environment (``bash rollout/sglang_env.sh``) and run as
``$SGLANG_PY -m pytest -q -m sglang tests/rollout``; the main env deselects them (see conftest).
One engine start (about 30 s) serves the whole module.

The reference is transformers' ``Qwen3ForCausalLM`` on the same folder in float32: greedy tokens
by step-by-step argmax of a full forward pass, log-probs by log_softmax of the full-forward logits
of prompt + completion. SGLang computes in bf16, so log-probs agree to ``LOGPROB_ATOL``, and greedy
tokens must each be the reference's argmax given the same prefix, or within ``TIE_MARGIN`` of it
(where bf16 rounding may legitimately pick the other token), and mostly the exact argmax.
"""

from __future__ import annotations

import copy

import math

import pytest
import torch

from funrl.rollout.config import SGLangConfig
from funrl.rollout.hf_engine import HFEngine
from funrl.rollout.protocol import SamplingParams
from funrl.rollout.tiny_llm import make_tiny_qwen3

pytestmark = pytest.mark.sglang

# bf16 engine vs float32 reference. transformers itself in bf16 vs float32 on this model (logits
# up to ~11) differs by up to 0.15 per token and 0.01-0.03 on average over a completion, so: a
# per-token bound of 0.2 and a per-completion mean bound of 0.05.
LOGPROB_ATOL = 0.2
LOGPROB_MEAN_ATOL = 0.05
TIE_MARGIN = 0.25  # reference top-1 minus top-2 logit below which bf16 error may flip the argmax
PROMPTS = ["hello world the quick fox", "transcribe the audio", "one two three four five six seven"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_qwen3(tmp_path_factory.mktemp("tiny_qwen3"))


@pytest.fixture(scope="module")
def ref(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    return tok, model


@pytest.fixture(scope="module")
def engine(model_dir):
    from funrl.rollout.sglang_engine import SGLangEngine

    cfg = SGLangConfig(device="cpu", max_total_tokens=2048, context_length=256)
    eng = SGLangEngine(model_dir, cfg, seed=0, bucket_bytes=int(0.02 * 2**20))
    yield eng
    eng.shutdown()


def prompt_ids(tok) -> list[list[int]]:
    return [tok(p)["input_ids"] for p in PROMPTS]


def embeds_of(model, ids: list[list[int]]) -> list[torch.Tensor]:
    # bf16-representable rows of the embedding table: SGLang's own lookup yields the same values.
    with torch.no_grad():
        return [model.get_input_embeddings()(torch.tensor(i)).to(torch.bfloat16).float() for i in ids]


@torch.no_grad()
def ref_logits(model, prompt: torch.Tensor, completion: list[int]) -> torch.Tensor:
    """``[T, V]`` logits predicting each completion token from the prompt embeddings and its prefix.

    A full forward pass over prompt + completion: row ``t`` equals a step-by-step forward on the
    prefix (causal attention), so an argmax per row is step-by-step greedy on this completion.
    """
    comp = model.get_input_embeddings()(torch.tensor(completion, dtype=torch.long))
    x = torch.cat([prompt, comp])[None]
    return model(inputs_embeds=x).logits[0, len(prompt) - 1 : -1].float()


def ref_logprobs(model, prompt: torch.Tensor, completion: list[int], temperature: float) -> list[float]:
    """log softmax(logits / T) of each completion token given its prefix (T=0: raw logits)."""
    logp = torch.log_softmax(ref_logits(model, prompt, completion) / (temperature or 1.0), dim=-1)
    return logp.gather(1, torch.tensor(completion)[:, None])[:, 0].tolist()


def assert_logprobs_close(got: list[float], want: list[float], temperature: float = 1.0) -> None:
    """Within the bf16 bounds; at temperature T the logit error is divided by T, so are they."""
    assert len(got) == len(want)
    if not got:
        return
    diff = [abs(a - b) for a, b in zip(got, want)]
    scale = 1.0 / (temperature or 1.0)
    assert max(diff) <= LOGPROB_ATOL * scale and sum(diff) / len(diff) <= LOGPROB_MEAN_ATOL * scale, (got, want)


def assert_greedy_under_reference(model, prompt: torch.Tensor, completion: list[int]) -> int:
    """Every token is the reference's argmax given the same prefix, or within ``TIE_MARGIN`` of it
    (a bf16 near-tie). Returns how many tokens are the exact argmax."""
    logits = ref_logits(model, prompt, completion)
    chosen = logits.gather(1, torch.tensor(completion)[:, None])[:, 0]
    gap = logits.max(dim=-1).values - chosen
    assert bool((gap <= TIE_MARGIN).all()), (completion, gap.tolist())
    return int((gap == 0).sum())


def greedy(max_new_tokens=12, stop=()) -> SamplingParams:
    return SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, stop_token_ids=tuple(stop))


def eos_of(tok) -> int:
    return tok.convert_tokens_to_ids("<|im_end|>")


def test_greedy_from_embeddings_equals_greedy_from_token_ids(engine, ref):
    tok, model = ref
    ids = prompt_ids(tok)
    batch = engine.generate(embeds_of(model, ids), n=1, sampling=greedy())
    by_ids = engine.engine.generate(
        input_ids=ids, sampling_params={"temperature": 0.0, "max_new_tokens": 12}, return_logprob=True
    )
    assert batch.prompt_index == [0, 1, 2]
    for row, out in enumerate(by_ids):
        assert batch.token_ids[row] == out["output_ids"]
        want_lp = [p[0] for p in out["meta_info"]["output_token_logprobs"]]
        assert batch.logprobs[row] == pytest.approx(want_lp, abs=1e-3)
    # Both agree with the float32 transformers reference, tokens and log-probs.
    exact = total = 0
    for row, prompt in enumerate(embeds_of(model, ids)):
        got = batch.token_ids[row]
        exact += assert_greedy_under_reference(model, prompt, got)
        total += len(got)
        assert_logprobs_close(batch.logprobs[row], ref_logprobs(model, prompt, got, 0.0))
    assert exact >= 0.8 * total  # near-ties are the exception, not the rule


def test_stop_token_ends_the_completion_and_is_kept(engine, ref):
    tok, model = ref
    ids = prompt_ids(tok)[:1]
    free = engine.generate(embeds_of(model, ids), n=1, sampling=greedy(max_new_tokens=10))
    assert free.finish_reasons == ["length"] and len(free.token_ids[0]) == 10
    # Stop on the 4th greedy token: the completion is cut right after its first occurrence.
    stop = free.token_ids[0][3]
    first = free.token_ids[0].index(stop)
    cut = engine.generate(embeds_of(model, ids), n=1, sampling=greedy(max_new_tokens=10, stop=[stop]))
    assert cut.token_ids[0] == free.token_ids[0][: first + 1]
    assert cut.finish_reasons == ["stop"]
    assert cut.logprobs[0] == pytest.approx(free.logprobs[0][: first + 1], abs=1e-4)


def test_group_samples_are_prompt_major_with_tempered_logprobs(engine, ref):
    tok, model = ref
    ids = prompt_ids(tok)[:2]
    eos = eos_of(tok)
    sp = SamplingParams(temperature=0.7, top_p=0.9, top_k=50, max_new_tokens=8, stop_token_ids=(eos,), seed=123)
    embeds = embeds_of(model, ids)
    with pytest.warns(RuntimeWarning, match="seed=123 is not applied"):
        # torch_native on CPU has no deterministic mode, so the seed is not applied: said aloud.
        batch = engine.generate(embeds, n=4, sampling=sp)
    assert len(batch) == 8 and batch.prompt_index == [0, 0, 0, 0, 1, 1, 1, 1]
    for row in range(8):
        toks, lps, reason = batch.token_ids[row], batch.logprobs[row], batch.finish_reasons[row]
        assert 1 <= len(toks) == len(lps) <= 8
        assert all(math.isfinite(x) and x <= 0.0 for x in lps)
        assert eos not in toks[:-1]  # generation ends at the first stop token
        assert reason == ("stop" if toks[-1] == eos else "length")
        if reason == "length":
            assert len(toks) == 8
        # Log-probs are log softmax(logits / T) before top-p / top-k, teacher-forced on the sample.
        prompt = embeds[batch.prompt_index[row]]
        assert_logprobs_close(lps, ref_logprobs(model, prompt, toks, 0.7), temperature=0.7)
    # The rows of a group are independent samples, not copies.
    assert len({tuple(t) for t in batch.token_ids[:4]}) > 1


def test_groups_come_back_each_once_as_generate_returns_them(engine, ref):
    """generate_groups (rollout.reward_overlap_groups): every prompt's group once, n rows each,
    prompt-major, numbered by prompt; greedy, the reference model's own choices, as generate()'s are
    (bf16 in batches of another shape: near-ties may break the other way, so not compared exactly)."""
    from funrl.rollout.generation import in_prompt_order

    tok, model = ref
    embeds = embeds_of(model, prompt_ids(tok))
    sp = greedy(max_new_tokens=8)
    parts = list(engine.generate_groups(embeds, 2, sp))
    assert sorted(p for part in parts for p in part.prompts) == list(range(len(embeds)))
    for part in parts:
        assert part.batch.prompt_index == [p for p in part.prompts for _ in range(2)]
    merged = in_prompt_order(parts)
    assert merged.prompt_index == [p for p in range(len(embeds)) for _ in range(2)]
    assert_engine_follows_reference(model, [embeds[p] for p in merged.prompt_index], merged)
    assert all(merged.token_ids[2 * p] == merged.token_ids[2 * p + 1] for p in range(len(embeds)))  # greedy


def assert_engine_follows_reference(model, embeds, out) -> None:
    """Every greedy row of the engine's output ``out`` is the reference model's greedy choice (up to
    near-ties; at least 80% of tokens exactly) with the reference's log-probs."""
    exact = total = 0
    for row, prompt in enumerate(embeds):
        got = out.token_ids[row]
        exact += assert_greedy_under_reference(model, prompt, got)
        total += len(got)
        assert_logprobs_close(out.logprobs[row], ref_logprobs(model, prompt, got, 0.0))
    assert exact >= 0.8 * total


def test_weight_push_matches_reference_and_disk_restores(engine, ref, model_dir):
    tok, model = ref
    ids = prompt_ids(tok)
    embeds = embeds_of(model, ids)
    before = engine.generate(embeds, n=1, sampling=greedy())
    original = {k: v.clone() for k, v in model.state_dict().items()}

    # A perturbed copy, rounded to bf16 so the reference holds exactly what the engine holds.
    # Tied embeddings: like a real state dict, lm_head.weight is pushed too and equals the embedding.
    g = torch.Generator().manual_seed(7)
    pushed = {k: (v + 0.5 * v.std() * torch.randn(v.shape, generator=g)).to(torch.bfloat16)
              for k, v in model.named_parameters()}
    assert "lm_head.weight" not in pushed and model.config.tie_word_embeddings
    pushed["lm_head.weight"] = pushed["model.embed_tokens.weight"]
    engine.update_weights(pushed.items())  # 0.02 MiB buckets: several update_weights_from_tensor calls
    model.load_state_dict({k: v.float() for k, v in pushed.items()})
    hf = HFEngine(model_dir)  # funrl's HF engine (float32) given the same push
    hf.update_weights(pushed.items())
    try:
        after = engine.generate(embeds, n=1, sampling=greedy())
        by_hf = hf.generate(embeds, 1, greedy(stop=[eos_of(tok)]))
        assert after.token_ids != before.token_ids  # the push changed the engine's model
        assert_engine_follows_reference(model, embeds, after)
        for row, prompt in enumerate(embeds):
            # funrl's HF engine: same tokens until a near-tie, same log-probs on the common prefix.
            got, hf_got = after.token_ids[row], by_hf.token_ids[row]
            common = next((k for k, (x, y) in enumerate(zip(got, hf_got)) if x != y), min(len(got), len(hf_got)))
            assert_greedy_under_reference(model, prompt, hf_got)
            assert_logprobs_close(after.logprobs[row][:common], by_hf.logprobs[row][:common])
    finally:
        model.load_state_dict(original)

    # The disk path (update_weights_from_disk on safetensors shards) brings the original back.
    engine.cfg.weight_sync = "disk"
    try:
        engine.update_weights(original.items())
    finally:
        engine.cfg.weight_sync = "tensor"
    restored = engine.generate(embeds, n=1, sampling=greedy())
    assert restored.token_ids == before.token_ids
    for a, b in zip(restored.logprobs, before.logprobs):
        assert a == pytest.approx(b, abs=1e-3)


def test_adapter_only_sync_gives_the_merged_policy(engine, ref, model_dir):
    """LoRA: only A, B and the scaling reach the engine, which merges them into the base it loaded."""
    from peft import LoraConfig, get_peft_model

    from funrl.policy.weights import adapter_named_tensors, buckets, merged_named_tensors

    tok, model = ref
    embeds = embeds_of(model, prompt_ids(tok))
    before = engine.generate(embeds, n=1, sampling=greedy())
    original = {k: v.clone() for k, v in model.state_dict().items()}
    policy = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "down_proj"]))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for n, p in policy.named_parameters():
            if "lora_" in n:  # a trained adapter (B starts at zero)
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
    hf = policy.get_base_model()
    for bucket in buckets(adapter_named_tensors(hf), 1000):  # a layer's parts span calls
        engine.update_adapter(bucket)
    # the reference holds the merged weights as the bf16 engine does
    model.load_state_dict({k: v.to(torch.bfloat16).float() for k, v in merged_named_tensors(hf)}, strict=False)
    try:
        after = engine.generate(embeds, n=1, sampling=greedy())
        assert after.token_ids != before.token_ids  # the adapter changed the engine's model
        assert_engine_follows_reference(model, embeds, after)
    finally:
        model.load_state_dict(original)
        engine.update_weights(original.items())  # the base back, for the tests after this one


def test_sleep_and_wake_are_noops_on_cpu_and_guard_generate(engine, ref):
    tok, model = ref
    embeds = embeds_of(model, prompt_ids(tok)[:1])
    before = engine.generate(embeds, n=1, sampling=greedy(max_new_tokens=4))
    engine.sleep()
    with pytest.raises(RuntimeError, match="asleep"):
        engine.generate(embeds, n=1, sampling=greedy(max_new_tokens=4))
    engine.wake()
    assert engine.generate(embeds, n=1, sampling=greedy(max_new_tokens=4)).token_ids == before.token_ids


def test_bad_embedding_shape_names_the_prompt(engine):
    with pytest.raises(ValueError, match=r"prompt_embeds\[1\]"):
        engine.generate([torch.zeros(3, engine.hidden_size), torch.zeros(3, engine.hidden_size + 1)], 1, greedy())
