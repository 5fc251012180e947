"""Each family's adapter reproduces the family model: prompt embeddings + text LM give the model's own
``forward`` logits, and greedy decoding from the embeddings (text LM ``generate``, funrl's rollout
loop, the HF engine on the exported text-LM folder) gives the model's own greedy ``generate`` tokens,
clip by clip and batched."""

from __future__ import annotations

import pytest
import torch

from funrl.rollout.generation import generate as funrl_generate
from funrl.rollout.protocol import SamplingParams

NEW = 12  # greedy tokens compared


def model_logits(adapter, row) -> torch.Tensor:
    """The family model's own forward on the processor's ``input_ids`` and audio features."""
    with torch.inference_mode():
        return adapter.model(**adapter.prompt_inputs([row])).logits[0]  # [L, V]


def model_greedy(adapter, rows) -> list[list[int]]:
    """The family model's own greedy ``generate`` (batched: the processor left-pads), up to its stop."""
    inputs = adapter.prompt_inputs(rows)
    with torch.inference_mode():
        out = adapter.model.generate(**inputs, do_sample=False, max_new_tokens=NEW, eos_token_id=adapter.stop_token_ids,
                                     pad_token_id=adapter.tokenizer.pad_token_id)
    return [trim(seq[inputs["input_ids"].shape[1]:].tolist(), adapter.stop_token_ids) for seq in out]


def trim(tokens: list[int], stop: list[int]) -> list[int]:
    """Up to and with the first stop token (``generate`` pads finished rows after it)."""
    for i, t in enumerate(tokens):
        if t in stop:
            return tokens[: i + 1]
    return tokens


def greedy(adapter):
    return SamplingParams(temperature=0, max_new_tokens=NEW, stop_token_ids=adapter.stop_token_ids)


def test_loaded_in_eval_mode_with_sdpa(family, rows):
    assert not family.model.training
    assert family.model.config._attn_implementation == "sdpa"
    with torch.inference_mode():  # dropout would make two calls differ
        a, b = family.prompt_embeds(rows[:1]), family.prompt_embeds(rows[:1])
    assert torch.equal(a[0], b[0])


def test_prompt_embeds_and_text_lm_give_the_models_forward_logits(family, rows):
    lm = family.text_lm()
    with torch.inference_mode():
        embeds = family.prompt_embeds(rows)
        for row, e in zip(rows, embeds):
            ref = model_logits(family, row)  # [L, V]
            got = lm(inputs_embeds=e[None]).logits[0]  # [L, V]
            assert got.shape == ref.shape
            torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)
        # the outputs depend on the audio (so equality above says something about the audio path)
        last = [lm(inputs_embeds=e[None]).logits[0, -1] for e in embeds]
        assert (last[0] - last[1]).abs().max() > 1e-2


def test_audio_fills_exactly_the_placeholders(family, rows):
    inputs = family.prompt_inputs(rows[:1])
    ids = inputs["input_ids"][0]
    n_audio = int((ids == family.audio_token_id).sum())
    with torch.inference_mode():
        (e,) = family.prompt_embeds(rows[:1])
        text = family.model.get_input_embeddings()(ids)  # [L, H]
    assert e.shape[0] == ids.shape[0] and n_audio > 10
    slots = ids == family.audio_token_id
    assert torch.equal(e[~slots], text[~slots])  # text positions untouched
    assert not torch.allclose(e[slots], text[slots])  # placeholders replaced


@pytest.mark.parametrize("lean", [True, False], ids=["KVDecoder", "transformers-forward"])
def test_greedy_tokens_equal_the_models_generate(family, rows, lean):
    lm = family.text_lm()
    with torch.inference_mode():
        embeds = family.prompt_embeds(rows)
        ours = funrl_generate(lm, embeds, 1, greedy(family), lean=lean).token_ids
        for row, e, mine in zip(rows, embeds, ours):
            (ref,) = model_greedy(family, [row])
            hf = lm.generate(inputs_embeds=e[None], attention_mask=torch.ones(1, e.shape[0], dtype=torch.long),
                             do_sample=False, max_new_tokens=NEW)[0].tolist()
            assert len(ref) > 1
            assert trim(hf, family.stop_token_ids) == ref
            assert mine == ref
    assert ours[0] != ours[1]  # different audio, different transcript


def test_batched_equals_single_clip(family, rows):
    with torch.inference_mode():
        batch = family.prompt_embeds(rows)
        single = [family.prompt_embeds([r])[0] for r in rows]
        for b, s in zip(batch, single):
            assert b.shape == s.shape
            torch.testing.assert_close(b, s, rtol=0, atol=1e-5)
        lm = family.text_lm()
        together = funrl_generate(lm, batch, 1, greedy(family)).token_ids
        alone = [funrl_generate(lm, [s], 1, greedy(family)).token_ids[0] for s in single]
    assert together == alone
    assert model_greedy(family, rows) == alone


def test_exported_text_lm_loads_as_a_plain_causal_lm(family, rows, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from funrl.rollout.hf_engine import HFEngine

    family.save_text_lm(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    tied = family.model.lm_head.weight is family.language_model.get_input_embeddings().weight
    assert (loaded.lm_head.weight is loaded.get_input_embeddings().weight) == tied
    assert family.model_type != "fun_asr_nano" or tied  # Fun-ASR-Nano's Qwen3 head is tied
    assert AutoTokenizer.from_pretrained(tmp_path).get_vocab() == family.tokenizer.get_vocab()
    lm = family.text_lm()
    with torch.inference_mode():
        embeds = family.prompt_embeds(rows)
        for e in embeds:
            torch.testing.assert_close(loaded(inputs_embeds=e[None]).logits, lm(inputs_embeds=e[None]).logits,
                                       rtol=0, atol=1e-6)
        engine = HFEngine(tmp_path)
        assert engine.generate(embeds, 1, greedy(family)).token_ids == model_greedy(family, rows)


def test_text_lm_shares_the_family_models_parameters(family):
    lm = family.text_lm()
    ours = {id(p) for p in lm.parameters()}
    theirs = {id(p) for p in family.language_model.parameters()} | {id(family.model.lm_head.weight)}
    assert ours == theirs
