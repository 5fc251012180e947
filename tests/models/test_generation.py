"""Generation from prompt embeddings against a full forward pass (the slow, obvious reference)."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM

from funrl.models.prompt import build_prompt_embeds
from funrl.policy.teacher_forcing import completion_logprobs
from funrl.rollout.generation import generate
from funrl.rollout.protocol import SamplingParams

from funrl.models.testing import SAMPLES, random_batch


def _prompts(model, tok):
    feats, lengths = random_batch(3)
    with torch.no_grad():
        return build_prompt_embeds(model, tok, model.encode_audio(feats, lengths), SAMPLES).embeds


def _full_logits(model, prompts, completions):
    """Logits predicting each completion token, from one uncached forward pass per row: [N, C, V]
    (the slow reference: each row alone, no padding, the transformers forward's full logits)."""
    c = max(len(y) for y in completions)
    out = torch.zeros(len(prompts), c, model.llm.config.vocab_size)
    mask = torch.zeros(len(prompts), c, dtype=torch.bool)
    embed = model.llm.get_input_embeddings()
    with torch.no_grad():
        for i, (p, y) in enumerate(zip(prompts, completions)):
            x = torch.cat([p, embed(torch.tensor(y[:-1], dtype=torch.long))])[None]  # [1, L+T-1, H]
            out[i, : len(y)] = model.llm(inputs_embeds=x).logits[0, p.shape[0] - 1 :]
            mask[i, : len(y)] = True
    return out, mask


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
    for shared in (True, False):  # the policy's teacher forcing, both layouts, recomputes the engine's numbers
        lp, _, mask = completion_logprobs(model.llm, prompts, out.prompt_index, out.token_ids, temperature=0.7,
                                          shared=shared)
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
    batch, _, mask = completion_logprobs(model.llm, prompts, [0, 1, 2], comps, shared=False)
    assert mask.tolist() == [[True] * 3, [True, False, False], [True, True, False]]
    for i in range(3):
        alone, _, _ = completion_logprobs(model.llm, prompts[i : i + 1], [0], comps[i : i + 1], shared=False)
        torch.testing.assert_close(batch[i, : len(comps[i])], alone[0], rtol=0, atol=2e-5)
    assert torch.all(batch[~mask] == 0)


def test_per_step_noise_is_the_same_stream_as_noise_drawn_up_front():
    """Sampling draws one ``[N, V]`` block of race noise per step (memory per step, not B·G·T·V);
    the generator stream is the one an up-front ``[T, N, V]`` draw gave, so seeded runs keep their
    tokens (and the demo its trained weights) across that change."""
    g = torch.Generator().manual_seed(5)
    upfront = torch.empty(7, 12, 401).exponential_(generator=g)
    g = torch.Generator().manual_seed(5)
    block = torch.empty(12, 401)
    per_step = torch.stack([block.exponential_(generator=g).clone() for _ in range(7)])
    assert torch.equal(upfront, per_step)


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
    from funrl.rollout.fast_decode import KVDecoder, unsupported

    cfg = Qwen3MoeConfig(vocab_size=61, hidden_size=32, intermediate_size=48, moe_intermediate_size=16, num_experts=2,
                         num_experts_per_tok=1, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1)
    moe = Qwen3MoeForCausalLM(cfg).eval()
    assert "Qwen3MoeForCausalLM is not one of" in unsupported(moe)
    with pytest.raises(ValueError, match="KVDecoder cannot run this model: Qwen3MoeForCausalLM"):
        KVDecoder(moe, 8)
    out = generate(moe, [torch.randn(2, 32)], 2, SamplingParams(temperature=0.0, max_new_tokens=3, stop_token_ids=[-1]))
    assert [len(t) for t in out.token_ids] == [3, 3]  # the transformers fallback ran it


def test_exponential_race_draws_tokens_with_their_probabilities():
    from funrl.rollout.generation import _sample

    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    n = 40000
    logp = p.log().expand(n, -1)
    race = torch.empty(n, 4).exponential_(generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(_sample(logp, SamplingParams(), race), minlength=4).float() / n
    torch.testing.assert_close(freq, p, atol=0.01, rtol=0)  # 4 sigma of a binomial at n = 40000 is < 0.01
    top2 = torch.bincount(_sample(logp, SamplingParams(top_k=2), race), minlength=4).float() / n
    torch.testing.assert_close(top2, torch.tensor([0.625, 0.375, 0.0, 0.0]), atol=0.01, rtol=0)  # renormalised


def test_groups_are_handed_back_when_their_last_sample_ends_and_equal_generate(tiny):
    """iter_generate (rollout.reward_overlap_groups): each prompt's group leaves at the decode step
    where the last of its samples stopped, never before, once; the hand-backs together are
    generate()'s batch row for row (same seed, same noise)."""
    from funrl.rollout.generation import in_prompt_order, iter_generate

    model, tok = tiny
    prompts = _prompts(model, tok)
    free = generate(model, prompts, 3, SamplingParams(temperature=1.0, max_new_tokens=12, stop_token_ids=[-1], seed=5))
    # stop on tokens the samples draw often, so that groups end at different steps
    counts = torch.bincount(torch.tensor([t for row in free.token_ids for t in row]))
    stops = counts.argsort(descending=True)[:3].tolist()
    sp = SamplingParams(temperature=1.0, max_new_tokens=12, stop_token_ids=stops, seed=5)
    full = generate(model, prompts, 3, sp)
    parts = list(iter_generate(model, prompts, 3, sp))
    assert sorted(p for part in parts for p in part.prompts) == [0, 1, 2]  # each prompt once
    for part in parts:
        assert part.batch.prompt_index == [p for p in part.prompts for _ in range(3)]
        for p in part.prompts:  # the step its slowest sample ended (or the last step, when one was cut)
            lengths = [len(full.token_ids[i]) for i in range(3 * p, 3 * p + 3)]
            assert part.step == max(lengths) - 1
    assert len({part.step for part in parts}) > 1, "the stop tokens should end the groups at different steps"
    merged = in_prompt_order(parts)
    assert merged.token_ids == full.token_ids and merged.logprobs == full.logprobs
    once = list(iter_generate(model, prompts, 3, sp, each_step=False))  # generate()'s: one hand-back, at the end
    assert len(once) == 1 and once[0].prompts == [0, 1, 2] and once[0].batch.token_ids == full.token_ids
    assert merged.finish_reasons == full.finish_reasons and merged.prompt_index == full.prompt_index
    for wrong in (parts[1:], parts + parts[:1]):  # a group missing; a group twice
        with pytest.raises(ValueError, match="cover prompts"):
            in_prompt_order(wrong)
