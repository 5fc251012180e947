"""bench/gpu_check_all.py without a GPU: the guard, the dry run, and a failing check in the table."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import gpu_check_all as g  # noqa: E402


def test_dry_run_lists_every_check(capsys, tmp_path):
    assert g.main(["--dry-run", "--work", str(tmp_path), "--gpu-overrides"]) == 0
    out = capsys.readouterr().out
    names = [line[2:].split(" (")[0] for line in out.splitlines() if line.startswith("# ") and "timeout" in line]
    assert names == ["corpus", "demo fp32", "demo bf16", "weight sync 0.6B", "sglang", "real-size build", "real-size"]
    trains = [line for line in out.splitlines() if " -m funrl train " in line]
    assert len(trains) == 3 and all("cluster.resources.rollout.num_gpus=0.4" in t for t in trains)
    assert sum("policy.param_dtype=bfloat16" in t for t in trains) == 1
    assert "examples/fun_asr_nano_grpo.yaml" in trains[2] and "train.steps=3" in trains[2]
    assert not (tmp_path / "logs").exists()  # nothing ran
    g.main(["--dry-run", "--work", str(tmp_path)])
    assert "num_gpus" not in capsys.readouterr().out  # the layout puts the GPU roles on the GPU itself


def test_only_adds_what_a_check_needs_and_rejects_unknown_names(capsys, tmp_path):
    g.main(["--dry-run", "--only", "bf16", "--work", str(tmp_path)])
    assert [x for x in capsys.readouterr().out.splitlines() if x.startswith("# ") and "timeout" in x] == [
        "# corpus (timeout 240 s)", "# demo bf16 (timeout 300 s, needs corpus)"]
    with pytest.raises(SystemExit, match="--only gpu: not a check"):
        g.main(["--dry-run", "--only", "gpu"])


def test_without_a_gpu_one_message_and_exit_2(monkeypatch, capsys):
    monkeypatch.setattr(g, "gpu_problem", lambda: g.NO_GPU)
    assert g.main(["--only", "sync"]) == 2
    err = capsys.readouterr().err
    assert err == "gpu_check: needs an NVIDIA GPU: torch.cuda.is_available() is False\n"


def test_a_failing_check_shows_its_first_error_line_and_the_rest_still_run(monkeypatch, capsys, tmp_path):
    crash = "import sys; print('loading'); print('Traceback (most recent call last):'); sys.exit('ValueError: bad key x')"

    def fake_checks(a):
        return [g.Check("broken", [sys.executable, "-c", crash], 30, keys=("broken",)),
                g.Check("after", [sys.executable, "-c", "print('fine')"], 30, keys=("after",)),
                g.Check("needs broken", [sys.executable, "-c", "pass"], 30, keys=("x",), needs=("broken",))]

    monkeypatch.setattr(g, "checks", fake_checks)
    monkeypatch.delenv("OUT", raising=False)
    assert g.main(["--cpu", "--work", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    table = out[out.index("check "):]
    assert "broken" in table and "FAIL  exit 1: ValueError: bad key x" in table
    assert [r["status"] for r in json.loads((tmp_path / "logs" / "gpu_check_all.json").read_text())] == ["FAIL", "ok", "SKIP"]
    assert "1 check(s) failed: broken" in out


def test_sglang_release_that_frees_nothing_fails_and_slow_sync_is_flagged(tmp_path):
    c = g.Check("sglang", [], 1)
    c.out = tmp_path
    rows = [{"phase": p, "seconds": 1.0, "peak_alloc_gib": 1.0, "device_used_gib": used, "note": ""}
            for p, used in (("generate", 30.0), ("sleep (release)", 30.0), ("wake (resume)", 30.0))]
    (tmp_path / "gpu_check.json").write_text(json.dumps(rows))
    with pytest.raises(g.CheckFailed, match="release freed 0.00 GiB") as e:
        g.sglang_rows(c)
    assert [r.check.strip() for r in e.value.rows][-1] == "release frees"
    sync = [{"mode": m, "path": "new, shm", "s": s, "same_weights": True} for m, s in (("lora", 0.08), ("full", 0.35))]
    (tmp_path / "gpu_sync_check.json").write_text(json.dumps(sync + [{"mode": "pinned", "sender": 2}]))
    assert [r.status for r in g.sync_rows(c)] == ["ok", "SLOW"]


def test_a_run_with_an_ownership_violation_fails_and_grant_memory_is_read(tmp_path):
    run = tmp_path / "run"
    (run / "profile").mkdir(parents=True)
    (run / "metrics.jsonl").write_text(json.dumps({"step": 0, "loss": 0.1}) + "\n" + json.dumps({"step": 1, "loss": 0.2}))
    grants = [{"type": "grant", "device": "gpu0", "role": "policy", "step": s, "start": 10.0 * s, "end": 10.0 * s + 2,
               "held_bytes": {"policy0": 3 * 2**30}, "kept_bytes": {"policy0": 2**29}} for s in (0, 1)]
    (run / "profile" / "spans.jsonl").write_text("\n".join(json.dumps(x) for x in grants))
    report = {"steps": 2, "devices": {"gpu0": {}}, "ownership_violations": [],
              "per_step": [{"step": s, "wall_s": 3.0 + s, "phases": {"update": 2.0}, "orchestration": 0.5} for s in (0, 1)]}
    (run / "profile" / "report.json").write_text(json.dumps(report))
    rows = {r.check.strip(): r for r in g.train_rows(run, True, expect_gpu=True)}
    assert rows["s/step (wall)"].s_step == 4.0  # step 1 only: step 0 warms up
    assert rows["grant policy"].gpu_gib == 3.0 and rows["grant policy"].s_step == 2.0
    assert "kept after release 0.50 GiB" in rows["grant policy"].note
    assert rows["wake/sleep"].note.startswith("no switch spans")
    report["ownership_violations"] = ["gpu0: policy0 kept 2048 MiB after releasing (limit 1024 MiB)"]
    (run / "profile" / "report.json").write_text(json.dumps(report))
    with pytest.raises(g.CheckFailed, match="1 ownership violation"):
        g.train_rows(run, True, expect_gpu=True)
    report.update(ownership_violations=[], devices={"cpu": {}})
    (run / "profile" / "report.json").write_text(json.dumps(report))
    with pytest.raises(g.CheckFailed, match="held no GPU"):
        g.train_rows(run, True, expect_gpu=True)
