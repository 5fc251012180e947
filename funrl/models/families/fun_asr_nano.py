"""Fun-ASR-Nano (``model_type: fun_asr_nano``): transformers' ``FunAsrNanoForConditionalGeneration``.

SAN-M audio encoder -> 2-layer adaptor -> Qwen3 (``model.model.language_model``, head tied to the
input embeddings). ``get_audio_features(...).pooler_output`` holds every valid low-frame-rate frame
of every clip, flattened; one ``<|object_ref_start|>`` placeholder per frame.

Prompt: Fun-ASR-Nano's ChatML layout, task and hotword wording from
:func:`funrl.models.prompt.prompt_texts` (``model.prompt.*``). Where we depart from funrl's own
format: the transformers checkpoint has no ``<|startofspeech|>``/``<|endofspeech|>`` markers around
the speech (FunASR replaces the whole marked span by the audio frames), so they are dropped and the
placeholder run sits where the span was.

Feature extractor: transformers' ``FunAsrNanoFeatureExtractor`` imports torchaudio for its Kaldi
fbank; :class:`KnfFunAsrNanoFeatureExtractor` is the same class with the fbank computed by
:func:`funrl.models.families.fbank.kaldi_fbank`, and saves itself under the original class name so
the folder still loads with ``AutoProcessor`` where torchaudio is installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch
from transformers.models.fun_asr_nano.feature_extraction_fun_asr_nano import FunAsrNanoFeatureExtractor

from funrl.models.families.base import FamilyAdapter
from funrl.models.families.fbank import kaldi_fbank
from funrl.models.prompt import prompt_texts

SPEECH_START, SPEECH_END = "<|startofspeech|>", "<|endofspeech|>"


class KnfFunAsrNanoFeatureExtractor(FunAsrNanoFeatureExtractor):
    """``FunAsrNanoFeatureExtractor`` with kaldi-native-fbank in place of torchaudio's Kaldi fbank."""

    def _extract_fbank_features(self, waveform: torch.Tensor) -> torch.Tensor:
        return kaldi_fbank(waveform, self.feature_size, self.frame_length, self.frame_shift,
                           self.sampling_rate, self.window)

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["feature_extractor_type"] = FunAsrNanoFeatureExtractor.__name__
        return out


class FunAsrNanoAdapter(FamilyAdapter):
    model_type = "fun_asr_nano"

    @classmethod
    def model_class(cls):
        from transformers import FunAsrNanoForConditionalGeneration

        return FunAsrNanoForConditionalGeneration

    @classmethod
    def load_processor(cls, path: str | Path):
        from transformers import AutoTokenizer, FunAsrNanoProcessor

        return FunAsrNanoProcessor.from_pretrained(
            str(path), feature_extractor=KnfFunAsrNanoFeatureExtractor.from_pretrained(str(path)),
            tokenizer=AutoTokenizer.from_pretrained(str(path)))

    @property
    def language_model(self):
        return self.model.model.language_model

    def prompt_text(self, row: Mapping[str, Any]) -> str:
        before, after = prompt_texts(self.prompt, row)
        if not (before.endswith(SPEECH_START) and after.startswith(SPEECH_END)):
            raise ValueError("funrl.models.prompt.prompt_texts no longer brackets the speech with "
                             f"{SPEECH_START}/{SPEECH_END}; update FunAsrNanoAdapter.prompt_text")
        return before[: -len(SPEECH_START)] + self.processor.audio_token + after[len(SPEECH_END):]

    def audio_embeds(self, inputs) -> list[torch.Tensor]:
        return self.encode(inputs)[0]

    def split_features(self, inputs) -> list[tuple[torch.Tensor, int]]:
        """The valid low-frame-rate rows (7 stacked 80-bin frames each): padding is the feature
        extractor's constant ``padding_value``, so nothing past them is kept."""
        out = []
        for x, m in zip(inputs["input_features"], inputs["input_features_mask"]):  # [T, 7*80], [T]
            n = int(m.sum())
            out.append((x[:n].float(), n))
        return out

    def collate_features(self, frames, valid) -> dict:
        """``input_features [B, T, F]`` right-padded with ``padding_value`` and ``input_features_mask [B, T]``."""
        t = max(f.shape[0] for f in frames)
        x = torch.full((len(frames), t, frames[0].shape[1]), float(self.processor.feature_extractor.padding_value))
        mask = torch.zeros(len(frames), t, dtype=torch.long)
        for b, (f, n) in enumerate(zip(frames, valid)):
            x[b, : f.shape[0]], mask[b, :n] = f, 1
        return {"input_features": x, "input_features_mask": mask}

    @property
    def ctc_input_size(self) -> int:
        return int(self.model.config.audio_config.hidden_size)

    def encode(self, inputs) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """``(audio [B] of [n_i, H], encoder output [B, T_lfr, D_audio], lengths [B])``: one
        ``get_audio_features`` call; the encoder output (before the projector, one frame per
        placeholder) is what a CTC head reads."""
        mask = inputs["input_features_mask"]  # [B, T_lfr]
        out = self.model.model.get_audio_features(inputs["input_features"], mask)
        lengths = mask.sum(-1)  # [B]
        return list(out.pooler_output.split(lengths.tolist())), out.last_hidden_state, lengths
