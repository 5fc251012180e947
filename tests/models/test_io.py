"""Save -> load round trips, the LLM subfolder on its own, and the tokenizer."""

from __future__ import annotations

import json

import pytest
import torch

from funrl.models.io import load_pretrained, save_pretrained
from funrl.models.prompt import build_prompt_embeds
from funrl.models.testing import SAMPLES, TEXTS, random_batch


def _logits(model, tok):
    """Full-pipeline logits (audio -> prompt -> LLM) and CTC log-probs for a fixed batch."""
    feats, lengths = random_batch(3)
    with torch.no_grad():
        enc, enc_len, speech, speech_len = model.forward_audio(feats, lengths)
        embeds = build_prompt_embeds(model, tok, (speech, speech_len), SAMPLES).embeds
        logits = [model.llm(inputs_embeds=e[None]).logits[0] for e in embeds]
        return logits, model.ctc_logprobs(enc), embeds


def test_save_load_gives_identical_logits(tiny, tmp_path):
    model, tok = tiny
    with torch.no_grad():
        model.encoder.feat_mean.fill_(0.5)  # a non-default CMVN must travel with the weights
    save_pretrained(model, tok, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "funrl_model.json").read_text())
    assert meta["format"] == "funrl-audio-llm" and meta["ctc_vocab_size"] == len(tok) + 1
    loaded, tok2 = load_pretrained(tmp_path / "m")
    assert tok2.get_vocab() == tok.get_vocab()
    a, ctc_a, _ = _logits(model, tok)
    b, ctc_b, _ = _logits(loaded, tok2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert torch.equal(ctc_a, ctc_b)


def test_llm_subfolder_loads_alone_with_transformers(tiny, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tok = tiny
    save_pretrained(model, tok, tmp_path / "m")
    llm = AutoModelForCausalLM.from_pretrained(tmp_path / "m" / "llm").eval()
    hf_tok = AutoTokenizer.from_pretrained(tmp_path / "m" / "llm")
    _, _, embeds = _logits(model, tok)
    with torch.no_grad():
        for e in embeds:
            assert torch.equal(llm(inputs_embeds=e[None]).logits, model.llm(inputs_embeds=e[None]).logits)
    for text in TEXTS:
        assert hf_tok(text, add_special_tokens=False).input_ids == tok(text, add_special_tokens=False).input_ids
    assert llm.config.eos_token_id == hf_tok.convert_tokens_to_ids("<|im_end|>")
    assert llm.generation_config.eos_token_id == llm.config.eos_token_id


def test_half_precision_checkpoint_is_smaller_and_close(tiny, tmp_path):
    model, tok = tiny
    save_pretrained(model, tok, tmp_path / "f32")
    save_pretrained(model, tok, tmp_path / "bf16", dtype="bfloat16")
    size = lambda d: sum(p.stat().st_size for p in d.rglob("*.safetensors"))  # noqa: E731
    assert size(tmp_path / "bf16") < 0.6 * size(tmp_path / "f32")
    loaded, _ = load_pretrained(tmp_path / "bf16")  # cast back to float32 for compute
    assert loaded.llm.dtype == torch.float32 and loaded.encoder.proj.weight.dtype == torch.float32
    a, _, _ = _logits(model, tok)
    b, _, _ = _logits(loaded, tok)
    assert all(torch.allclose(x, y, atol=0.05) for x, y in zip(a, b))


def test_lora_model_is_saved_merged(tiny, tmp_path):
    from peft import LoraConfig, get_peft_model

    model, tok = tiny
    model.llm = get_peft_model(model.llm, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for n, p in model.llm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)  # LoRA B starts at zero; make the adapter change the outputs
    save_pretrained(model, tok, tmp_path / "m")
    loaded, _ = load_pretrained(tmp_path / "m")
    assert not any("lora" in n for n, _ in loaded.llm.named_parameters())
    a, _, _ = _logits(model, tok)
    b, _, _ = _logits(loaded, tok)
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(a, b))


def test_not_a_model_folder_says_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="no funrl_model.json"):
        load_pretrained(tmp_path)


def test_tokenizer_special_tokens_and_round_trip(tiny):
    _, tok = tiny
    for t in ["<|im_start|>", "<|im_end|>", "<|startofspeech|>", "<|endofspeech|>", "<|endoftext|>"]:
        assert tok(t, add_special_tokens=False).input_ids == [tok.convert_tokens_to_ids(t)]
    for text in ["call Ingrid tomorrow", "打开 客厅 的 灯", "把 PyTorch 服务器 重启"]:
        ids = tok(text, add_special_tokens=False).input_ids
        assert tok.unk_token_id not in ids and tok.decode(ids) == text
    assert len(tok) == 120
