"""The Fun-ASR-style composite: audio encoder -> adaptor -> any transformers causal LM, + CTC head.

``AudioLLM`` owns four parts, named as the trainer selects them (``trainable`` in ``sft``):
``encoder`` (:mod:`funrl.models.encoder`), ``adaptor`` (:mod:`funrl.models.adaptor`), ``llm`` (a
plain ``transformers`` causal LM, Qwen3 by default; ``model.llm`` is what a rollout engine or a
policy worker holds) and ``ctc_head`` (a linear layer over the encoder output, vocabulary = the
LLM's tokenizer + one blank, the last index).

The prompt around the audio is built by :func:`funrl.models.prompt.build_prompt_embeds`; this class
only turns fbank features into speech embeddings.
"""

from __future__ import annotations

import torch
from torch import nn

from funrl.models.adaptor import Adaptor
from funrl.models.config import ModelConfig
from funrl.models.encoder import build_encoder

PARTS = ("encoder", "adaptor", "llm", "ctc")


class AudioLLM(nn.Module):
    def __init__(self, cfg: ModelConfig, llm: nn.Module, ctc_vocab_size: int):
        super().__init__()
        self.cfg = cfg
        self.encoder = build_encoder(cfg.encoder)
        hidden = llm.get_input_embeddings().weight.shape[1]
        self.adaptor = Adaptor(cfg.adaptor, self.encoder.output_dim, hidden)
        self.ctc_vocab_size = ctc_vocab_size
        self.ctc_head = nn.Linear(self.encoder.output_dim, ctc_vocab_size) if cfg.ctc else None
        self.llm = llm

    @property
    def ctc_blank(self) -> int:
        return self.ctc_vocab_size - 1

    def part(self, name: str) -> nn.Module:
        """One of :data:`PARTS` (``ctc`` is the CTC head)."""
        if name not in PARTS:
            raise ValueError(f"unknown model part {name!r}; expected one of {list(PARTS)}")
        mod = self.ctc_head if name == "ctc" else getattr(self, name)
        if mod is None:
            raise ValueError("model part 'ctc' is absent: this model was built with model.ctc=false")
        return mod

    def forward_audio(self, feats: torch.Tensor, lengths: torch.Tensor):
        """``feats [B, T, F]``, ``lengths [B]`` ->
        ``(enc [B, T', D], enc_len [B], speech [B, S, H], speech_len [B])``."""
        enc, enc_len = self.encoder(feats, lengths)
        speech, speech_len = self.adaptor(enc, enc_len)
        return enc, enc_len, speech, speech_len

    def encode_audio(self, feats: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
        """Speech embeddings, one ``[S_i, H]`` tensor per utterance (padding removed)."""
        _, _, speech, speech_len = self.forward_audio(feats, lengths)
        return [speech[i, : int(n)] for i, n in enumerate(speech_len)]

    def ctc_logprobs(self, enc: torch.Tensor) -> torch.Tensor:
        """``[B, T', D]`` -> ``[B, T', V+1]`` log-probabilities (blank last)."""
        return torch.log_softmax(self.part("ctc")(enc).float(), dim=-1)


def build_llm(cfg: ModelConfig, tokenizer) -> nn.Module:
    """A causal LM built from config with the tokenizer's vocabulary; eos = ``<|im_end|>``."""
    from transformers import AutoConfig, AutoModelForCausalLM

    c = cfg.llm
    fields = dict(
        vocab_size=len(tokenizer),
        hidden_size=c.hidden_size,
        num_hidden_layers=c.num_layers,
        num_attention_heads=c.num_heads,
        num_key_value_heads=c.num_kv_heads,
        head_dim=c.head_dim,
        intermediate_size=c.intermediate_size,
        max_position_embeddings=c.max_position_embeddings,
        tie_word_embeddings=c.tie_word_embeddings,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    fields.update(c.extra)
    try:
        llm_config = AutoConfig.for_model(c.model_type, **fields)
    except ValueError as e:
        raise ValueError(f"model.llm.model_type: {e}") from None
    llm = AutoModelForCausalLM.from_config(llm_config)
    llm.generation_config.eos_token_id = fields["eos_token_id"]
    llm.generation_config.pad_token_id = fields["pad_token_id"]
    return llm


def build_model(cfg: ModelConfig, tokenizer) -> AudioLLM:
    """A freshly initialised AudioLLM for ``tokenizer`` (CTC vocabulary = tokenizer + blank)."""
    return AudioLLM(cfg, build_llm(cfg, tokenizer), len(tokenizer) + 1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
