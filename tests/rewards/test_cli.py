"""`funrl rewards score` end to end through funrl.cli.main on temporary JSONL files."""

from __future__ import annotations

import json
import re

import pytest

from funrl.cli import main


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows))
    return path


ROWS = [
    {"id": "en1", "hypothesis": "we use fun asr", "text": "We use Fun-ASR.", "language": "en",
     "keywords": ["Fun-ASR"], "hotwords": ["Fun-ASR", "FunAudio"]},
    {"id": "zh1", "hypothesis": "我爱南京", "text": "我爱北京", "language": "zh", "keywords": [], "hotwords": []},
    {"id": "noise1", "hypothesis": "谢谢观看", "text": "", "language": "zh", "noise": True},
]


def test_score_writes_components_and_total(tmp_path, capsys):
    inp = write_jsonl(tmp_path / "h.jsonl", ROWS)
    out = tmp_path / "o.jsonl"
    assert main(["rewards", "score", "--input", str(inp), "--output", str(out)]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in got] == ["en1", "zh1", "noise1"]
    # en1: exact after normalisation (1), keyword hit (1), no hallucination, en -> total 2
    assert got[0] == {"id": "en1", "hypothesis": "we use fun asr", "accuracy": 1.0, "keywords": 1.0,
                      "hallucination": 0.0, "language": 0.0, "total": 2.0}
    # zh1: CER 1/4 -> 0.75; no keywords -> null and left out of the total
    assert got[1]["accuracy"] == 0.75 and got[1]["keywords"] is None and got[1]["total"] == 0.75
    # noise1: output on noise -> accuracy 0, 4 hallucinated characters -> -0.4
    assert got[2]["accuracy"] == 0.0 and got[2]["hallucination"] == pytest.approx(-0.4)
    assert got[2]["total"] == pytest.approx(-0.4)
    table = capsys.readouterr().out
    assert "rewards over 3 rows" in table and "hallucination" in table and "1/3" in table  # keywords applicable 1/3


def test_score_with_config_and_override(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rewards:\n  components:\n    - name: accuracy\n      weight: 2.0\n")
    inp = write_jsonl(tmp_path / "h.jsonl", ROWS[:2])
    out = tmp_path / "o.jsonl"
    assert main(["rewards", "score", "--config", str(cfg), "--input", str(inp), "--output", str(out),
                 "rewards.components.0.weight=3.0"]) == 0
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [set(r) for r in got] == [{"id", "hypothesis", "accuracy", "total"}] * 2
    assert [r["total"] for r in got] == [3.0, 2.25]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"hypothesis": "a", "text": "a"', r"h\.jsonl:2: malformed JSON"),
        ('["a"]', r"h\.jsonl:2: expected a JSON object, got list"),
        ('{"text": "a"}', r"h\.jsonl:2: key 'hypothesis' is missing"),
        ('{"hypothesis": "a", "text": 3}', r"h\.jsonl:2: key 'text' is int, not a string"),
        ('{"hypothesis": "a", "text": "a", "language": "fr"}',
         r"h\.jsonl:2: reward 'language' raised on sample 1 .*sample language 'fr' is not one of en, zh, mixed"),
    ],
)
def test_bad_input_lines_name_file_and_line(tmp_path, capsys, line, message):
    inp = write_jsonl(tmp_path / "h.jsonl", [ROWS[0], line])
    assert main(["rewards", "score", "--input", str(inp)]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err


def test_unknown_reward_in_config(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("rewards:\n  components:\n    - name: wer\n")
    inp = write_jsonl(tmp_path / "h.jsonl", ROWS[:1])
    assert main(["rewards", "score", "--config", str(cfg), "--input", str(inp)]) == 2
    assert "unknown built-in reward 'wer'; built-ins are: accuracy, hallucination, keywords, language" in capsys.readouterr().err
