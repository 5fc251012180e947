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


__all__ = ["FAMILIES", "FamilyAdapter", "FunAsrNanoAdapter", "Qwen2AudioAdapter", "UnknownFamilyError",
           "family_of", "load_family"]
