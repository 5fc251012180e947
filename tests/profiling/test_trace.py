"""The Chrome/Perfetto trace is valid Trace Event Format JSON with the expected tracks."""

from __future__ import annotations

import json

import pytest

from funrl.profiling import load_records
from funrl.profiling.outputs import write_outputs
from tests.profiling.prof_synthetic import write_run

# Trace Event Format: required fields and their types per phase type used here.
COMMON = {"name": str, "ph": str, "pid": int}
COMPLETE = {**COMMON, "tid": int, "ts": (int, float), "dur": (int, float), "cat": str, "args": dict}


def check_event_format(trace: dict) -> None:
    """Raise AssertionError at the first event that breaks the Trace Event Format."""
    assert isinstance(trace["traceEvents"], list)
    assert trace.get("displayTimeUnit") in (None, "ms", "ns")
    for ev in trace["traceEvents"]:
        required = COMPLETE if ev["ph"] == "X" else COMMON
        for key, tp in required.items():
            assert isinstance(ev.get(key), tp), (key, ev)
        assert ev["ph"] in ("X", "M"), ev
        if ev["ph"] == "M":
            assert ev["name"] in ("process_name", "thread_name"), ev
            assert isinstance(ev["args"]["name"], str), ev
            assert ev["name"] == "process_name" or isinstance(ev["tid"], int), ev
        else:
            assert ev["ts"] >= 0 and ev["dur"] >= 0, ev


def tracks(trace: dict) -> dict[tuple[int, int], str]:
    """(pid, tid) -> "process/thread" names from the metadata events."""
    procs = {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"}
    return {(e["pid"], e["tid"]): f"{procs[e['pid']]}/{e['args']['name']}"
            for e in trace["traceEvents"] if e["name"] == "thread_name"}


def test_trace_is_valid_with_worker_step_and_grant_tracks(tmp_path):
    write_run(tmp_path)
    write_outputs(tmp_path, plots=False)
    trace = json.loads((tmp_path / "profile" / "trace.json").read_text())
    check_event_format(trace)
    names = tracks(trace)
    assert sorted(names.values()) == sorted([
        "funrl workers/steps", "funrl workers/driver", "funrl workers/rollout0", "funrl workers/policy0",
        "device ownership/gpu0",
    ])
    by_track: dict[str, list[dict]] = {}
    for e in trace["traceEvents"]:
        if e["ph"] == "X":
            by_track.setdefault(names[(e["pid"], e["tid"])], []).append(e)
    # step 0 starts at the earliest record: ts 0, 10 s long; step 1 starts 10 s later
    steps = by_track["funrl workers/steps"]
    assert [(e["name"], e["ts"], e["dur"]) for e in steps] == [("step 0", 0, 10e6), ("step 1", 10e6, 12e6)]
    grants = by_track["device ownership/gpu0"]
    assert [e["name"] for e in grants] == ["rollout", "policy", "rollout", "policy"]
    assert grants[0]["ts"] == pytest.approx(1.5e6) and grants[0]["dur"] == pytest.approx(4e6)
    roll = [e for e in by_track["funrl workers/rollout0"] if e["name"] == "rollout"]
    assert roll[0]["args"] == {"step": 0, "tokens": 400}
    # 5 driver spans of finished steps + 1 of unfinished step 2 (kept in the trace: it happened)
    assert len(by_track["funrl workers/driver"]) == 10
    assert trace["otherData"]["t0_unix_s"] == load_records(tmp_path)["steps"][0]["start"]
