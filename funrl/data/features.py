"""80-dim log-mel filterbank features (kaldi-native-fbank), batching, and global CMVN.

Defaults follow FunASR's ``WavFrontend`` (25 ms Hamming window, 10 ms shift, 80 bins, samples
scaled to the int16 range before the filterbank), except dither, which is 0 so that features are
a pure function of the audio. Low-frame-rate stacking (FunASR's LFR 7/6) belongs to the model's
front layer, not here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

import kaldi_native_fbank as knf
import numpy as np

from funrl.data.audio import SAMPLE_RATE, load_audio

if TYPE_CHECKING:
    import torch

    from funrl.data.manifest import Utterance


class FbankExtractor:
    """``wave`` (float32 [n] in [-1, 1]) -> log-mel features float32 ``[T, num_mel_bins]``.

    ``T = 1 + (n - 400) // 160`` for 16 kHz input (Kaldi's ``snip_edges``), 0 if n < 400.
    """

    def __init__(self, sample_rate: int = SAMPLE_RATE, num_mel_bins: int = 80,
                 frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0,
                 window_type: str = "hamming", dither: float = 0.0):
        opts = knf.FbankOptions()
        opts.frame_opts.samp_freq = float(sample_rate)
        opts.frame_opts.frame_length_ms = frame_length_ms
        opts.frame_opts.frame_shift_ms = frame_shift_ms
        opts.frame_opts.window_type = window_type
        opts.frame_opts.dither = dither
        opts.mel_opts.num_bins = num_mel_bins
        self.opts = opts
        self.sample_rate = sample_rate
        self.num_mel_bins = num_mel_bins

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1:
            raise ValueError(f"expected mono audio of shape [n], got {wave.shape}")
        fbank = knf.OnlineFbank(self.opts)
        fbank.accept_waveform(float(self.sample_rate), wave * 32768.0)  # int16 scale, as FunASR
        fbank.input_finished()
        t = fbank.num_frames_ready
        if t == 0:
            return np.zeros((0, self.num_mel_bins), np.float32)
        return np.stack([fbank.get_frame(i) for i in range(t)]).astype(np.float32)  # [T, D]


def collate(feats: Sequence[np.ndarray]) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Zero-pad ``[T_i, D]`` arrays into ``(float [B, T_max, D], long lengths [B])``."""
    import torch

    if not feats:
        raise ValueError("collate needs at least one feature matrix")
    dims = {f.shape[1] for f in feats}
    if len(dims) != 1:
        raise ValueError(f"feature matrices differ in dimension: {sorted(dims)}")
    lengths = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)  # [B]
    batch = torch.zeros(len(feats), int(lengths.max()), dims.pop())  # [B, T_max, D]
    for i, f in enumerate(feats):
        batch[i, : f.shape[0]] = torch.from_numpy(np.asarray(f, dtype=np.float32))
    return batch, lengths


@dataclass
class Cmvn:
    """Global per-dimension mean and standard deviation of features (the one CMVN: SFT writes it
    into the encoder's ``feat_mean`` / ``feat_std`` buffers, which travel with the weights)."""

    mean: np.ndarray  # [D]
    std: np.ndarray  # [D]
    frames: int

    def apply(self, feats: np.ndarray) -> np.ndarray:
        return ((feats - self.mean) / self.std).astype(np.float32)


def cmvn_stats(feats: Iterable[np.ndarray], floor: float = 1e-3) -> Cmvn:
    """Mean and std over all frames of ``[T_i, D]`` feature matrices (float64 sums; std floored at
    ``floor``, so a bin that never varies is not blown up)."""
    total = total_sq = None
    frames = 0
    for f in feats:
        f = np.asarray(f, np.float64)
        if total is None:
            total, total_sq = np.zeros(f.shape[1]), np.zeros(f.shape[1])
        total += f.sum(axis=0)
        total_sq += np.square(f).sum(axis=0)
        frames += f.shape[0]
    if not frames:
        raise ValueError("CMVN: the utterances gave no feature frames (all shorter than one 25 ms window?)")
    mean = total / frames
    std = np.sqrt(np.maximum(total_sq / frames - mean**2, floor**2))
    return Cmvn(mean.astype(np.float32), std.astype(np.float32), frames)


def compute_cmvn(utterances: Iterable["Utterance"], extractor: FbankExtractor | None = None) -> Cmvn:
    """:func:`cmvn_stats` of every utterance's features."""
    extractor = extractor or FbankExtractor()
    return cmvn_stats(extractor(load_audio(utt.audio, extractor.sample_rate)) for utt in utterances)
