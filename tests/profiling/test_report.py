"""The breakdown report on the synthetic run of prof_synthetic.py (expected numbers worked out there)."""

from __future__ import annotations

import json

import pytest

from funrl.profiling import load_records
from funrl.profiling.report import OVERHEAD, build_report, percentile, print_report, union_length
from funrl.profiling.trace import build_trace
from tests.profiling.prof_synthetic import T, records, write_run


@pytest.fixture()
def report(tmp_path):
    write_run(tmp_path)
    return build_report(load_records(tmp_path))


def test_phase_totals_equal_hand_sums(report):
    ph = report["phases"]
    assert report["steps"] == 2
    assert report["step_time"]["total_s"] == pytest.approx(22.0)  # 10 + 12
    assert list(ph) == ["encode", "rollout", "reward", "update", "checkpoint", OVERHEAD]  # pipeline order
    expected = {"encode": 2.0, "rollout": 10.0, "reward": 1.0, "update": 6.0, "checkpoint": 0.5}
    for name, total in expected.items():
        assert ph[name]["total_s"] == pytest.approx(total), name
        assert ph[name]["share"] == pytest.approx(total / 22.0), name
    # rollout per step [4, 6]: mean 5, p50 5, p95 = 4 + (6-4)*0.95 = 5.9
    assert (ph["rollout"]["mean"], ph["rollout"]["p50"], ph["rollout"]["p95"]) == pytest.approx((5.0, 5.0, 5.9))
    assert ph["checkpoint"]["steps"] == 1  # stats over the steps where the phase ran
    assert ph["checkpoint"]["mean"] == pytest.approx(0.5)


def test_overhead_is_step_time_minus_phase_sum(report):
    ov = report["phases"][OVERHEAD]
    # step 0: 10 - (1 + 4 + 0.5 + 3) = 1.5; step 1: 12 - (1 + 6 + 0.5 + 3 + 0.5) = 1.0
    assert ov["total_s"] == pytest.approx(2.5)
    assert (ov["mean"], ov["p50"]) == pytest.approx((1.25, 1.25))
    assert ov["overlap_s"] == pytest.approx(0.0)
    assert [r[OVERHEAD] for r in report["per_step"]] == pytest.approx([1.5, 1.0])
    assert [r["wall_s"] for r in report["per_step"]] == pytest.approx([10.0, 12.0])
    # the acceptance identity: phases + overhead add up to the step wall time
    assert sum(p["total_s"] for p in report["phases"].values()) == pytest.approx(report["step_time"]["total_s"])


def test_workers_devices_switches_throughput(report):
    assert list(report["workers"]) == ["driver", "policy0", "rollout0"]
    r0 = report["workers"]["rollout0"]
    assert {p: v["total_s"] for p, v in r0["phases"].items()} == pytest.approx(
        {"rollout": 3.6 + 5.8, "wake": 0.3, "sleep": 0.3})
    assert [v["count"] for v in r0["phases"].values()] == [2, 2, 2]
    assert r0["busy_s"] == pytest.approx(0.2 + 3.6 + 0.2 + 0.1 + 5.8 + 0.1)  # wake+rollout+sleep, both steps
    dev = report["devices"]["gpu0"]
    assert dev["held_s"] == pytest.approx(16.0)  # 4 + 3 + 6 + 3
    assert dev["idle_s"] == pytest.approx(6.0)  # 22 - 16
    assert dev["by_role"] == pytest.approx({"policy": 6.0, "rollout": 10.0})
    sw = report["switches"]["rollout0"]
    assert (sw["wake"]["count"], sw["wake"]["total_s"], sw["wake"]["mean_s"]) == pytest.approx((2, 0.3, 0.15))
    assert sw["sleep"]["total_s"] == pytest.approx(0.3)
    tp = report["throughput"]
    # rollout: 400 + 600 tokens from the worker spans over the driver's 10 s of rollout
    assert (tp["rollout"]["tokens"], tp["rollout"]["tokens_per_s"]) == (1000, pytest.approx(100.0))
    assert (tp["update"]["tokens"], tp["update"]["tokens_per_s"]) == (900, pytest.approx(150.0))
    assert report["incomplete_spans"] == 1  # the encode of unfinished step 2


def test_overlapping_driver_spans_are_reported(tmp_path):
    recs = [
        {"type": "span", "name": "reward", "worker": "driver", "step": 0, "start": 1.0, "end": 3.0, "args": {}},
        {"type": "span", "name": "logprob_ref", "worker": "driver", "step": 0, "start": 2.0, "end": 4.0, "args": {}},
        {"type": "step", "step": 0, "start": 0.0, "end": 5.0},
    ]
    write_run(tmp_path, recs)
    ov = build_report(load_records(tmp_path))["phases"][OVERHEAD]
    assert ov["total_s"] == pytest.approx(1.0)  # 5 - (2 + 2)
    assert ov["overlap_s"] == pytest.approx(1.0)  # sum 4 - union [1, 4] 3


