"""Kaldi log-mel filterbank for transformers feature extractors that call torchaudio.

``FunAsrNanoFeatureExtractor`` computes ``torchaudio.compliance.kaldi.fbank(wave[None],
num_mel_bins, frame_length, frame_shift, sample_frequency, window_type)`` on the float waveform
as given (in [-1, 1], *not* scaled to the int16 range as :mod:`funrl.data.features` does), with
torchaudio's other defaults: dither 0, pre-emphasis 0.97, DC offset removed, FFT size rounded up
to a power of two, ``snip_edges``, mel bins from 20 Hz to Nyquist, power spectrum, log floored at
float32 epsilon, no energy column. torchaudio has no wheel for our torch, so
:func:`kaldi_fbank` computes the same with kaldi-native-fbank (already a funrl dependency), set to
those options. tests/models/families/test_family_fbank.py checks it against a transcription of
torchaudio's algorithm.
"""

from __future__ import annotations

import kaldi_native_fbank as knf
import numpy as np
import torch


def kaldi_fbank(wave, num_mel_bins: int = 80, frame_length: float = 25.0, frame_shift: float = 10.0,
                sample_rate: float = 16000.0, window_type: str = "hamming") -> torch.Tensor:
    """``wave`` (float [n]) -> float32 ``[T, num_mel_bins]``, ``T = 1 + (n - win) // shift``."""
    opts = knf.FbankOptions()
    opts.frame_opts.samp_freq = float(sample_rate)
    opts.frame_opts.frame_length_ms = float(frame_length)
    opts.frame_opts.frame_shift_ms = float(frame_shift)
    opts.frame_opts.window_type = window_type
    opts.frame_opts.dither = 0.0  # torchaudio's default; knf's is 3e-5
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = int(num_mel_bins)
    opts.mel_opts.low_freq = 20.0
    opts.mel_opts.high_freq = 0.0
    opts.use_energy = False
    wave = np.asarray(torch.as_tensor(wave, dtype=torch.float32).cpu(), dtype=np.float32).reshape(-1)
    window = int(sample_rate * frame_length / 1000)
    if wave.shape[0] < window:
        raise ValueError(f"kaldi_fbank: a clip of {wave.shape[0]} samples is shorter than one {window}-sample frame")
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(float(sample_rate), wave)
    fbank.input_finished()
    frames = [fbank.get_frame(i) for i in range(fbank.num_frames_ready)]
    return torch.from_numpy(np.stack(frames).astype(np.float32))  # [T, D]
