"""The family adapter: what funrl needs from a transformers audio LLM, and nothing more.

A family (Fun-ASR-Nano, Qwen2-Audio, ...) follows one pattern: its processor puts audio
placeholder tokens into a chat prompt, ``get_audio_features`` (or the family's equivalent)
encodes the audio, the features replace the placeholders in the input embeddings, and a causal LM
decodes. An adapter wraps the family's own model class and processor and offers:

- :meth:`FamilyAdapter.load` / :meth:`FamilyAdapter.save`: the family's own transformers folder
  (``from_pretrained`` / ``save_pretrained`` of the model and the processor);
- :attr:`FamilyAdapter.processor`: feature extractor, tokenizer, chat template, placeholder token;
  :meth:`FamilyAdapter.prompt_text` puts the family's published task and hotword wording around
  the placeholder;
- :meth:`FamilyAdapter.prompt_embeds`: one ``[L_i, H]`` tensor per manifest row, the placeholders
  replaced by the audio features (the encoder role's output);
- :meth:`FamilyAdapter.text_lm`: the language model and its head as a plain causal LM that runs
  from ``inputs_embeds`` (the rollout and policy roles' model), sharing the family model's
  parameters; :meth:`FamilyAdapter.save_text_lm` writes it as the plain causal-LM folder SGLang and
  :class:`funrl.rollout.hf_engine.HFEngine` load;
- :meth:`FamilyAdapter.load_text_lm_weights`: trained text-LM weights back into the family model,
  which :meth:`FamilyAdapter.save` then writes in the family's format;
  :meth:`FamilyAdapter.transcribe`: greedy transcripts through funrl's own decoding loop.

Models are loaded with ``attn_implementation="sdpa"``: without it Fun-ASR-Nano's adaptor builds no
padding mask and a clip's embeddings change when it is batched with a longer one. Models are kept
in eval mode: Fun-ASR-Nano's encoder applies dropout functionally, so only ``eval()`` turns it off.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import torch

from funrl.models.config import PromptConfig


class FamilyAdapter(ABC):
    """One transformers audio-LLM family. Subclasses set :attr:`model_type` and the abstract parts."""

    model_type: ClassVar[str]  # config.json ``model_type`` this adapter serves

    def __init__(self, model, processor, prompt: PromptConfig | None = None):
        self.model = model.eval()
        self.processor = processor
        self.prompt = prompt if prompt is not None else PromptConfig()

    # ------------------------------------------------------------------ family-specific parts

    @classmethod
    @abstractmethod
    def model_class(cls):
        """The family's ``...ForConditionalGeneration`` class."""

    @classmethod
    @abstractmethod
    def load_processor(cls, path: str | Path):
        """The family's processor, read from ``path``."""

    @abstractmethod
    def prompt_text(self, row: Mapping[str, Any]) -> str:
        """The prompt for one manifest row, with one audio placeholder token (the processor expands it)."""

    @abstractmethod
    def audio_embeds(self, inputs) -> list[torch.Tensor]:
        """One ``[n_i, H]`` tensor per clip from the processor's output: what replaces its placeholders."""

    @property
    @abstractmethod
    def language_model(self) -> torch.nn.Module:
        """The text model without its head (its ``embed_tokens`` are the input embeddings)."""

    @abstractmethod
    def split_features(self, inputs) -> list[tuple[torch.Tensor, int]]:
        """Per row of the processor's batch: ``(frames [T_i, F] time-major, valid frame count n_i)``,
        the valid frames first: all :meth:`collate_features` needs to rebuild the row's padded
        features exactly (``funrl sft`` computes them once per utterance and keeps them)."""

    @abstractmethod
    def collate_features(self, frames: Sequence[torch.Tensor], valid: Sequence[int]) -> dict:
        """The processor's audio keys (features and their valid-frame mask, padded as the processor
        pads) for rows ``frames`` from :meth:`split_features`, on the CPU."""

    @property
    def feature_bins(self) -> int:
        """Mel bins per feature frame: a row of :meth:`split_features` is ``k`` stacked frames of
        this many bins (SpecAugment masks a band in each of them alike)."""
        return int(self.model.config.audio_config.num_mel_bins)

    @property
    def max_audio_seconds(self) -> float | None:
        """The longest clip the processor keeps whole (it cuts longer ones), or None: no cut."""
        return None

    @property
    def ctc_input_size(self) -> int | None:
        """Width of the encoder output :meth:`encode` returns for a CTC head (:mod:`.ctc`), or None
        where funrl has no CTC head for the family."""
        return None

    def encode(self, inputs) -> tuple[list[torch.Tensor], torch.Tensor | None, torch.Tensor | None]:
        """``(audio [B] of [n_i, H], encoder output [B, T, D], lengths [B])`` in one encoder pass;
        the last two (what a CTC head reads) are None where :attr:`ctc_input_size` is None."""
        return self.audio_embeds(inputs), None, None

    # ------------------------------------------------------------------ shared parts

    @classmethod
    def load(cls, path: str | Path, prompt: PromptConfig | None = None, dtype: torch.dtype = torch.float32,
             device: str | torch.device = "cpu"):
        """The family's own ``from_pretrained`` (sdpa attention, eval mode) and its processor."""
        model = cls.model_class().from_pretrained(str(path), dtype=dtype, attn_implementation="sdpa")
        adapter = cls(model.to(device), cls.load_processor(path), prompt)
        adapter.source = Path(path)  # export copies what lives beside the weights (the CTC head)
        return adapter

    def save(self, path: str | Path) -> None:
        """The family's own folder: model weights and config, processor, tokenizer."""
        self.model.save_pretrained(str(path))
        self.processor.save_pretrained(str(path))

    @property
    def tokenizer(self):
        return self.processor.tokenizer

    @property
    def audio_token_id(self) -> int:
        return int(self.model.config.audio_token_id)

    @property
    def stop_token_ids(self) -> list[int]:
        """The chat end-of-turn token (``<|im_end|>``) and the tokenizer's end-of-text, where distinct."""
        ids = [self.tokenizer.convert_tokens_to_ids("<|im_end|>"), self.tokenizer.convert_tokens_to_ids("<|endoftext|>")]
        return sorted({int(i) for i in ids if i is not None and i != self.tokenizer.unk_token_id})

    def prompt_inputs(self, rows: Sequence[Mapping[str, Any]]):
        """The processor's batch (left-padded ``input_ids``, ``attention_mask``, audio features) for
        ``rows``; a streaming row's audio ends at its ``audio_end_s``."""
        from funrl.data.audio import load_audio

        from funrl.streaming.training import cut_audio

        rate = self.processor.feature_extractor.sampling_rate
        waves = [cut_audio(load_audio(r["audio"], rate, data=r.get("audio_bytes")), r, rate) for r in rows]
        texts = [self.full_prompt_text(r) for r in rows]
        return self.processor(text=texts, audio=waves, sampling_rate=rate, padding=True, return_tensors="pt")

    def full_prompt_text(self, row: Mapping[str, Any]) -> str:
        """:meth:`prompt_text` and, on a streaming row (:mod:`funrl.streaming.training`), its
        committed prefix as the start of the answer."""
        return self.prompt_text(row) + (row.get("stream_prefix") or "")

    def on_model(self, inputs) -> dict:
        """The processor's tensors on the model's device, floating ones in its dtype."""
        dev, dtype = self.model.device, self.model.dtype
        return {k: (v.to(dev, dtype) if v.is_floating_point() else v.to(dev)) if torch.is_tensor(v) else v
                for k, v in inputs.items()}

    def prompt_embeds(self, rows: Sequence[Mapping[str, Any]]) -> list[torch.Tensor]:
        """One ``[L_i, H]`` prompt embedding per row (padding dropped), audio features in the placeholders.

        The same masked scatter the family's ``forward`` does, per row: the text LM run on these
        embeddings gives the family model's logits on the same prompt.
        """
        return self.merge_audio(self.on_model(self.prompt_inputs(rows)))

    def merge_audio(self, inputs, audio: Sequence[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """:meth:`prompt_embeds` from the processor's (model-placed) batch ``inputs``; ``audio``: the
        per-clip features when already computed (SFT computes them once for the prompt and the CTC head)."""
        audio = self.audio_embeds(inputs) if audio is None else audio  # [B] of [n_i, H]
        embed = self.model.get_input_embeddings()
        out = []
        for i, ids in enumerate(inputs["input_ids"]):
            ids = ids[inputs["attention_mask"][i].bool()].to(embed.weight.device)  # [L_i]
            slots = ids == self.audio_token_id  # [L_i]
            if int(slots.sum()) != audio[i].shape[0]:
                raise ValueError(f"{type(self).__name__}: row {i} has {int(slots.sum())} audio placeholders "
                                 f"but {audio[i].shape[0]} audio features")
            e = embed(ids)  # [L_i, H]
            out.append(e.masked_scatter(slots[:, None], audio[i].to(e.device, e.dtype)))
        return out

    def text_lm(self):
        """The text model and LM head as the text config's ``...ForCausalLM``, sharing this model's
        parameters (no copy: training it trains the family model). ``tie_word_embeddings`` says
        whether the head *is* the input embedding here, so a save writes the table once when tied."""
        from transformers import GenerationConfig
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

        lang, head = self.language_model, self.model.lm_head
        config = copy.deepcopy(self.model.config.get_text_config())
        config.tie_word_embeddings = head.weight is lang.get_input_embeddings().weight
        config.eos_token_id = self.stop_token_ids
        config.pad_token_id = self.tokenizer.pad_token_id
        with torch.device("meta"):
            lm = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)](config)
        lm.model, lm.lm_head = lang, head
        lm.generation_config = GenerationConfig(eos_token_id=self.stop_token_ids, pad_token_id=self.tokenizer.pad_token_id)
        return lm.eval()

    def save_text_lm(self, path: str | Path) -> None:
        """The text LM as a plain causal-LM folder (config, weights, tokenizer): what SGLang loads."""
        self.text_lm().save_pretrained(str(path))
        self.tokenizer.save_pretrained(str(path))

    def load_text_lm_weights(self, named_tensors) -> None:
        """Copy trained text-LM weights (``(name, tensor)`` with the causal LM's names, e.g. the
        policy's LoRA-merged export) into this family model; :meth:`save` then writes the trained
        model in the family's format. A tied head may come under either name."""
        sd = self.text_lm().state_dict(keep_vars=True)
        unknown = []
        with torch.no_grad():
            for name, t in named_tensors:
                if name not in sd:
                    unknown.append(name)
                    continue
                if tuple(t.shape) != tuple(sd[name].shape):
                    raise ValueError(f"load_text_lm_weights: {name} has shape {tuple(t.shape)}, "
                                     f"the model's is {tuple(sd[name].shape)}")
                sd[name].copy_(t.detach())
        if unknown:
            raise KeyError(f"load_text_lm_weights: names the {self.model_type} text LM does not have: {unknown[:5]}")

    def audio_state(self) -> dict[str, torch.Tensor]:
        """Every weight outside the text LM (audio encoder, adaptor/projector): frozen during GRPO."""
        text = {id(p) for p in self.text_lm().parameters()}
        return {k: p.detach().cpu() for k, p in self.model.named_parameters() if id(p) not in text}

    def export(self, out: Path, llm_state: Mapping[str, torch.Tensor]) -> None:
        """``out``: the trained model in the family's own format (its ``from_pretrained``,
        processor and ``generate`` work on it), plus ``out/llm``, the text LM as a plain causal-LM
        folder (what SGLang loads), and the CTC head of the folder it was loaded from, if any (hotword
        RAG's first pass needs it)."""
        import shutil

        from funrl.models.families.ctc import CTC_CONFIG, CTC_WEIGHTS

        self.load_text_lm_weights(llm_state.items())
        self.save(out)
        self.save_text_lm(Path(out) / "llm")
        source = getattr(self, "source", None)
        for name in (CTC_CONFIG, CTC_WEIGHTS):  # the CTC head is frozen in GRPO: the folder's own
            if source is not None and (source / name).is_file():
                shutil.copy2(source / name, Path(out) / name)

    def transcribe(self, rows: Sequence[Mapping[str, Any]], max_new_tokens: int = 64) -> list[str]:
        """Greedy transcripts: :meth:`prompt_embeds`, funrl's decoding loop on :meth:`text_lm`, the
        tokenizer's decode without special tokens (what ``funrl eval`` prints)."""
        with torch.inference_mode():
            return self.transcribe_embeds(self.prompt_embeds(rows), max_new_tokens)

    def transcribe_embeds(self, embeds: Sequence[torch.Tensor], max_new_tokens: int = 64) -> list[str]:
        """:meth:`transcribe` from prompt embeddings already built (hotword RAG builds them)."""
        from funrl.rollout.generation import decode, generate
        from funrl.rollout.protocol import SamplingParams

        with torch.inference_mode():
            out = generate(self.text_lm(), list(embeds), 1,
                           SamplingParams(temperature=0, max_new_tokens=max_new_tokens, stop_token_ids=self.stop_token_ids))
        return decode(self.tokenizer, out.token_ids)