def test_resumed_run_counts_redone_steps_once(tmp_path):
    first = records()[:12]  # session 1: all of step 0 (through its step record)
    redo = [
        {"type": "session", "start": T + 200, "pid": 2},
        {"type": "span", "name": "rollout", "worker": "driver", "step": 0, "start": T + 201, "end": T + 203, "args": {}},
        {"type": "step", "step": 0, "start": T + 200, "end": T + 204},
    ]
    write_run(tmp_path, first + redo)
    rep = build_report(load_records(tmp_path))
    assert rep["steps"] == 1
    assert rep["step_time"]["total_s"] == pytest.approx(4.0)  # the redone step, not 10 + 4
    assert list(rep["phases"]) == ["rollout", OVERHEAD]
    assert rep["devices"] == {}  # the first session's grants of step 0 were superseded
    assert rep["superseded_records"] == 11  # session 1's 8 spans, 2 grants and step record of step 0
    trace = build_trace(load_records(tmp_path))  # the abandoned attempt stays visible in the trace
    flagged = [e for e in trace["traceEvents"] if e.get("args", {}).get("superseded")]
    assert len(flagged) == 8 + 2


def test_switch_costs_are_split_by_role_when_spans_name_one(tmp_path):
    span = lambda role, a, b: {"type": "span", "name": "wake", "worker": "driver", "step": 0,  # noqa: E731
                               "start": a, "end": b, "args": {"role": role}}
    write_run(tmp_path, [span("rollout", 0.0, 0.5), span("policy", 1.0, 1.25), span("policy", 2.0, 2.75),
                         {"type": "step", "step": 0, "start": 0.0, "end": 3.0}])
    sw = build_report(load_records(tmp_path))["switches"]
    assert sw["driver (rollout)"]["wake"] == pytest.approx({"count": 1, "total_s": 0.5, "mean_s": 0.5})
    assert sw["driver (policy)"]["wake"] == pytest.approx({"count": 2, "total_s": 1.0, "mean_s": 0.5})


def test_torn_last_line_is_ignored_with_a_warning_but_damage_elsewhere_raises(tmp_path):
    path = write_run(tmp_path)
    path.write_text(path.read_text() + '{"type": "span", "na')
    with pytest.warns(UserWarning, match="torn last line"):
        assert len(load_records(tmp_path)["steps"]) == 2
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "garbage", *lines[1:-1]]) + "\n")
    with pytest.raises(ValueError, match=r"spans.jsonl:2: malformed JSON"):
        load_records(tmp_path)


def test_missing_profile_names_the_path_and_what_writes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"profile/spans.jsonl.*profile.enabled"):
        load_records(tmp_path)


def test_helpers_against_slow_references():
    xs = [3.0, 1.0, 4.0, 1.5, 9.0]
    # sorted 1, 1.5, 3, 4, 9; p95 at position 0.95*4 = 3.8 -> 4 + 0.8*(9-4) = 8.0
    assert percentile(xs, 95) == pytest.approx(8.0)
    assert percentile(xs, 50) == pytest.approx(3.0)
    assert union_length([(0, 2), (1, 3), (5, 6), (5.5, 5.7)]) == pytest.approx(4.0)  # [0,3] + [5,6]


def test_report_is_json_and_prints(report, capsys):
    json.dumps(report)  # report.json is written from this dict
    from rich.console import Console

    print_report(report, Console(width=140, force_terminal=False))
    out = capsys.readouterr().out
    assert "orchestration overhead" in out and "gpu0" in out and "tokens/s" in out


def test_weight_sync_bytes_and_gb_per_s_in_the_report_table_and_trace(tmp_path):
    """Sync cost from synthetic spans: the policy's rank 0 counts the bytes, the driver times the phase."""
    from tests.profiling.prof_synthetic import _span

    recs = [
        _span("weight_sync", "driver", 0, 1.0, 1.5),  # 0.5 s
        _span("weight_sync", "policy0", 0, 1.0, 1.4, bytes=200_000_000, transport="shm"),
        _span("weight_sync", "policy1", 0, 1.0, 1.4, bytes=0),  # other ranks gather, send nothing
        _span("weight_sync", "rollout0", 0, 1.1, 1.3, tensors=7, kind="adapter"),  # no bytes: not counted
        {"type": "step", "step": 0, "start": T + 0.0, "end": T + 2.0},
        _span("weight_sync", "driver", 1, 3.0, 3.25),  # 0.25 s
        _span("weight_sync", "policy0", 1, 3.0, 3.2, bytes=100_000_000, transport="shm"),
        {"type": "step", "step": 1, "start": T + 2.0, "end": T + 4.0},
    ]
    write_run(tmp_path, recs)
    records = load_records(tmp_path)
    ws = build_report(records)["weight_sync"]
    # step 0: 0.2 GB in 0.5 s = 0.4 GB/s; step 1: 0.1 GB in 0.25 s; together 0.3 GB in 0.75 s = 0.4 GB/s
    assert ws["steps"] == 2 and ws["transport"] == "shm"
    assert ws["bytes_by_step"] == {"0": 200_000_000, "1": 100_000_000}
    assert ws["bytes_per_step"] == pytest.approx(150_000_000)
    assert ws["seconds_per_step"] == pytest.approx(0.375)
    assert ws["gb_per_s"] == pytest.approx(0.4)
    events = [e for e in build_trace(records)["traceEvents"] if e["name"] == "weight_sync" and e["tid"] == 2]
    assert [e["args"]["bytes"] for e in events] == [200_000_000, 100_000_000]  # the driver's track
    assert [e["args"]["gb_per_s"] for e in events] == pytest.approx([0.4, 0.4])
    from rich.console import Console

    console = Console(record=True, width=120)
    print_report(build_report(records), console)
    row = [line for line in console.export_text().splitlines() if "shm" in line]
    assert row and "150.000" in row[0] and "0.400" in row[0]  # MB/step and GB/s on the table's row
    write_run(tmp_path / "plain")  # the shared synthetic run has no weight_sync spans: no table
    assert build_report(load_records(tmp_path / "plain"))["weight_sync"] is None
