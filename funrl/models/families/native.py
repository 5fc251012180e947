"""funrl's own model folder (``funrl_model.json`` + ``audio.safetensors`` + ``llm/``) behind the
same interface as the transformers families, so the trainer and ``funrl eval`` have one path.

Why the format is kept: ``funrl sft``'s default from-scratch model (a conv encoder with a CTC
head, ``model.family`` empty) is in it, and so are the small models many tests build; the shipped
warm start is a transformers Fun-ASR-Nano (``examples/checkpoints/tiny_fun_asr_nano``). A Hub
checkpoint takes the :class:`~funrl.models.families.base.FamilyAdapter` path instead. The roles see the same
things from both: prompt embeddings, a plain causal-LM folder for the text side, stop tokens.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from funrl.models.config import PromptConfig


class NativeAudioLLM:
    """A funrl-format model: fbank → conv encoder → adaptor → Fun-ASR ChatML prompt → its ``llm/``."""

    model_type = "funrl-audio-llm"

    def __init__(self, path: str | Path, prompt: PromptConfig | None = None, dtype: torch.dtype = torch.float32,
                 device: str | torch.device = "cpu"):
        from funrl.data.features import FbankExtractor
        from funrl.models.io import load_pretrained

        self.path = Path(path)
        self.model, self.tokenizer = load_pretrained(self.path, dtype=dtype, device=str(device), prompt=prompt)
        self.fbank = FbankExtractor(num_mel_bins=self.model.cfg.encoder.num_mel_bins)

    @property
    def prompt(self) -> PromptConfig:
        return self.model.cfg.prompt

    @prompt.setter
    def prompt(self, value: PromptConfig) -> None:
        self.model.cfg.prompt = value

    @property
    def stop_token_ids(self) -> list[int]:
        return [int(self.tokenizer.convert_tokens_to_ids("<|im_end|>"))]

    def prompt_embeds(self, rows: Sequence[Mapping[str, Any]]) -> list[torch.Tensor]:
        """One ``[L_i, H]`` prompt embedding per row (the speech spliced into the chat template)."""
        from funrl.data.audio import load_audio
        from funrl.data.features import collate
        from funrl.models.prompt import build_prompt_embeds

        device = next(self.model.parameters()).device
        x, lens = collate([self.fbank(load_audio(r["audio"], data=r.get("audio_bytes"))) for r in rows])
        speech = self.model.encode_audio(x.to(device), lens.to(device))
        return build_prompt_embeds(self.model, self.tokenizer, speech, rows).embeds

    def text_lm(self):
        return self.model.llm

    def save_text_lm(self, path: str | Path) -> None:
        self.model.llm.save_pretrained(str(path))
        self.tokenizer.save_pretrained(str(path))

    def audio_state(self) -> dict[str, torch.Tensor]:
        """The frozen audio side (encoder, adaptor, CTC head, CMVN buffers)."""
        return {k: v.detach().cpu() for k, v in self.model.state_dict().items() if not k.startswith("llm.")}

    def export(self, out: Path, llm_state: Mapping[str, torch.Tensor]) -> None:
        """``out``: this folder with ``llm/`` holding the trained weights (the audio side copied)."""
        from transformers import AutoConfig, AutoModelForCausalLM

        from funrl.models.io import AUDIO_FILE, CONFIG_FILE, LLM_DIR

        llm = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(self.path / LLM_DIR))
        missing, unexpected = llm.load_state_dict(dict(llm_state), strict=False)
        tied = {k for k in missing if k == "lm_head.weight" and llm.config.tie_word_embeddings}
        if set(missing) - tied or unexpected:
            raise RuntimeError(f"export: weights do not fit the LLM: missing {missing[:5]}, unexpected {unexpected[:5]}")
        llm.save_pretrained(out / LLM_DIR)
        self.tokenizer.save_pretrained(out / LLM_DIR)
        for name in (AUDIO_FILE, CONFIG_FILE):
            shutil.copy2(self.path / name, out / name)

    def transcribe(self, rows: Sequence[Mapping[str, Any]], max_new_tokens: int = 64) -> list[str]:
        from funrl.rollout.generation import decode, generate
        from funrl.rollout.protocol import SamplingParams

        with torch.inference_mode():
            out = generate(self.model.llm, self.prompt_embeds(rows), 1,
                           SamplingParams(temperature=0, max_new_tokens=max_new_tokens, stop_token_ids=self.stop_token_ids))
        return decode(self.tokenizer, out.token_ids)
