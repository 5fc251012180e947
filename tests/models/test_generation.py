"""Generation from prompt embeddings against a full forward pass (the slow, obvious reference)."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM

from funrl.models.generation import generate
from funrl.models.prompt import build_prompt_embeds, completion_logprobs, pack_completions
from funrl.rollout.protocol import SamplingParams

from funrl.models.testing import SAMPLES, random_batch


def _prompts(model, tok):
    feats, lengths = random_batch(3)
    with torch.no_grad():
        return build_prompt_embeds(model, tok, model.encode_audio(feats, lengths), SAMPLES).embeds


def _full_logits(model, prompts, completions):
    """Logits predicting each completion token, from one uncached forward pass: [N, C, V]."""
    inputs, attn, pos, targets, tmask, p = pack_completions(model.llm, prompts, completions)
    with torch.no_grad():
        logits = model.llm(inputs_embeds=inputs, attention_mask=attn, position_ids=pos).logits
    return logits[:, p - 1 : -1], tmask


@pytest.mark.parametrize("lean", [True, False], ids=["kv_decoder", "transformers"])
def test_greedy_tokens_are_argmax_of_full_forward_and_logprobs_match(tiny, lean):
    model, tok = tiny
    prompts = _prompts(model, tok)
    out = generate(model, prompts, 1, SamplingParams(temperature=0.0, max_new_tokens=6, stop_token_ids=[-1]), lean=lean)
    assert [len(t) for t in out.token_ids] == [6, 6, 6] and out.finish_reasons == ["length"] * 3
    logits, mask = _full_logits(model, prompts, out.token_ids)
    assert torch.equal(logits.argmax(-1), torch.tensor(out.token_ids))
    ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(out.token_ids)[..., None]).squeeze(-1)
    torch.testing.assert_close(torch.tensor(out.logprobs), ref, rtol=0, atol=2e-5)


@pytest.mark.parametrize("lean", [True, False], ids=["kv_decoder", "transformers"])
def test_sampled_logprobs_are_tempered_untruncated_and_prompt_major(tiny, lean):
    model, tok = tiny
    prompts = _prompts(model, tok)
    sp = SamplingParams(temperature=0.7, top_k=5, max_new_tokens=5, stop_token_ids=[-1], seed=3)
    out = generate(model, prompts, 4, sp, lean=lean)
    assert out.prompt_index == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    rows = [prompts[i] for i in out.prompt_index]
    logits, _ = _full_logits(model, rows, out.token_ids)
    toks = torch.tensor(out.token_ids)
    # every sampled token lies in the top 5 of its step (top-k truncation applied) ...
    assert torch.all((logits > logits.gather(-1, toks[..., None])).sum(-1) < 5)
    # ... but its logprob is log_softmax(logits / T) over the whole vocabulary
    ref = torch.log_softmax(logits / 0.7, -1).gather(-1, toks[..., None]).squeeze(-1)
    torch.testing.assert_close(torch.tensor(out.logprobs), ref, rtol=0, atol=2e-5)
    lp, mask = completion_logprobs(model, rows, out.token_ids, temperature=0.7)
    torch.testing.assert_close(lp.detach(), ref, rtol=0, atol=2e-5)
    assert generate(model, prompts, 4, sp, lean=lean).token_ids == out.token_ids  # seeded: reproducible
    assert len({tuple(t) for t in out.token_ids}) > 3  # and actually sampled


def test_stop_token_ends_a_completion_and_is_included(tiny):
    model, tok = tiny
    prompts = _prompts(model, tok)
    greedy = generate(model, prompts, 1, SamplingParams(temperature=0.0, max_new_tokens=4, stop_token_ids=[-1]))
    stop = greedy.token_ids[0][1]  # a token prompt 0 emits second (maybe first too)
    out = generate(model, prompts, 1, SamplingParams(temperature=0.0, max_new_tokens=4, stop_token_ids=[stop]))
    for full, got, reason in zip(greedy.token_ids, out.token_ids, out.finish_reasons):
        cut = full.index(stop) + 1 if stop in full else len(full)  # up to and including the stop token
        assert got == full[:cut] and reason == ("stop" if stop in full else "length")
    assert len(out.token_ids[0]) <= 2 and out.finish_reasons[0] == "stop"
    assert model.llm.config.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")  # the default stop


def test_completion_logprobs_do_not_depend_on_batch_padding(tiny):
    model, tok = tiny
    prompts = _prompts(model, tok)
    comps = [[5, 6, 7], [8], [9, 10]]
    batch, mask = completion_logprobs(model, prompts, comps)
    assert mask.tolist() == [[True] * 3, [True, False, False], [True, True, False]]
    for i in range(3):
        alone, _ = completion_logprobs(model, prompts[i : i + 1], comps[i : i + 1])
        torch.testing.assert_close(batch[i, : len(comps[i])], alone[0], rtol=0, atol=2e-5)
    assert torch.all(batch[~mask] == 0)


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_kv_decoder_matches_the_transformers_forward_on_other_decoders(family):
    """Llama (no q/k norm) and Qwen2 (q/k/v biases) through both paths: same tokens, same log-probs."""
    torch.manual_seed(0)
    kw = dict(vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=64)
    llm = (LlamaForCausalLM(LlamaConfig(**kw)) if family == "llama" else Qwen2ForCausalLM(Qwen2Config(**kw))).eval()
    if family == "qwen2":
        assert llm.model.layers[0].self_attn.q_proj.bias is not None
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randn(n, 32, generator=g) for n in (3, 7)]
    sp = SamplingParams(temperature=1.0, max_new_tokens=6, stop_token_ids=[-1], seed=5)
    lean, ref = generate(llm, prompts, 3, sp, lean=True), generate(llm, prompts, 3, sp, lean=False)
    assert lean.token_ids == ref.token_ids
    torch.testing.assert_close(torch.tensor(lean.logprobs), torch.tensor(ref.logprobs), rtol=0, atol=2e-5)


def test_kv_decoder_says_why_it_cannot_run_a_model():
    from funrl.models.fast_decode import KVDecoder, unsupported

    cfg = Qwen3MoeConfig(vocab_size=61, hidden_size=32, intermediate_size=48, moe_intermediate_size=16, num_experts=2,
                         num_experts_per_tok=1, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
    moe = Qwen3MoeForCausalLM(cfg).eval()
    assert "Qwen3MoeForCausalLM is not one of" in unsupported(moe)
    with pytest.raises(ValueError, match="KVDecoder cannot run this model: Qwen3MoeForCausalLM"):
        KVDecoder(moe, 8)
    out = generate(moe, [torch.randn(2, 32)], 2, SamplingParams(temperature=0.0, max_new_tokens=3, stop_token_ids=[-1]))
    assert [len(t) for t in out.token_ids] == [3, 3]  # the transformers fallback ran it


def test_exponential_race_draws_tokens_with_their_probabilities():
    from funrl.models.generation import _sample

    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    n = 40000
    logp = p.log().expand(n, -1)
    race = torch.empty(n, 4).exponential_(generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(_sample(logp, SamplingParams(), race), minlength=4).float() / n
    torch.testing.assert_close(freq, p, atol=0.01, rtol=0)  # 4 sigma of a binomial at n = 40000 is < 0.01
    top2 = torch.bincount(_sample(logp, SamplingParams(top_k=2), race), minlength=4).float() / n
    torch.testing.assert_close(top2, torch.tensor([0.625, 0.375, 0.0, 0.0]), atol=0.01, rtol=0)  # renormalised
