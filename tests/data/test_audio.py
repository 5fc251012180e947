"""Audio loading: resampling and downmixing checked against known tones."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from funrl.data.audio import AudioError, load_audio


def _tone(freq: float, amp: float, sr: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _spectrum(x: np.ndarray) -> np.ndarray:
    """Amplitude per 1 Hz bin for a 1 s clip: |rfft| * 2 / n (a sine of amplitude a -> a)."""
    return np.abs(np.fft.rfft(x)) * 2 / len(x)


def test_44k_stereo_with_different_channels_is_resampled_and_averaged(tmp_path):
    # left 440 Hz at 0.5, right 1000 Hz at 0.3: the mono mix is their mean, so 0.25 at 440 Hz
    # and 0.15 at 1000 Hz; 1 s at 16 kHz = 16000 samples with 1 Hz bins (whole cycles, no leakage)
    stereo = np.stack([_tone(440, 0.5, 44100), _tone(1000, 0.3, 44100)], axis=1)
    sf.write(str(tmp_path / "s.wav"), stereo, 44100, subtype="PCM_16")
    x = load_audio(tmp_path / "s.wav")
    assert x.dtype == np.float32 and x.shape == (16000,)
    spec = _spectrum(x)
    assert spec[440] == pytest.approx(0.25, abs=0.005)
    assert spec[1000] == pytest.approx(0.15, abs=0.005)
    others = np.delete(spec, [440, 1000])
    assert others.max() < 0.01  # nothing else of note (resampler edges, int16 rounding)


def test_identical_stereo_channels_keep_the_tone_amplitude(tmp_path):
    tone = _tone(440, 0.5, 48000)
    sf.write(str(tmp_path / "s.flac"), np.stack([tone, tone], axis=1), 48000)
    spec = _spectrum(load_audio(tmp_path / "s.flac"))
    assert int(np.argmax(spec)) == 440
    assert spec[440] == pytest.approx(0.5, abs=0.005)  # mean of equal channels, not their sum


def test_8k_mono_is_upsampled_and_other_rates_on_request(tmp_path):
    sf.write(str(tmp_path / "m.wav"), _tone(300, 0.4, 8000), 8000)
    x = load_audio(tmp_path / "m.wav")
    assert x.shape == (16000,) and int(np.argmax(_spectrum(x))) == 300
    y = load_audio(tmp_path / "m.wav", sample_rate=8000)  # no resampling at the native rate
    np.testing.assert_allclose(y, sf.read(str(tmp_path / "m.wav"), dtype="float32")[0])


def test_errors_name_the_file(tmp_path):
    with pytest.raises(AudioError, match=r"nope\.wav: audio file not found"):
        load_audio(tmp_path / "nope.wav")
    (tmp_path / "junk.wav").write_bytes(b"this is not audio at all")
    with pytest.raises(AudioError, match=r"junk\.wav: not a readable audio file"):
        load_audio(tmp_path / "junk.wav")
    sf.write(str(tmp_path / "empty.wav"), np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match=r"empty\.wav: the audio file has no samples"):
        load_audio(tmp_path / "empty.wav")
