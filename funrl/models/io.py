"""Save and load an AudioLLM as a folder.

Layout::

    MODEL_DIR/
      funrl_model.json    format, version, encoder/adaptor/prompt config, ctc, ctc_vocab_size, dtype
      audio.safetensors   encoder.*, adaptor.*, ctc_head.* (feature-normalisation buffers in float32)
      llm/                a standard transformers folder: config.json, generation_config.json,
                          model.safetensors, tokenizer.json, tokenizer_config.json

``llm/`` loads on its own with ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer`` (the
SGLang rollout engine loads only that part); its ``eos_token_id`` is ``<|im_end|>``. A LoRA-wrapped
LLM is saved merged. Weights may be stored in bfloat16/float16 (``dtype``) to keep checkpoints small;
:func:`load_pretrained` casts them to the compute dtype asked for.

The public Fun-ASR-Nano ``model.pt`` holds one state dict with the prefixes ``audio_encoder.``,
``audio_adaptor.``, ``ctc_decoder.``/``ctc.`` and ``llm.``; loading it means building a SenseVoice
encoder type in :func:`funrl.models.encoder.build_encoder` and mapping those prefixes onto
``encoder.``, ``adaptor.``, ``ctc_head.`` and ``llm`` (a later issue).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import torch

from funrl.models.audio_llm import AudioLLM
from funrl.models.config import AdaptorConfig, EncoderConfig, ModelConfig, PromptConfig

FORMAT = "funrl-audio-llm"
VERSION = 1
CONFIG_FILE = "funrl_model.json"
AUDIO_FILE = "audio.safetensors"
LLM_DIR = "llm"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ValueError(f"unknown dtype {name!r}; expected one of {list(DTYPES)}")
    return DTYPES[name]


def save_pretrained(model: AudioLLM, tokenizer, out_dir: str | Path, dtype: str = "float32") -> Path:
    """Write ``model`` and ``tokenizer`` to ``out_dir`` (created; existing files overwritten)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dt = _dtype(dtype)
    llm = model.llm
    if hasattr(llm, "merge_and_unload"):  # a peft model: save the merged weights
        llm = copy.deepcopy(llm).merge_and_unload()
    else:
        llm = copy.deepcopy(llm)
    llm.to(dt).save_pretrained(out / LLM_DIR)
    tokenizer.save_pretrained(out / LLM_DIR)
    params = {n for n, _ in model.named_parameters()}
    audio = {
        k: (v.to(dt) if k in params else v.float()).detach().contiguous().cpu()
        for k, v in model.state_dict().items()
        if not k.startswith("llm.")
    }
    save_file(audio, str(out / AUDIO_FILE))
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "encoder": dataclasses.asdict(model.cfg.encoder),
        "adaptor": dataclasses.asdict(model.cfg.adaptor),
        "prompt": dataclasses.asdict(model.cfg.prompt),
        "ctc": model.ctc_head is not None,
        "ctc_vocab_size": model.ctc_vocab_size,
        "dtype": dtype,
    }
    (out / CONFIG_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def read_config(model_dir: str | Path) -> dict:
    path = Path(model_dir) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{model_dir}: not a funrl model folder (no {CONFIG_FILE}); expected the output of "
            "`funrl sft` or funrl.models.io.save_pretrained"
        )
    meta = json.loads(path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT or meta.get("version", 0) > VERSION:
        raise ValueError(f"{path}: format {meta.get('format')!r} v{meta.get('version')} is not {FORMAT} v<={VERSION}")
    return meta


def load_pretrained(
    model_dir: str | Path, dtype: torch.dtype = torch.float32, device: str = "cpu", prompt: PromptConfig | None = None
) -> tuple[AudioLLM, object]:
    """``(AudioLLM in eval mode, tokenizer)`` from a folder; ``prompt`` overrides the saved prompt."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from funrl.models.tokenizer import check_special_tokens

    root = Path(model_dir)
    meta = read_config(root)
    cfg = ModelConfig(
        path=str(root),
        encoder=EncoderConfig(**meta["encoder"]),
        adaptor=AdaptorConfig(**meta["adaptor"]),
        prompt=prompt or PromptConfig(**meta["prompt"]),
        ctc=bool(meta["ctc"]),
    )
    tokenizer = AutoTokenizer.from_pretrained(root / LLM_DIR)
    check_special_tokens(tokenizer)
    llm = AutoModelForCausalLM.from_pretrained(root / LLM_DIR, dtype=dtype)
    model = AudioLLM(cfg, llm, int(meta["ctc_vocab_size"]))
    state = load_file(str(root / AUDIO_FILE))
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("llm.")}
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(f"{root / AUDIO_FILE}: weights do not match {CONFIG_FILE}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.load_state_dict(state, strict=False)  # the llm.* half came from llm/ above
    for part in (model.encoder, model.adaptor, model.ctc_head):
        if part is not None:
            part.to(dtype)
    return model.to(device).eval(), tokenizer
