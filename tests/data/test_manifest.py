"""Manifest parsing and validation: every error names file:line, the field and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from funrl.data.manifest import ManifestError, Utterance, load_manifest, write_manifest


def _wav(path: Path, seconds: float = 0.5, sr: int = 16000) -> Path:
    sf.write(str(path), np.zeros(int(sr * seconds), np.float32), sr)
    return path


def _manifest(tmp_path: Path, rows: list, name: str = "m.jsonl") -> Path:
    p = tmp_path / name
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in rows]
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def _one_problem(path: Path, check_audio: bool = False) -> str:
    with pytest.raises(ManifestError) as e:
        load_manifest(path, check_audio=check_audio)
    assert len(e.value.problems) == 1, e.value.problems
    return e.value.problems[0]


def test_good_manifest_resolves_relative_audio_and_defaults(tmp_path):
    (tmp_path / "wav").mkdir()
    _wav(tmp_path / "wav" / "a.wav")
    m = _manifest(tmp_path, [
        {"audio": "wav/a.wav", "text": "call Priya now", "language": "en",
         "keywords": ["Priya"], "hotwords": ["Priya", "Okafor"], "duration": 0.5, "speaker": "m3"},
        "",  # blank lines are allowed
        {"key": "x2", "source": str(tmp_path / "wav" / "a.wav"), "target": "", "noise": True},
    ])
    a, b = load_manifest(m, check_audio=True)
    assert a.id == "m-1" and a.audio == str((tmp_path / "wav" / "a.wav").resolve())
    assert a.keywords == ["Priya"] and a.extra == {"speaker": "m3"} and not a.noise
    assert b.id == "x2" and b.noise and b.text == "" and b.language is None
    row = a.to_dict()
    assert row["speaker"] == "m3" and row["text"] == "call Priya now"


def test_write_then_load_round_trips(tmp_path):
    _wav(tmp_path / "a.wav")
    u = Utterance(id="u1", audio=str((tmp_path / "a.wav").resolve()), text="打开微信",
                  language="zh", keywords=["微信"], hotwords=["微信", "淘宝"], duration=0.5)
    write_manifest(tmp_path / "out" / "m.jsonl", [u])
    assert json.loads((tmp_path / "out" / "m.jsonl").read_text())["audio"] == str(u.audio)
    write_manifest(tmp_path / "m.jsonl", [u])
    assert json.loads((tmp_path / "m.jsonl").read_text())["audio"] == "a.wav"  # relative
    assert load_manifest(tmp_path / "m.jsonl") == [u]


@pytest.mark.parametrize("row, field, needle", [
    ('{"audio": "a.wav", "text": ', None, "malformed JSON"),
    ('["a.wav", "hi"]', None, "expected a JSON object"),
    ({"audio": "a.wav"}, "text", "expected a string, missing"),
    ({"text": "hi"}, "audio", "expected a non-empty path string, missing"),
    ({"audio": "a.wav", "text": 3}, "text", "expected a string, got 3"),
    ({"audio": "a.wav", "text": "hi", "keywords": "hi"}, "keywords", "list of non-empty strings"),
    ({"audio": "a.wav", "text": "hi", "hotwords": [1]}, "hotwords", "list of non-empty strings"),
    ({"audio": "a.wav", "text": "hi", "language": "fr"}, "language", "one of en, zh, mixed"),
    ({"audio": "a.wav", "text": "hi", "duration": "2s"}, "duration", "number of seconds"),
    ({"audio": "a.wav", "text": "hi", "noise": "no"}, "noise", "true or false"),
    ({"audio": "a.wav", "text": "hi", "id": 5}, "id", "non-empty string"),
    ({"audio": "a.wav", "text": "  "}, "text", "empty transcript on a speech line"),
    ({"audio": "a.wav", "text": "hi", "noise": True}, "text", "must have empty text"),
    ({"audio": "a.wav", "text": "call Priya", "keywords": ["Okafor"]}, "keywords",
     "does not occur in the text"),
    ({"audio": "a.wav", "source": "b.wav", "text": "hi"}, None, "both 'audio' and its FunASR alias"),
])
def test_each_line_error_names_file_line_and_field(tmp_path, row, field, needle):
    m = _manifest(tmp_path, [{"audio": "a.wav", "text": "fine"}, row])
    msg = _one_problem(m)
    assert msg.startswith(f"{m}:2: "), msg
    assert needle in msg, msg
    if field is not None:
        assert f"field '{field}'" in msg


def test_duplicate_ids_name_both_lines(tmp_path):
    m = _manifest(tmp_path, [{"id": "u", "audio": "a.wav", "text": "x"},
                             {"id": "v", "audio": "a.wav", "text": "y"},
                             {"id": "u", "audio": "a.wav", "text": "z"}])
    msg = _one_problem(m)
    assert msg.startswith(f"{m}:3: field 'id': duplicate id 'u' (first on line 1)"), msg


def test_all_problems_are_collected_in_one_error(tmp_path):
    m = _manifest(tmp_path, ["{bad", {"audio": "a.wav"}, {"audio": "a.wav", "text": "ok"},
                             {"audio": "a.wav", "text": "x", "language": "de"}])
    with pytest.raises(ManifestError) as e:
        load_manifest(m)
    assert [p.split(": ")[0] for p in e.value.problems] == [f"{m}:1", f"{m}:2", f"{m}:4"]
    assert "3 manifest problem(s)" in str(e.value)


def test_audio_problems_only_when_checking_audio(tmp_path):
    _wav(tmp_path / "ok.wav", seconds=0.5)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\0\0\0\0WAVEnot really audio")
    _wav(tmp_path / "empty.wav", seconds=0.0)
    m = _manifest(tmp_path, [{"audio": "missing.wav", "text": "a"},
                             {"audio": "corrupt.wav", "text": "b"},
                             {"audio": "ok.wav", "text": "c", "duration": 2.0},
                             {"audio": "ok.wav", "text": "d", "duration": 0.52},
                             {"audio": "empty.wav", "text": "e"}])
    assert len(load_manifest(m)) == 5  # paths are not opened without check_audio
    with pytest.raises(ManifestError) as e:
        load_manifest(m, check_audio=True)
    p = e.value.problems
    assert len(p) == 4, p  # line 4 is within the 0.05 s tolerance
    assert p[0].startswith(f"{m}:1: field 'audio'") and "audio file not found" in p[0]
    assert str(tmp_path / "missing.wav") in p[0]
    assert p[1].startswith(f"{m}:2: field 'audio'") and "not a readable audio file" in p[1]
    assert p[2].startswith(f"{m}:3: field 'duration'") and "says 2.000 s" in p[2]
    assert "lasts 0.500 s" in p[2]
    assert p[3].startswith(f"{m}:5: field 'audio'") and "has no samples" in p[3]


def test_missing_manifest(tmp_path):
    msg = _one_problem(tmp_path / "nope.jsonl")
    assert "manifest not found" in msg and "nope.jsonl" in msg
