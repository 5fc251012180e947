"""Fun-ASR-Nano's feature extractor without torchaudio: kaldi-native-fbank against a transcription of
torchaudio's Kaldi fbank (tests/models/families/reference_kaldi.py), alone and inside the
extractor's own LFR + padding path.

torchaudio cannot be installed here; on the GPU image, which has it, bench/gpu_families_check.py
found the transcription equal to torchaudio 2.11's ``compliance.kaldi.fbank`` (max difference 0 on
these three waves) and kaldi-native-fbank within 3.5e-4 of it (mean 8e-6), also through
transformers' own extractor (same masks)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from transformers.models.fun_asr_nano.feature_extraction_fun_asr_nano import FunAsrNanoFeatureExtractor

from funrl.models.families.fbank import kaldi_fbank
from funrl.models.families.fun_asr_nano import KnfFunAsrNanoFeatureExtractor
from funrl.models.families.testing import chirp
from tests.models.families.reference_kaldi import torchaudio_fbank

# Both kaldi-native-fbank and torchaudio compute in float32; neither is bit-exact to the other
# (different summation orders). Against the same algorithm in float64 both are off by up to about
# 4.5e-4 on the chirp (low-energy bins; log-mel values span -16..13), mean 5e-6.
ATOL, MEAN_TOL = 1e-3, 2e-5


class ReferenceExtractor(FunAsrNanoFeatureExtractor):
    """transformers' extractor with the torchaudio algorithm (transcribed) as its fbank."""

    def _extract_fbank_features(self, waveform):
        return torchaudio_fbank(waveform, self.feature_size, self.frame_length, self.frame_shift, self.sampling_rate)


def waves():
    rng = np.random.default_rng(3)
    return {
        "chirp": chirp(1.3),
        "noise": (0.3 * rng.standard_normal(12345)).astype(np.float32),
        "quiet": (1e-4 * rng.standard_normal(4000)).astype(np.float32),
        "one frame": chirp(0.025),
    }


@pytest.mark.parametrize("name", list(waves()))
def test_knf_fbank_is_as_close_to_kaldi_as_torchaudio_is(name):
    wave = waves()[name]
    exact = torchaudio_fbank(torch.from_numpy(wave).double())  # [T, 80] float64
    torchaudio32 = torchaudio_fbank(torch.from_numpy(wave)).double()  # what transformers' extractor gets
    got = kaldi_fbank(wave).double()
    assert got.shape == exact.shape == (1 + (wave.size - 400) // 160, 80)
    ours, theirs = (got - exact).abs(), (torchaudio32 - exact).abs()
    assert ours.max() < ATOL and ours.mean() < MEAN_TOL
    assert ours.max() <= 2 * theirs.max() + 1e-5 and ours.mean() <= 2 * theirs.mean() + 1e-7
    assert (got - torchaudio32).abs().max() < ATOL


def test_extractor_path_equals_reference_extractor():
    clips = [chirp(1.3), chirp(0.61, 900, 200, seed=2)]
    ours = KnfFunAsrNanoFeatureExtractor()(clips, sampling_rate=16000)
    ref = ReferenceExtractor()(clips, sampling_rate=16000)
    assert torch.equal(ours["input_features_mask"], ref["input_features_mask"])
    # one low-frame-rate frame per 6 fbank frames, rounded up
    assert ours["input_features_mask"].sum(-1).tolist() == [math.ceil((1 + (c.size - 400) // 160) / 6) for c in clips]
    assert ours["input_features"].shape == ref["input_features"].shape == (2, 22, 560)
    assert (ours["input_features"] - ref["input_features"]).abs().max() < ATOL


def test_too_short_clip_is_a_clear_error():
    with pytest.raises(ValueError, match="shorter than one 400-sample frame"):
        kaldi_fbank(np.zeros(399, np.float32))


def test_saved_under_transformers_class_name(tmp_path):
    KnfFunAsrNanoFeatureExtractor(frame_shift=10).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved["feature_extractor_type"] == "FunAsrNanoFeatureExtractor"
    assert KnfFunAsrNanoFeatureExtractor.from_pretrained(tmp_path).to_dict() == KnfFunAsrNanoFeatureExtractor().to_dict()
