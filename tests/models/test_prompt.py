"""The Fun-ASR prompt: its text, the splice of the speech span, and that SFT, rollout and evaluation
hand the LLM the very same prompt embeddings."""

from __future__ import annotations

import numpy as np
import torch

from funrl.eval.decode import transcribe
from funrl.models.prompt import HOTWORD_PREAMBLE, build_prompt_embeds, prompt_texts
from funrl.sft.loss import sft_loss

from funrl.models.testing import SAMPLES, random_batch, tiny_config


def test_prompt_text_chatml_language_and_hotwords():
    cfg = tiny_config().prompt
    before, after = prompt_texts(cfg, {"language": "zh", "hotwords": ["王芳"]})
    assert before == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                      "<|im_start|>user\n语音转写成中文：<|startofspeech|>")
    assert after == "<|endofspeech|><|im_end|>\n<|im_start|>assistant\n"
    assert "语音转写：<|startofspeech|>" in prompt_texts(cfg, {"language": None})[0]  # default prompt
    cfg_hw = tiny_config(use_hotwords=True).prompt
    before_hw, _ = prompt_texts(cfg_hw, {"language": "en", "hotwords": ["Ingrid", "Okafor"]})
    assert f"user\n{HOTWORD_PREAMBLE}热词列表：[Ingrid, Okafor]\n语音转写成英文：" in before_hw
    assert HOTWORD_PREAMBLE not in prompt_texts(cfg_hw, {"language": "en", "hotwords": []})[0]
    cfg_nohint = tiny_config(language_hint=False).prompt
    assert "语音转写：<|startofspeech|>" in prompt_texts(cfg_nohint, {"language": "en"})[0]


def test_speech_span_is_spliced_between_the_text_embeddings(tiny):
    model, tok = tiny
    speech = [torch.randn(5, 32), torch.randn(3, 32)]
    prompts = build_prompt_embeds(model, tok, speech, SAMPLES[:2], targets=["call Ingrid", ""])
    emb = model.llm.get_input_embeddings()
    for e, sp, sample in zip(prompts.embeds, speech, SAMPLES[:2]):
        before, after = prompt_texts(model.cfg.prompt, sample)
        ib = tok(before, add_special_tokens=False).input_ids
        ia = tok(after, add_special_tokens=False).input_ids
        assert tok.convert_tokens_to_ids("<|startofspeech|>") == ib[-1]
        assert e.shape == (len(ib) + len(sp) + len(ia), 32)
        assert torch.equal(e[len(ib) : len(ib) + len(sp)], sp)
        assert torch.equal(e[: len(ib)], emb(torch.tensor(ib)))
        assert torch.equal(e[len(ib) + len(sp) :], emb(torch.tensor(ia)))
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert prompts.target_ids[1] == [im_end]  # a noise clip's target is <|im_end|> alone
    assert prompts.target_ids[0][-1] == im_end and tok.decode(prompts.target_ids[0][:-1]) == "call Ingrid"
    padded = torch.zeros(2, 5, 32)
    padded[0], padded[1, :3] = speech[0], speech[1]
    again = build_prompt_embeds(model, tok, (padded, torch.tensor([5, 3])), SAMPLES[:2])
    assert all(torch.equal(a, b) for a, b in zip(again.embeds, prompts.embeds))


def _capture_first_llm_call(model):
    """Record the inputs_embeds / attention_mask of the first call to the LLM's decoder stack
    (a forward hook; teacher forcing runs the stack and then the head at completion positions)."""
    seen = []

    def hook(_mod, _args, kwargs):
        if not seen:
            seen.append((kwargs["inputs_embeds"].detach().clone(), kwargs["attention_mask"].clone()))

    return seen, model.llm.base_model.register_forward_pre_hook(hook, with_kwargs=True)


def test_same_prompt_embeddings_in_training_rollout_and_eval(tiny, monkeypatch):
    from funrl.rollout.fast_decode import KVDecoder

    model, tok = tiny
    feats, lengths = random_batch(3)
    order = [2, 1, 0]  # ascending length, the order transcribe batches in
    feats, lengths = feats[order], lengths[order]
    samples = [SAMPLES[i] for i in order]
    texts = ["turn on the light", "打开 灯", ""]
    # reference: build_prompt_embeds on the encoder output (what the rollout engine receives)
    with torch.no_grad():
        ref = build_prompt_embeds(model, tok, model.encode_audio(feats, lengths), samples).embeds

    seen, h = _capture_first_llm_call(model)
    with torch.no_grad():
        sft_loss(model, tok, feats, lengths, samples, texts, ctc_weight=0.3)  # training path
    h.remove()
    train_inputs, train_mask = seen[0]  # one row per utterance: prompt, then the target's tokens, right-padded
    for i, (e, text) in enumerate(zip(ref, texts)):
        fed = len(tok(text, add_special_tokens=False).input_ids) if text else 0  # target[:-1]: <|im_end|> is not fed
        assert int(train_mask[i].sum()) == e.shape[0] + fed
        torch.testing.assert_close(train_inputs[i, : e.shape[0]], e, rtol=0, atol=1e-6)
    p = max(e.shape[0] for e in ref)  # generation left-pads prompts to P

    seen = []  # generation prefills through the lean KV decoder, not model.llm's forward
    prefill = KVDecoder.prefill

    def record(self, inputs, valid, position_ids):
        seen.append((inputs.detach().clone(), valid.clone()))
        return prefill(self, inputs, valid, position_ids)

    monkeypatch.setattr(KVDecoder, "prefill", record)
    np_feats = [feats[i, : int(lengths[i])].numpy() for i in range(3)]
    transcribe(model, tok, samples, np_feats, batch_size=8, max_new_tokens=2)  # evaluation path
    eval_inputs, eval_mask = seen[0]
    for i, e in enumerate(ref):
        assert int(eval_mask[i].sum()) == e.shape[0]
        torch.testing.assert_close(eval_inputs[i, p - e.shape[0] :], e, rtol=0, atol=1e-6)
    assert np.all(np.diff([int(m.sum()) for m in eval_mask]) != 0)  # three distinct prompts checked
