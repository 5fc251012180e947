"""A transformers family model built from scratch for ``funrl sft`` (``model.family``, no ``model.path``).

Only Fun-ASR-Nano so far. The sizes come from the ``model.*`` keys (see
:class:`funrl.models.config.ModelConfig`); the tokenizer is a byte-level BPE with Qwen2's rules and
the family's special tokens (:func:`funrl.models.families.testing.qwen2_style_tokenizer`) trained
on the training transcripts and the prompt wording. Where we depart from the released model: no
timestamp-prediction layers (only the transcription layers are trained), and transformers'
default init (std 0.02).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from funrl.config import ConfigError

BUILDABLE = ("fun_asr_nano",)


def build_family(cfg_model, texts: Sequence[str], path: str | Path) -> Path:
    """Build ``cfg_model.family`` with random weights and save it, processor included, in ``path``."""
    if cfg_model.family not in BUILDABLE:
        raise ConfigError(f"model.family: {cfg_model.family!r} cannot be built from scratch; "
                          f"choose one of {list(BUILDABLE)} or set model.path to a model folder")
    return build_fun_asr_nano(cfg_model, texts, path)


def _tokenizer(cfg_model, texts: Sequence[str]):
    from funrl.models.families.testing import FUN_ASR_NANO_SPECIAL, qwen2_style_tokenizer
    from funrl.models.prompt import template_strings

    corpus = [t for t in texts if t] + template_strings(cfg_model.prompt)
    return qwen2_style_tokenizer(FUN_ASR_NANO_SPECIAL, cfg_model.vocab_size, corpus)


def fun_asr_nano_config(cfg_model, tok):
    """The ``FunAsrNanoConfig`` the ``model.*`` keys describe, for the tokenizer ``tok``."""
    from transformers import FunAsrNanoConfig

    e, a, l = cfg_model.encoder, cfg_model.adaptor, cfg_model.llm
    if l.model_type != "qwen3":
        raise ConfigError(f"model.llm.model_type: Fun-ASR-Nano's text model is qwen3, not {l.model_type!r}")
    for key, width, heads in (("encoder", e.d_model, e.num_heads), ("adaptor", l.hidden_size, a.num_heads)):
        if width % heads:
            raise ConfigError(f"model.{key}.num_heads={heads} must divide the width {width}")
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    return FunAsrNanoConfig(
        audio_config=dict(model_type="fun_asr_nano_encoder", num_mel_bins=e.num_mel_bins, hidden_size=e.d_model,
                          num_attention_heads=e.num_heads, intermediate_size=e.ffn_dim,
                          num_hidden_layers=e.num_layers, num_timestamp_prediction_layers=0,
                          hidden_dropout=e.dropout, attention_dropout=e.dropout),
        adaptor_config=dict(hidden_size=l.hidden_size, intermediate_size=l.hidden_size // 4,
                            num_attention_heads=a.num_heads, num_hidden_layers=a.num_layers,
                            projector_hidden_size=a.ffn_dim, hidden_dropout=a.dropout, attention_dropout=a.dropout),
        text_config=dict(model_type="qwen3", vocab_size=len(tok), hidden_size=l.hidden_size,
                         intermediate_size=l.intermediate_size, num_hidden_layers=l.num_layers,
                         num_attention_heads=l.num_heads, num_key_value_heads=l.num_kv_heads, head_dim=l.head_dim,
                         max_position_embeddings=l.max_position_embeddings,
                         tie_word_embeddings=l.tie_word_embeddings, eos_token_id=eos,
                         pad_token_id=tok.pad_token_id, **dict(l.extra)),
        audio_token_id=tok.convert_tokens_to_ids("<|object_ref_start|>"),
        tie_word_embeddings=l.tie_word_embeddings)


def build_fun_asr_nano(cfg_model, texts: Sequence[str], path: str | Path) -> Path:
    from transformers import FunAsrNanoForConditionalGeneration, FunAsrNanoProcessor

    from funrl.models.families.fun_asr_nano import KnfFunAsrNanoFeatureExtractor

    tok = _tokenizer(cfg_model, texts)
    model = FunAsrNanoForConditionalGeneration(fun_asr_nano_config(cfg_model, tok))
    stop = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config.eos_token_id = stop
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.bos_token_id = None
    model.save_pretrained(str(path))
    FunAsrNanoProcessor(KnfFunAsrNanoFeatureExtractor(), tok).save_pretrained(str(path))
    return Path(path)
