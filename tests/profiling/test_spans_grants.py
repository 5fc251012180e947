"""SpanRecorder, Profiler bookkeeping, the grant exclusivity check and torch_profile."""

from __future__ import annotations

import json

import pytest

from funrl.profiling import Profiler, SpanRecorder, check_exclusive, load_records, torch_profile
from funrl.profiling.torch_capture import torch_trace_path


def g(role, start, end, device="gpu0", step=0):
    return {"device": device, "role": role, "step": step, "start": start, "end": end}


def test_recorder_records_in_order_and_keeps_failed_spans():
    rec = SpanRecorder("reward0")
    with rec.span("reward", step=1, batch=8) as s:
        s.args["tokens"] = 5
    with pytest.raises(KeyError):
        with rec.span("reward", step=2):
            raise KeyError("x")
    rec.record("idle", 10.0, 12.5, step=2)
    spans = rec.drain()
    assert [(s["name"], s["step"], s["args"]) for s in spans] == [
        ("reward", 1, {"batch": 8, "tokens": 5}), ("reward", 2, {"error": "KeyError"}), ("idle", 2, {})]
    assert all(s["worker"] == "reward0" and s["end"] >= s["start"] for s in spans)
    assert spans[0]["end"] <= spans[1]["start"]
    assert rec.drain() == []
    off = SpanRecorder("x", enabled=False)
    with off.span("update", step=0):
        pass
    assert off.drain() == []


def test_profiler_appends_per_step_and_rejects_bad_spans(tmp_path):
    prof = Profiler(tmp_path)
    with prof.step(0):
        with prof.span("encode", step=0):
            pass
        with prof.hold("cpu0", "encoder", 0):
            pass
    path = tmp_path / "profile" / "spans.jsonl"
    kinds = [json.loads(line)["type"] for line in path.read_text().splitlines()]
    assert kinds == ["session", "grant", "step", "span"]  # on disk after the step, before close
    with pytest.raises(ValueError, match=r"Profiler.add item 1: .* lacks \['end'\]"):
        prof.add([{"name": "a", "worker": "w", "step": 0, "start": 0.0, "end": 1.0, "args": {}},
                  {"name": "a", "worker": "w", "step": 0, "start": 0.0, "args": {}}])
    with pytest.raises(ValueError, match="ends before it starts"):
        prof.grant("cpu0", "policy", 1, 5.0, 4.0)
    recs = load_records(tmp_path)
    assert [s["name"] for s in recs["spans"]] == ["encode"] and recs["grants"][0]["role"] == "encoder"


def test_a_step_that_raises_keeps_its_spans_but_is_not_a_finished_step(tmp_path):
    prof = Profiler(tmp_path)
    with prof.step(0):
        with prof.span("update", step=0):
            pass
    with pytest.raises(RuntimeError):
        with prof.step(1):
            with prof.span("rollout", step=1):
                raise RuntimeError("worker died")
    recs = load_records(tmp_path)
    assert [s["step"] for s in recs["steps"]] == [0]
    assert [(s["name"], s["step"], s["args"]) for s in recs["spans"]] == [
        ("update", 0, {}), ("rollout", 1, {"error": "RuntimeError"})]


def test_disabled_profiler_writes_nothing(tmp_path):
    prof = Profiler(tmp_path, enabled=False)
    with prof.step(0), prof.span("update", step=0), prof.hold("cpu0", "policy", 0):
        prof.add([{"bad": 1}])  # not even checked: disabled means zero work
    assert prof.close() is None
    assert not (tmp_path / "profile").exists()


def test_check_exclusive_passes_a_clean_log_and_finds_an_injected_overlap():
    clean = [g("encoder", 0, 1), g("rollout", 1, 4), g("policy", 4, 6), g("rollout", 6, 9),
             g("policy", 0, 9, device="gpu1"), g("rollout", 2, 3, device="gpu2")]
    assert check_exclusive(clean) == []
    assert check_exclusive([g("rollout", 0, 2), g("rollout", 1, 3)]) == []  # one role, re-granted
    bad = [*clean, g("encoder", 5.5, 7.0)]  # overlaps policy 4-6 by 0.5 s and rollout 6-9 by 1 s
    vs = check_exclusive(bad)
    assert [(v.device, v.first["role"], v.second["role"]) for v in vs] == [
        ("gpu0", "policy", "encoder"), ("gpu0", "encoder", "rollout")]
    assert [v.overlap_s for v in vs] == pytest.approx([0.5, 1.0])
    assert "gpu0 held by policy" in str(vs[0])


@pytest.mark.slow  # torch.profiler's first start takes seconds
def test_torch_profile_captures_only_chosen_steps(tmp_path):
    import torch

    x = torch.ones(8, 8)
    for step in range(3):
        with torch_profile(tmp_path, step, steps=[1], worker="policy0") as p:
            (x @ x).sum()
        assert (p is None) == (step != 1)
    assert not torch_trace_path(tmp_path, 0, "policy0").exists()
    trace = json.loads(torch_trace_path(tmp_path, 1, "policy0").read_text())
    assert any("aten::mm" in e.get("name", "") for e in trace["traceEvents"])
