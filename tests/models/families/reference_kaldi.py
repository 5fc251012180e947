"""torchaudio.compliance.kaldi.fbank, transcribed (pytorch/audio src/torchaudio/compliance/kaldi.py)
for the arguments FunAsrNanoFeatureExtractor passes and torchaudio's defaults for the rest (dither 0,
pre-emphasis 0.97, DC removal, power-of-two FFT, snip_edges, mel 20 Hz..Nyquist, log power, no
energy). torchaudio has no wheel for our torch; this is the reference funrl's fbank is tested against.
Given a float64 wave it computes in float64 (torchaudio computes in the wave's dtype too, except its
mel banks, which are float32 there and follow the wave's dtype here).
"""

from __future__ import annotations

import math

import torch

EPS = torch.finfo(torch.float32).eps  # the log floor, float32 epsilon in any dtype


def _mel(f):
    return 1127.0 * (1.0 + f / 700.0).log()


def _mel_banks(num_bins: int, padded: int, sample_freq: float, dtype, low_freq: float = 20.0) -> torch.Tensor:
    num_fft_bins = padded / 2
    high_freq = 0.5 * sample_freq
    fft_bin_width = sample_freq / padded
    mel_low = 1127.0 * math.log(1.0 + low_freq / 700.0)
    mel_high = 1127.0 * math.log(1.0 + high_freq / 700.0)
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = torch.arange(num_bins, dtype=dtype).unsqueeze(1)
    left, center, right = mel_low + b * delta, mel_low + (b + 1.0) * delta, mel_low + (b + 2.0) * delta
    mel = _mel(fft_bin_width * torch.arange(num_fft_bins, dtype=dtype)).unsqueeze(0)
    up, down = (mel - left) / (center - left), (right - mel) / (right - center)
    return torch.min(up, down).clamp(min=0)  # [num_bins, padded // 2]


def torchaudio_fbank(wave: torch.Tensor, num_mel_bins: int = 80, frame_length: float = 25.0,
                     frame_shift: float = 10.0, sample_frequency: float = 16000.0) -> torch.Tensor:
    """Hamming window (FunAsrNano's ``window_type``); ``wave`` float [n] -> [T, num_mel_bins], same dtype."""
    shift = int(sample_frequency * frame_shift * 0.001)
    size = int(sample_frequency * frame_length * 0.001)
    padded = 1 if size == 0 else 2 ** (size - 1).bit_length()
    m = 1 + (wave.numel() - size) // shift
    x = wave.as_strided((m, size), (shift * wave.stride(0), wave.stride(0)))  # [m, size]
    x = x - x.mean(dim=1, keepdim=True)
    prev = torch.nn.functional.pad(x.unsqueeze(0), (1, 0), mode="replicate").squeeze(0)  # [m, size + 1]
    x = x - 0.97 * prev[:, :-1]
    x = x * torch.hamming_window(size, periodic=False, alpha=0.54, beta=0.46, dtype=wave.dtype).unsqueeze(0)
    x = torch.nn.functional.pad(x.unsqueeze(0), (0, padded - size), mode="constant", value=0).squeeze(0)
    spectrum = torch.fft.rfft(x).abs().pow(2.0)  # [m, padded // 2 + 1]
    banks = torch.nn.functional.pad(_mel_banks(num_mel_bins, padded, sample_frequency, wave.dtype), (0, 1))
    return torch.mm(spectrum, banks.T).clamp(min=EPS).log()  # [m, num_mel_bins]
