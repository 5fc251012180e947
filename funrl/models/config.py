"""Config section ``model``: a saved model folder, or the architecture of a model built from scratch.

With ``path`` set, the model (weights, tokenizer, architecture) is loaded from that folder (see
:mod:`funrl.models.io`) and the fields below are ignored: the folder's own ``funrl_model.json``
says how it was built and prompted. With ``path`` empty, ``funrl sft`` trains a BPE tokenizer on the
training text and builds the model from these fields (the defaults are the tiny CPU instance).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict


@dataclass
class EncoderConfig:
    """Audio encoder over fbank frames (100 frames/s) -> ``d_model`` vectors at 25 frames/s.

    ``type``: ``conv_transformer`` (conv x4 subsampling + transformer, built here). Other encoder
    families (a transformers audio encoder built from a config, the SenseVoice encoder of
    Fun-ASR-Nano) plug in as further types in :func:`funrl.models.encoder.build_encoder`.
    """

    type: str = "conv_transformer"
    num_mel_bins: int = 80
    d_model: int = 192
    num_layers: int = 4
    num_heads: int = 4
    ffn_dim: int = 768
    dropout: float = 0.1


@dataclass
class AdaptorConfig:
    """Frame stacking by ``downsample`` (25 -> 12.5 frames/s) + ``num_layers`` transformer layers."""

    downsample: int = 2
    num_layers: int = 2
    num_heads: int = 4
    ffn_dim: int = 512
    dropout: float = 0.1


@dataclass
class LLMConfig:
    """A transformers causal LM built from config (``model_type`` as in ``AutoConfig.for_model``)."""

    model_type: str = "qwen3"
    hidden_size: int = 192
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 48
    intermediate_size: int = 512
    max_position_embeddings: int = 1024
    tie_word_embeddings: bool = True
    extra: Dict[str, Any] = field(default_factory=dict)  # any other config field of that model


@dataclass
class PromptConfig:
    """The Fun-ASR chat prompt (see :mod:`funrl.models.prompt`)."""

    system: str = "You are a helpful assistant."
    # task prompt per utterance language; "default" for unknown language (and when language_hint=false)
    task_prompts: Dict[str, str] = field(
        default_factory=lambda: {
            "en": "语音转写成英文：",
            "zh": "语音转写成中文：",
            "mixed": "语音转写：",
            "default": "语音转写：",
        }
    )
    language_hint: bool = True  # use the utterance's language to pick the task prompt
    use_hotwords: bool = False  # prepend a context block listing the utterance's hotwords


@dataclass
class ModelConfig:
    """With ``family`` set (``fun_asr_nano``) and ``path`` empty, ``funrl sft`` builds that
    transformers family from scratch from the same keys (:mod:`funrl.sft.family_build`):
    ``encoder.{d_model, num_layers, num_heads, ffn_dim, dropout, num_mel_bins}`` size the SAN-M
    encoder (no timestamp layers), ``adaptor.{num_layers, num_heads, ffn_dim, dropout}`` the
    projector and its layers (its width is ``llm.hidden_size``, as the family requires),
    ``llm.*`` the Qwen3 text model, ``vocab_size`` the byte-level BPE trained on the training text,
    ``ctc`` a CTC head beside the weights. ``encoder.type`` and ``adaptor.downsample`` are the funrl
    format's only (the family's frame rate is its feature extractor's, 60 ms)."""

    path: str = ""  # a model folder: funrl's (funrl_model.json) or a transformers family's (config.json); empty: build
    family: str = ""  # build: "" (funrl's format) or a transformers family's model_type (fun_asr_nano)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    adaptor: AdaptorConfig = field(default_factory=AdaptorConfig)
    llm: LLMConfig = field(default_factory=LLMConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    vocab_size: int = 400  # BPE size when the tokenizer is trained here
    ctc: bool = True  # CTC head on the encoder output (report §4.2.2 stage 5)
    encoder_workers: int = 1  # GRPO: encoder-role actors; a step's prompts are split across them (data parallel)
    # GRPO: each encoder worker keeps up to this many MiB of prompt embeddings by manifest row and
    # reuses them in later epochs (the encoder is frozen, the audio not augmented); 0: off
    embed_cache_mib: float = 0.0
