"""Fbank features, batching and CMVN."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from funrl.data.features import FbankExtractor, collate, compute_cmvn
from funrl.data.manifest import load_manifest


def test_frame_count_and_dimension():
    fb = FbankExtractor()
    # snip_edges: 1 + (n - 400) // 160 frames: 16000 -> 98, 400 -> 1, 399 -> 0
    for n, frames in [(16000, 98), (400, 1), (399, 0)]:
        f = fb(np.zeros(n, np.float32) + 0.01)
        assert f.shape == (frames, 80) and f.dtype == np.float32


def test_louder_tone_has_more_energy_in_its_band():
    fb = FbankExtractor()
    t = np.arange(16000) / 16000
    quiet, loud = (fb((a * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)) for a in (0.01, 0.1))
    # log power: 10x amplitude -> +ln(100) = 4.6 in the bands that hold the tone
    band = int(np.argmax(loud.mean(axis=0)))
    assert loud[:, band].mean() - quiet[:, band].mean() == pytest.approx(np.log(100), abs=0.05)
    assert fb(np.zeros(16000, np.float32)).max() < quiet.max()


def test_collate_pads_with_zeros_and_returns_lengths():
    a, b = np.ones((3, 80), np.float32), np.full((5, 80), 2.0, np.float32)
    x, lengths = collate([a, b])
    assert x.shape == (2, 5, 80) and x.dtype == torch.float32
    assert lengths.tolist() == [3, 5] and lengths.dtype == torch.long
    assert torch.all(x[0, :3] == 1) and torch.all(x[0, 3:] == 0) and torch.all(x[1] == 2)
    with pytest.raises(ValueError, match="differ in dimension"):
        collate([a, np.ones((2, 40), np.float32)])


def test_small_corpus_reads_back_through_loader_and_extractor(small_corpus, tmp_path):
    utts = load_manifest(small_corpus.out_dir / "manifest.jsonl", check_audio=True)
    assert len(utts) == len(small_corpus.utterances)
    fb = FbankExtractor()
    from funrl.data.audio import load_audio

    feats = [fb(load_audio(u.audio)) for u in utts[:6]]
    for u, f in zip(utts, feats):  # duration (4 decimals) -> frames by the formula above
        assert f.shape[0] == 1 + (round(u.duration * 16000) - 400) // 160
        assert np.isfinite(f).all()
    x, lengths = collate(feats)
    assert x.shape == (6, max(f.shape[0] for f in feats), 80)
    cmvn = compute_cmvn(utts[:6], fb)
    assert cmvn.frames == int(lengths.sum())
    normed = np.concatenate([cmvn.apply(f) for f in feats])
    np.testing.assert_allclose(normed.mean(axis=0), 0, atol=1e-3)
    np.testing.assert_allclose(normed.std(axis=0), 1, atol=1e-3)
    flat = np.concatenate(feats).astype(np.float64)  # the slow reference: numpy over all frames at once
    np.testing.assert_allclose(cmvn.mean, flat.mean(0), rtol=0, atol=1e-4)
    np.testing.assert_allclose(cmvn.std, np.maximum(flat.std(0), 1e-3), rtol=1e-5, atol=1e-5)
