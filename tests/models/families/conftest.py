"""Tiny saved models of each family (funrl.models.families.testing) and two real wav files."""

from __future__ import annotations

import pytest
import soundfile as sf
import torch

from funrl.models.families.testing import chirp, tiny_family


@pytest.fixture(scope="session", params=["fun_asr_nano", "qwen2_audio"])
def family(request, tmp_path_factory):
    """An adapter loaded from a freshly built and saved tiny model of the family."""
    torch.set_num_threads(1)
    return tiny_family(request.param, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="session")
def rows(tmp_path_factory):
    """Two manifest rows on different wav files (1.3 s rising chirp, 0.8 s falling chirp)."""
    d = tmp_path_factory.mktemp("audio")
    sf.write(d / "rise.wav", chirp(1.3, 150, 2500, seed=0), 16000)
    sf.write(d / "fall.wav", chirp(0.8, 3000, 300, seed=1), 16000)
    return [
        {"audio": str(d / "rise.wav"), "text": "turn on the kitchen light", "language": "en", "hotwords": ["Ingrid"]},
        {"audio": str(d / "fall.wav"), "text": "打开 客厅 的 灯", "language": "zh", "hotwords": []},
    ]
