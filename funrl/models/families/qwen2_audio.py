"""Qwen2-Audio (``model_type: qwen2_audio``): transformers' ``Qwen2AudioForConditionalGeneration``.

Whisper-style encoder (log-mel, 30 s windows, pooled to 25 frames/s) -> linear projector -> Qwen2
(``model.model.language_model``, untied head in the released checkpoints). transformers has no
``get_audio_features`` for this family: :meth:`Qwen2AudioAdapter.audio_embeds` runs the same lines
``Qwen2AudioModel.forward`` runs before its ``masked_scatter`` (audio tower with its bidirectional
padding mask, projector, valid frames kept), so the merge is the family's own. The pooled encoder
output before the projector feeds funrl's CTC head (:meth:`Qwen2AudioAdapter.encode`; the released
model has none: ``funrl sft sft.trainable=[ctc]`` trains one, for hotword RAG and ``funrl data align``).

Prompt: the processor's chat template (system turn, ``Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>``,
then the user text). The user text is Qwen2-Audio's published ASR instruction "Detect the language
and recognize the speech:" followed by the language tag (``<|en|>``) when the row's language is known
and ``prompt.language_hint`` is on. Qwen2-Audio publishes no hotword wording: with
``prompt.use_hotwords`` funrl prefixes :data:`HOTWORD_CONTEXT` (its own wording, not the model's).

Features (``funrl sft`` keeps them per utterance, :meth:`Qwen2AudioAdapter.split_features`): the
processor pads every clip to the feature extractor's window (30 s in the released model) and cuts
longer ones (:attr:`~Qwen2AudioAdapter.max_audio_seconds`). Whisper pads the *waveform* with
silence before the log-mel, so the padded frames are not one constant: the first two carry the
clip's tail (the STFT window reaches past the end; the encoder's convolutions read them into the
last valid positions) and the rest all equal the clip's floor. A row keeps its frames up to the
last one that differs from the window's final frame, then that final frame (the fill): the
processor's features come back exactly, and a short clip stores a short tensor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from funrl.models.families.base import FamilyAdapter

ASR_INSTRUCTION = "Detect the language and recognize the speech:"
HOTWORD_CONTEXT = "Hotwords: {}.\n"
LANGUAGE_TAGS = {"en": "<|en|>", "zh": "<|zh|>"}


class Qwen2AudioAdapter(FamilyAdapter):
    model_type = "qwen2_audio"

    @classmethod
    def model_class(cls):
        from transformers import Qwen2AudioForConditionalGeneration

        return Qwen2AudioForConditionalGeneration

    @classmethod
    def load_processor(cls, path: str | Path):
        from transformers import Qwen2AudioProcessor

        return Qwen2AudioProcessor.from_pretrained(str(path))

    @property
    def language_model(self):
        return self.model.model.language_model

    def prompt_text(self, row: Mapping[str, Any]) -> str:
        text = ""
        hotwords = row.get("hotwords") or []
        if self.prompt.use_hotwords and hotwords:
            text += HOTWORD_CONTEXT.format(", ".join(hotwords))
        text += ASR_INSTRUCTION
        tag = LANGUAGE_TAGS.get(row.get("language") or "") if self.prompt.language_hint else None
        if tag:
            text += " " + tag
        conversation = [{"role": "user", "content": [{"type": "audio", "audio_url": str(row.get("audio", ""))},
                                                     {"type": "text", "text": text}]}]
        return self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)

    def audio_embeds(self, inputs) -> list[torch.Tensor]:
        return self.encode(inputs)[0]

    @property
    def ctc_input_size(self) -> int:
        return int(self.model.config.audio_config.d_model)

    def encode(self, inputs) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """``(audio [B] of [n_i, H], encoder output [B, S, D_audio], lengths [B])`` in one audio-tower
        pass: the pooled encoder output (25 frames/s, before the projector; one frame per audio
        placeholder) is what a CTC head reads."""
        from transformers.masking_utils import create_bidirectional_mask

        model = self.model.model
        feats, fmask = inputs["input_features"], inputs["feature_attention_mask"]  # [B, D, T], [B, T]
        lengths, out_lengths = model.audio_tower._get_feat_extract_output_lengths(fmask.sum(-1))  # [B], [B]
        max_len = (feats.shape[-1] - 2) // 2 + 1
        valid = (torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]).long()  # [B, max_len]
        dummy = torch.zeros(feats.shape[0], max_len, 1, dtype=self.model.dtype, device=feats.device)
        attn = create_bidirectional_mask(config=model.audio_tower.config, inputs_embeds=dummy, attention_mask=valid)
        hidden = model.audio_tower(feats, attention_mask=attn).last_hidden_state  # [B, S, D_audio]
        audio = model.multi_modal_projector(hidden)  # [B, S, H]
        return [audio[i, : int(n)] for i, n in enumerate(out_lengths)], hidden, out_lengths

    @property
    def max_audio_seconds(self) -> float:
        fe = self.processor.feature_extractor
        return fe.n_samples / fe.sampling_rate

    def split_features(self, inputs) -> list[tuple[torch.Tensor, int]]:
        """Per row ``(frames [keep + 1, F], n)``: the first ``keep`` frames of the window (every
        valid one, every padded one that is not the fill), then the fill frame."""
        out = []
        for x, m in zip(inputs["input_features"], inputs["feature_attention_mask"]):  # [F, T_win], [T_win]
            full = x.T.float()  # [T_win, F]
            n = int(m.sum())
            differs = (full != full[-1]).any(-1).nonzero()  # [k, 1]
            keep = max(n, int(differs[-1]) + 1 if len(differs) else 0)
            out.append((torch.cat([full[:keep], full[-1:]]), n))
        return out

    def collate_features(self, frames, valid) -> dict:
        """``input_features [B, F, T_win]`` (each row filled out with its fill frame) and
        ``feature_attention_mask [B, T_win]``, as the processor returns them."""
        win = self.processor.feature_extractor.nb_max_frames
        x = torch.empty(len(frames), win, frames[0].shape[1])
        mask = torch.zeros(len(frames), win, dtype=torch.long)
        for b, (f, n) in enumerate(zip(frames, valid)):
            x[b] = f[-1]
            x[b, : f.shape[0] - 1], mask[b, :n] = f[:-1], 1
        return {"input_features": x.transpose(1, 2).contiguous(), "feature_attention_mask": mask}
