"""Tiny random-weight models of each family, built with transformers' own config and model classes,
saved with their processor and a locally trained tokenizer, and reloaded through the adapter (the
way transformers' own tests build models, with no hub).

The tokenizer is a byte-level BPE trained here with Qwen2's normalizer and pre-tokenizer rules, so
``Qwen2Tokenizer`` rebuilt from the saved vocabulary and merges encodes as the trained one did; it
holds each family's special tokens. Weights are drawn with ``init_std`` (default 0.2, ten times
transformers' 0.02): at 0.02 a tiny model emits the same token whatever the audio, and tests that
compare outputs on different audio need outputs that depend on it.

>>> import tempfile
>>> adapter = tiny_family("fun_asr_nano", tempfile.mkdtemp())
>>> adapter.model.config.text_config.hidden_size
32
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from funrl.models.families.base import FamilyAdapter

COMMON_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
FUN_ASR_NANO_SPECIAL = COMMON_SPECIAL + ["<|object_ref_start|>", "<|startofspeech|>", "<|endofspeech|>"]
QWEN2_AUDIO_SPECIAL = COMMON_SPECIAL + ["<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>", "<|en|>", "<|zh|>"]


def _training_text() -> list[str]:
    from funrl.models.config import PromptConfig
    from funrl.models.families.qwen2_audio import ASR_INSTRUCTION, HOTWORD_CONTEXT
    from funrl.models.prompt import template_strings
    from funrl.models.testing import TEXTS

    return TEXTS * 3 + template_strings(PromptConfig()) + [ASR_INSTRUCTION, HOTWORD_CONTEXT, "Audio 1: \n"]


def qwen2_style_tokenizer(special_tokens: list[str], vocab_size: int = 400, texts: list[str] | None = None):
    """A byte-level BPE with Qwen2's pre-tokenizer rules, as a ``Qwen2Tokenizer`` (left padding,
    ``<|im_end|>`` as eos, ``<|endoftext|>`` as pad); ``special_tokens`` get the first ids. Trained
    on ``texts`` (``funrl sft``: the training transcripts and the prompt wording), or on the test
    sentences and prompt wording when None."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_training_text() if texts is None else texts, trainer=trainer)
    bpe = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in bpe["merges"]]
    extra = [t for t in special_tokens if t not in ("<|endoftext|>", "<|im_end|>")]
    return Qwen2Tokenizer(vocab=bpe["vocab"], merges=merges, unk_token=None, eos_token="<|im_end|>",
                          pad_token="<|endoftext|>", extra_special_tokens=extra, padding_side="left")


def _text_config(tok, init_std: float) -> dict:
    return dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=1024,
                initializer_range=init_std, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                pad_token_id=tok.pad_token_id)


def _save(model, processor, tok, path: Path) -> None:
    stop = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config.eos_token_id = stop
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.bos_token_id = None
    model.save_pretrained(str(path))
    processor.save_pretrained(str(path))


def build_fun_asr_nano(path: str | Path, seed: int = 0, init_std: float = 0.2) -> Path:
    """A 32-wide ``FunAsrNanoForConditionalGeneration`` (3 encoder layers, 1 of them timestamp, 1
    adaptor layer, 2 Qwen3 layers, tied head) with its processor, saved in ``path``."""
    import torch
    from transformers import FunAsrNanoConfig, FunAsrNanoForConditionalGeneration, FunAsrNanoProcessor

    from funrl.models.families.fun_asr_nano import KnfFunAsrNanoFeatureExtractor

    tok = qwen2_style_tokenizer(FUN_ASR_NANO_SPECIAL)
    config = FunAsrNanoConfig(
        audio_config=dict(model_type="fun_asr_nano_encoder", num_mel_bins=80, hidden_size=32, num_attention_heads=2,
                          intermediate_size=64, num_hidden_layers=3, num_timestamp_prediction_layers=1,
                          initializer_range=init_std),
        adaptor_config=dict(hidden_size=32, intermediate_size=8, num_attention_heads=2, num_hidden_layers=1,
                            projector_hidden_size=64, initializer_range=init_std),
        text_config=dict(model_type="qwen3", tie_word_embeddings=True, **_text_config(tok, init_std)),
        audio_token_id=tok.convert_tokens_to_ids("<|object_ref_start|>"), initializer_range=init_std,
        tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = FunAsrNanoForConditionalGeneration(config)
    processor = FunAsrNanoProcessor(KnfFunAsrNanoFeatureExtractor(), tok)
    _save(model, processor, tok, Path(path))
    return Path(path)


def build_qwen2_audio(path: str | Path, seed: int = 0, init_std: float = 0.2, seconds: int = 2) -> Path:
    """A 32-wide ``Qwen2AudioForConditionalGeneration`` (1 encoder layer over ``seconds`` s windows
    of 80-bin log-mel, 2 Qwen2 layers, untied head as in the released model) with its processor, in ``path``."""
    import torch
    from transformers import (Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor,
                              WhisperFeatureExtractor)

    tok = qwen2_style_tokenizer(QWEN2_AUDIO_SPECIAL)
    config = Qwen2AudioConfig(
        audio_config=dict(model_type="qwen2_audio_encoder", num_mel_bins=80, encoder_layers=1,
                          encoder_attention_heads=2, encoder_ffn_dim=64, d_model=32, max_source_positions=50 * seconds,
                          initializer_range=init_std),
        text_config=dict(model_type="qwen2", tie_word_embeddings=False, **_text_config(tok, init_std)),
        audio_token_index=tok.convert_tokens_to_ids("<|AUDIO|>"), initializer_range=init_std)
    torch.manual_seed(seed)
    model = Qwen2AudioForConditionalGeneration(config)
    processor = Qwen2AudioProcessor(WhisperFeatureExtractor(feature_size=80, chunk_length=seconds), tok)
    _save(model, processor, tok, Path(path))
    return Path(path)


BUILDERS = {"fun_asr_nano": build_fun_asr_nano, "qwen2_audio": build_qwen2_audio}


def tiny_family(model_type: str, path: str | Path, seed: int = 0, prompt=None) -> FamilyAdapter:
    """Build the tiny ``model_type`` model in ``path`` and load it back through its adapter."""
    from funrl.models.families import load_family

    BUILDERS[model_type](path, seed=seed)
    return load_family(path, prompt)


def chirp(seconds: float, f0: float = 150.0, f1: float = 2500.0, seed: int = 0, sample_rate: int = 16000) -> np.ndarray:
    """A linear chirp from ``f0`` to ``f1`` Hz with a little white noise, float32 in [-1, 1]."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = 0.4 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * seconds)))
    wave += 0.02 * np.random.default_rng(seed).standard_normal(t.size)
    return wave.astype(np.float32)
