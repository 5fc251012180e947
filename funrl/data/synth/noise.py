"""Noise for synthetic corpora: white, pink and babble, mixed into speech at a chosen SNR.

- white: Gaussian samples; pink: 1/f Gaussian noise from the ``colorednoise`` package; babble:
  the sum of several other utterances (from a separate babble pool, so a corpus sentence never
  sounds inside another clip), each started at a random offset and looped to length.
- :func:`mix_at_snr` scales the noise so that 10·log10(P_speech / P_noise) equals the SNR, with
  powers measured as mean squares over the whole clip (the eSpeak clips are short and mostly
  voiced, so no voice-activity weighting).
- Pure-noise clips (the report's hallucination data, §4.2.5: noise added to zero-padded audio)
  are noise alone at a level drawn in dBFS.
"""

from __future__ import annotations

from typing import Sequence

import colorednoise
import numpy as np

NOISE_TYPES = ("white", "pink", "babble")


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    return (x / rms).astype(np.float32) if rms > 0 else x.astype(np.float32)


def make_noise(kind: str, n: int, rng: np.random.Generator,
               babble_pool: Sequence[np.ndarray] = (), talkers: int = 4) -> np.ndarray:
    """``n`` samples of ``kind`` noise with unit RMS (float32)."""
    if kind == "white":
        x = rng.standard_normal(n)
    elif kind == "pink":
        size = 1 << max(0, n - 1).bit_length()  # a power-of-two FFT is fast; crop to n
        x = colorednoise.powerlaw_psd_gaussian(1.0, size, random_state=rng)[:n]
    elif kind == "babble":
        if len(babble_pool) == 0:
            raise ValueError("babble noise needs a non-empty pool of utterances")
        x = np.zeros(n, np.float64)
        for i in rng.choice(len(babble_pool), size=min(talkers, len(babble_pool)), replace=False):
            src = babble_pool[int(i)]
            start = int(rng.integers(len(src)))
            x += np.resize(np.roll(src, -start), n)  # np.resize repeats the clip to length n
    else:
        raise ValueError(f"unknown noise type {kind!r}: expected one of {', '.join(NOISE_TYPES)}")
    return _unit_rms(np.asarray(x))


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech + g·noise`` with g chosen so that the speech-to-noise power ratio is ``snr_db``.

    >>> import numpy as np
    >>> s, n = np.ones(4, np.float32), np.array([1, -1, 1, -1], np.float32)
    >>> mix_at_snr(s, n, 20.0).tolist()  # P_s = 1, P_n = 1 -> g = 10**(-20/20) = 0.1
    [1.100000023841858, 0.8999999761581421, 1.100000023841858, 0.8999999761581421]
    """
    if speech.shape != noise.shape:
        raise ValueError(f"speech {speech.shape} and noise {noise.shape} must have one shape")
    p_s = float(np.mean(np.square(speech, dtype=np.float64)))
    p_n = float(np.mean(np.square(noise, dtype=np.float64)))
    if p_n == 0:
        return speech.astype(np.float32)
    gain = np.sqrt(p_s / (p_n * 10.0 ** (snr_db / 10.0)))
    return (speech + gain * noise).astype(np.float32)


def at_dbfs(x: np.ndarray, dbfs: float) -> np.ndarray:
    """``x`` scaled to an RMS of ``dbfs`` dB relative to full scale (1.0)."""
    return (_unit_rms(x) * 10.0 ** (dbfs / 20.0)).astype(np.float32)
