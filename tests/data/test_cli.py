"""``funrl data synth`` and ``funrl data check`` through funrl.cli.main."""

from __future__ import annotations

import json

from funrl.cli import main


def test_synth_then_check(tmp_path, capsys):
    out = tmp_path / "c"
    rc = main(["data", "synth", "--out", str(out), "--n", "6", "--seed", "2",
               "--languages", "en,mixed", "--noise-frac", "0.34", "--snr", "10,20"])
    assert rc == 0
    assert "wrote 6 utterances" in capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert sum(r["noise"] for r in rows) == 2
    assert {r["language"] for r in rows if not r["noise"]} <= {"en", "mixed"}
    assert all(10 <= r["snr_db"] <= 20 for r in rows if r["snr_db"] is not None)
    assert main(["data", "check", str(out / "manifest.jsonl")]) == 0
    text = capsys.readouterr().out
    assert "ok, 6 utterances" in text and "16000 Hz: 6" in text and "problems: none" in text
    assert "with word timings: 6" in text  # synth writes them (noise rows: an empty list)
    assert main(["data", "synth", "--out", str(out), "--n", "6"]) == 2  # exists, no --overwrite
    assert "already holds a corpus" in capsys.readouterr().out


def test_check_lists_problems_and_fails(tmp_path, capsys):
    m = tmp_path / "bad.jsonl"
    m.write_text('{"audio": "missing.wav", "text": "hi"}\n{"audio": "x.wav", "text": ""}\n')
    assert main(["data", "check", str(m)]) == 2
    out = capsys.readouterr().out
    assert "2 problem(s)" in out
    assert f"{m}:1: field 'audio'" in out and "audio file not found" in out
    assert f"{m}:2: field 'text': empty transcript" in out
