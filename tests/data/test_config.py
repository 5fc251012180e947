"""The ``data`` config section."""

from __future__ import annotations

import pytest

from funrl.config import ConfigError, load_config
from funrl.data.config import DataConfig, filter_by_duration
from funrl.data.manifest import Utterance


def test_data_section_loads_with_overrides():
    cfg = load_config(None, ["data.train_manifest=c/train.jsonl", "data.max_duration=3.5"])
    assert isinstance(cfg.data, DataConfig)
    assert cfg.data.require("train_manifest") == "c/train.jsonl" and cfg.data.max_duration == 3.5
    with pytest.raises(ConfigError, match=r"data.eval_manifest is not set: pass data.eval_manifest="):
        cfg.data.require("eval_manifest")


def test_filter_by_duration_reports_what_it_drops():
    utts = [Utterance(id=str(i), audio="/a.wav", text="x", duration=d)
            for i, d in enumerate([1.0, 4.0, None, 3.0])]
    kept, dropped = filter_by_duration(utts, 3.0)
    assert [u.id for u in kept] == ["0", "2", "3"] and [u.id for u in dropped] == ["1"]
    assert filter_by_duration(utts, None) == (utts, [])
