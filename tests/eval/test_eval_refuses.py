"""`funrl eval` refuses bad input before it loads the model: one line naming file:line, exit 2.

Real files throughout (a saved tiny model, WAVs written with soundfile, manifests with the bad
byte or row on a known line); the CLI runs through ``funrl.cli.main`` and, once, as a process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from funrl.cli import main


def _wav(path: Path, seconds: float, sr: int = 16000) -> Path:
    sf.write(str(path), np.zeros(int(sr * seconds), np.int16), sr, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    from funrl.models.io import save_pretrained
    from funrl.models.testing import tiny_model

    model, tok = tiny_model()
    out = tmp_path_factory.mktemp("m") / "model"
    save_pretrained(model, tok, out)
    return out


def _manifest(folder: Path, lines: list) -> Path:
    _wav(folder / "ok.wav", 0.5)
    m = folder / "m.jsonl"
    with open(m, "wb") as f:
        for line in lines:
            f.write(line if isinstance(line, bytes) else json.dumps(line).encode() + b"\n")
    return m


def _eval(capsys, model_dir, manifest, *extra) -> tuple[int, str]:
    rc = main(["eval", "--model", str(model_dir), "--manifest", str(manifest), "--bootstrap", "10",
               "--threads", "1", *extra])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


OK = {"audio": "ok.wav", "text": "hello"}


@pytest.mark.parametrize("bad, line, needle", [
    (b'{"audio": "ok.wav", "text": "caf\xe9"}\n', 2, "byte 0xe9 at column 33 is not UTF-8; save the manifest as UTF-8"),
    (b'{"audio": "ok.wav", "text": \n', 2, "malformed JSON"),
    ({"audio": "gone.wav", "text": "hi"}, 2, "field 'audio': "),
    ({"audio": "ok.wav"}, 2, "field 'text': expected a string, missing; every line needs 'text'"),
])
def test_bad_row_is_one_line_with_file_line_field_and_exit_2(tmp_path, capsys, model_dir, bad, line, needle):
    m = _manifest(tmp_path, [OK, bad, OK])
    rc, err = _eval(capsys, model_dir, m)
    assert rc == 2
    assert err.startswith(f"funrl eval: {m}:{line}: "), err
    assert needle in err and err.count("\n") == 1


def test_corrupt_and_zero_second_clips_are_named_by_line(tmp_path, capsys, model_dir):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\0\0\0\0WAVEnot really audio")
    _wav(tmp_path / "empty.wav", 0.0)
    m = _manifest(tmp_path, [OK, OK, {"audio": "corrupt.wav", "text": "a"}, {"audio": "empty.wav", "text": "b"}])
    rc, err = _eval(capsys, model_dir, m)
    assert rc == 2
    assert err.startswith(f"funrl eval: {m}:3: field 'audio': {tmp_path / 'corrupt.wav'}: not a readable audio file")
    assert err.rstrip().endswith(f"(and 1 more problem(s): `funrl data check {m}` lists them)")
    assert main(["data", "check", str(m)]) == 2
    out = capsys.readouterr().out
    assert f"{m}:4: field 'audio': {(tmp_path / 'empty.wav').resolve()} has no samples" in out


def test_truncated_flac_is_found_by_decoding_its_tail(tmp_path, capsys, model_dir):
    sf.write(str(tmp_path / "long.flac"), np.random.default_rng(0).uniform(-0.5, 0.5, 48000).astype(np.float32), 16000)
    data = (tmp_path / "long.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])  # the header still says 3 s
    m = _manifest(tmp_path, [OK, {"audio": "cut.flac", "text": "a"}])
    rc, err = _eval(capsys, model_dir, m)
    assert rc == 2
    assert err.startswith(f"funrl eval: {m}:2: field 'audio': ") and "cannot decode audio" in err, err


def test_empty_manifest_is_refused_not_a_nan_report(tmp_path, capsys, model_dir):
    m = tmp_path / "empty.jsonl"
    m.write_text("\n\n")
    rc, err = _eval(capsys, model_dir, m)
    assert rc == 2
    assert err == (f"funrl eval: {m}: the manifest has no utterances; add one JSON object per line "
                   "(make a corpus with `funrl data synth --out DIR --n 100`)\n")
    assert capsys.readouterr().out == ""


def test_unreadable_manifest_and_model_folder(tmp_path, capsys, model_dir):
    (tmp_path / "adir").mkdir()  # root reads any file, so "unreadable" here is a folder
    rc, err = _eval(capsys, model_dir, tmp_path / "adir")
    assert rc == 2 and err == f"funrl eval: {tmp_path / 'adir'}: is a folder, not a manifest; pass the JSONL file in it\n"
    m = _manifest(tmp_path, [OK])
    rc, err = _eval(capsys, tmp_path / "nomodel", m)
    assert rc == 2 and err.startswith(f"funrl eval: {tmp_path / 'nomodel'}: not a model folder (no config.json or funrl_model.json)")


def test_an_output_in_a_missing_folder_is_refused_before_decoding(tmp_path, capsys, model_dir):
    m = _manifest(tmp_path, [OK])
    out = tmp_path / "no" / "r.json"
    rc, err = _eval(capsys, model_dir, m, "--output", str(out))
    assert rc == 2 and err == f"funrl eval: --output {out}: folder {out.parent} does not exist; create it\n"


def test_clip_longer_than_the_context_is_refused_with_a_max_duration_hint(tmp_path, capsys, model_dir):
    # tiny model: 1024 positions, 12.5 audio positions/s, 128 + 64 kept for prompt and transcript
    limit = (1024 - 128 - 64) / 12.5
    _wav(tmp_path / "long.wav", 70.0, sr=8000)
    m = _manifest(tmp_path, [OK, {"id": "talk", "audio": "long.wav", "text": "a long talk"}])
    rc, err = _eval(capsys, model_dir, m)
    assert rc == 2
    assert err == (f"funrl eval: {m}:2: field 'audio': clip 'talk' lasts 70.0 s, longer than the {limit:.1f} s of audio that fit in "
                   f"the context of {model_dir}; cut them, or pass --max-duration 67 to leave them out "
                   "(in training: data.max_duration=67)\n")
    assert main(["data", "check", str(m), "--model", str(model_dir)]) == 2
    out = capsys.readouterr().out
    assert f"problems: 1 clip(s) longer than the {limit:.1f} s that fit in the context of {model_dir}" in out
    assert "data.max_duration=67" in out and f"{m}:2: talk: 70.0 s" in out
    assert main(["data", "check", str(m)]) == 0  # without a model there is no limit to check
    capsys.readouterr()


def test_max_duration_leaves_the_long_clip_out_and_says_so(tmp_path, capsys, model_dir):
    _wav(tmp_path / "long.wav", 70.0, sr=8000)
    m = _manifest(tmp_path, [OK, {"id": "talk", "audio": "long.wav", "text": "a long talk"}])
    rc = main(["eval", "--model", str(model_dir), "--manifest", str(m), "--bootstrap", "10", "--threads", "1",
               "--max-new-tokens", "2", "--max-duration", "60", "--output", str(tmp_path / "r.json")])
    assert rc == 0
    assert "funrl eval: --max-duration 60.0: 1 of 2 utterances left out" in capsys.readouterr().err
    assert json.loads((tmp_path / "r.json").read_text())["utterances"] == 1


def test_the_real_command_prints_one_line_and_exits_2(tmp_path, model_dir):
    m = _manifest(tmp_path, [OK, OK, b'{"audio": "ok.wav", "text": "\xff"}\n'])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run([sys.executable, "-m", "funrl", "eval", "--model", str(model_dir), "--manifest", str(m)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2
    assert p.stderr == f"funrl eval: {m}:3: byte 0xff at column 30 is not UTF-8; save the manifest as UTF-8\n"
    assert p.stdout == ""
