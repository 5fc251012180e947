"""Read audio as 16 kHz mono float32: soundfile to read, channel mean to downmix, soxr to resample.

Any format libsndfile reads (WAV, FLAC, OGG, MP3 with libsndfile >= 1.1) at any sample rate and
channel count. Errors are :class:`AudioError` and name the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from funrl.errors import UserError

SAMPLE_RATE = 16000


class AudioError(UserError, ValueError):
    """An audio file is missing, unreadable or empty; the message names the file."""


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """soundfile's header info (sample rate, channels, frames), or :class:`AudioError`."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: audio file not found; fix the path (relative paths are "
                         "resolved against the manifest's folder)")
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(f"{path}: not a readable audio file ({e}); re-export it as WAV or "
                         "FLAC") from e


PCM_FORMATS = ("WAV", "WAVEX", "AIFF", "AU", "RAW", "W64", "RF64", "CAF")  # frames from the size
TAIL_FRAMES = 4096  # decoded at the end of a compressed file to prove its last frame decodes


def probe_audio(path: str | Path) -> sf._SoundFileInfo:
    """:func:`audio_info`, plus a decode of the last ``TAIL_FRAMES`` of a compressed file.

    An uncompressed file's frame count comes from its size, so its header read is the whole
    check. A compressed one (FLAC, OGG, MP3) declares its length, and a truncated or corrupt file
    fails only when decoded: decoding its tail catches that for the cost of one block.
    """
    info = audio_info(path)
    if info.format in PCM_FORMATS or info.frames == 0:
        return info
    try:
        with sf.SoundFile(str(path)) as f:
            f.seek(max(0, info.frames - TAIL_FRAMES))
            f.read(TAIL_FRAMES, dtype="float32")
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(f"{path}: cannot decode audio ({e}); the file may be truncated or "
                         "corrupt: re-export it") from e
    return info


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, *, data: bytes | None = None) -> np.ndarray:
    """Samples in [-1, 1] as float32 ``[n]``, mono (channel mean) at ``sample_rate`` Hz.

    ``data``: the file's bytes, read elsewhere (the driver ships them to an encoder on another
    node: :meth:`funrl.train.roles.Roles.encode`); ``path`` then only names it in errors."""
    path = Path(path)
    if data is None:
        audio_info(path)  # the clear not-found / not-audio errors
    try:
        import io

        src = io.BytesIO(data) if data is not None else str(path)
        data, sr = sf.read(src, dtype="float32", always_2d=True)  # [n, channels]
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(f"{path}: cannot decode audio ({e}); the file may be truncated or "
                         "corrupt: re-export it") from e
    if data.shape[0] == 0:
        raise AudioError(f"{path}: the audio file has no samples")
    mono = data.mean(axis=1, dtype=np.float32)  # [n]
    if sr != sample_rate:
        mono = soxr.resample(mono, sr, sample_rate, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)
