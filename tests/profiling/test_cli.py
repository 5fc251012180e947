"""``funrl profile RUN_DIR`` end to end on the synthetic run."""

from __future__ import annotations

import json

from funrl.cli import main
from tests.profiling.prof_synthetic import write_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_profile_prints_the_table_and_writes_pngs_and_trace(tmp_path, capsys):
    write_run(tmp_path)
    assert main(["profile", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Time by phase" in out and "orchestration overhead" in out and "rollout0" in out
    prof = tmp_path / "profile"
    for name in ("phases_pie.png", "phases_per_step.png"):
        data = (prof / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, name  # a real picture, not an empty canvas
        assert f"wrote {prof / name}" in out
    assert json.loads((prof / "trace.json").read_text())["traceEvents"]
    assert json.loads((prof / "report.json").read_text())["phases"]["rollout"]["total_s"] == 10.0


def test_profile_without_data_says_where_it_looked_and_what_writes_it(tmp_path, capsys):
    assert main(["profile", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"no profile data at {tmp_path}/profile/spans.jsonl" in err
    assert "funrl train" in err and "profile.enabled" in err


def test_profile_with_no_finished_step_says_so(tmp_path, capsys):
    write_run(tmp_path, [{"type": "session", "start": 0.0, "pid": 1}])
    assert main(["profile", str(tmp_path)]) == 1
    assert "has no finished step yet" in capsys.readouterr().err
