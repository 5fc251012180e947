"""transformers audio-LLM families funrl runs, one small adapter each (see :mod:`.base`).

>>> sorted(FAMILIES)
['fun_asr_nano', 'qwen2_audio']
"""

from __future__ import annotations

import json
from pathlib import Path

from funrl.errors import UserError
from funrl.models.families.base import FamilyAdapter
from funrl.models.families.fun_asr_nano import FunAsrNanoAdapter
from funrl.models.families.qwen2_audio import Qwen2AudioAdapter

FAMILIES: dict[str, type[FamilyAdapter]] = {a.model_type: a for a in (FunAsrNanoAdapter, Qwen2AudioAdapter)}


class UnknownFamilyError(UserError, ValueError):
    """A model folder whose config.json names a family funrl has no adapter for."""


def family_of(path: str | Path) -> type[FamilyAdapter]:
    """The adapter class for the model folder ``path``, from its config.json ``model_type``."""
    config = Path(path) / "config.json"
    if not config.is_file():
        raise UnknownFamilyError(f"{path}: no config.json: model.path must be a transformers model folder")
    model_type = json.loads(config.read_text()).get("model_type")
    if model_type not in FAMILIES:
        raise UnknownFamilyError(
            f"{config}: model_type {model_type!r} is not a supported audio-LLM family; "
            f"supported: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[model_type]


def load_family(path: str | Path, prompt=None, **kwargs) -> FamilyAdapter:
    """``family_of(path).load(path, prompt, ...)``."""
    return family_of(path).load(path, prompt, **kwargs)


def is_native(path: str | Path) -> bool:
    """A funrl-format model folder (``funrl_model.json``), not a transformers family folder."""
    from funrl.models.io import CONFIG_FILE

    return (Path(path) / CONFIG_FILE).is_file()


def load_audio_llm(path: str | Path, prompt=None, **kwargs):
    """The model at ``path`` behind one interface, whatever its format: a funrl-format folder
    (:class:`~funrl.models.families.native.NativeAudioLLM`) or a transformers family folder
    (:class:`FamilyAdapter`). ``prompt``: a :class:`funrl.models.config.PromptConfig` or None (the
    saved one for a funrl folder, the family's published wording otherwise)."""
    if is_native(path):
        from funrl.models.families.native import NativeAudioLLM

        return NativeAudioLLM(path, prompt, **kwargs)
    return load_family(path, prompt, **kwargs)


TEXT_LM_DIR = "text_lm"


def text_lm_folder(model_path: str | Path, work_dir: str | Path) -> Path:
    """The plain causal-LM folder the rollout engines and the policy load: ``llm/`` of a funrl
    folder, or, for a transformers family, the text LM written once into ``work_dir/text_lm``
    (reused when it is already there and complete). A plain causal-LM folder (a ``config.json``
    whose ``model_type`` is no audio family: the engines' and benches' own test folders) is its
    own text LM."""
    if is_native(model_path):
        return Path(model_path) / "llm"
    config = Path(model_path) / "config.json"
    if config.is_file() and json.loads(config.read_text()).get("model_type") not in FAMILIES:
        return Path(model_path)
    out = Path(work_dir) / TEXT_LM_DIR
    if not (out / "config.json").is_file():
        import os
        import shutil

        tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")  # actors on one node may export at once
        shutil.rmtree(tmp, ignore_errors=True)
        load_family(model_path).save_text_lm(tmp)
        if (out / "config.json").is_file():  # another process finished first: same bytes
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            shutil.rmtree(out, ignore_errors=True)
            try:
                tmp.rename(out)
            except OSError:  # lost the race between the check and the rename
                shutil.rmtree(tmp, ignore_errors=True)
    return out


__all__ = ["FAMILIES", "FamilyAdapter", "FunAsrNanoAdapter", "Qwen2AudioAdapter", "UnknownFamilyError",
           "family_of", "is_native", "load_audio_llm", "load_family", "text_lm_folder"]
