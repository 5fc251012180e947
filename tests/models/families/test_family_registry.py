"""family_of reads config.json's model_type; a family's folder round-trips through its adapter and
loads in the family's own class."""

from __future__ import annotations

import json

import pytest
import torch

from funrl.errors import UserError
from funrl.models.config import PromptConfig
from funrl.models.families import FAMILIES, family_of, load_family
from funrl.models.families.testing import BUILDERS


def test_family_of_reads_model_type(family):
    assert family_of(family.model.name_or_path) is type(family)
    assert type(family).model_type == family.model.config.model_type


def test_unknown_model_type_lists_supported_families(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "voxtral"}))
    with pytest.raises(UserError, match=r"config.json: model_type 'voxtral' .* supported: fun_asr_nano, qwen2_audio"):
        family_of(tmp_path)
    with pytest.raises(UserError, match="no config.json"):
        family_of(tmp_path / "missing")


def test_save_and_reload_give_the_same_prompt_embeddings(family, rows, tmp_path):
    family.save(tmp_path)
    again = load_family(tmp_path)
    assert type(again) is type(family)
    with torch.inference_mode():
        for a, b in zip(family.prompt_embeds(rows), again.prompt_embeds(rows)):
            assert torch.equal(a, b)
    # the family's own class loads the folder too (no funrl code in the saved files)
    own = type(family).model_class().from_pretrained(tmp_path)
    assert own.config.model_type == family.model_type


def test_tokenizer_encodes_the_same_after_reload(family, rows, tmp_path):
    from transformers import AutoTokenizer

    family.tokenizer.save_pretrained(tmp_path)
    text = family.prompt_text(rows[0]) + "turn on the kitchen light 打开 客厅 的 灯 Okafor 42"
    assert AutoTokenizer.from_pretrained(tmp_path)(text).input_ids == family.tokenizer(text).input_ids
    assert family.tokenizer.padding_side == "left"


def test_hotwords_and_language_reach_the_prompt(family, rows):
    family.prompt = PromptConfig(use_hotwords=True)
    try:
        with_hot = family.prompt_text(rows[0])
    finally:
        family.prompt = PromptConfig()
    assert "Ingrid" in with_hot and "Ingrid" not in family.prompt_text(rows[0])
    assert with_hot.count(family.processor.audio_token) == 1
    if family.model_type == "fun_asr_nano":
        assert "语音转写成英文：" in with_hot and "热词列表：[Ingrid]" in with_hot
        assert "<|startofspeech|>" not in with_hot  # the transformers checkpoint has no speech markers
    else:
        assert "<|en|>" in with_hot and "<|audio_bos|>" in with_hot


@pytest.mark.parametrize("model_type", sorted(FAMILIES))
def test_tiny_builders_are_small(model_type, tmp_path):
    torch.set_num_threads(1)
    BUILDERS[model_type](tmp_path)
    size = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert size < 5_000_000
