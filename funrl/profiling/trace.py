"""Chrome/Perfetto trace JSON (Trace Event Format) from a run's spans, steps and grants.

Layout (open ``profile/trace.json`` in https://ui.perfetto.dev or chrome://tracing):

- process 1 "funrl workers": thread 1 "steps" (one complete event per step), then one thread per
  worker ("driver" first), each span a complete event ("ph": "X") named by its phase; the
  driver's ``weight_sync`` events carry the step's ``bytes`` and ``gb_per_s`` (see ``report``);
- process 2 "device ownership": one thread per device, each grant a complete event named by the
  role that held the device.

Records a resumed run superseded (see ``load_records``) are included with ``args.superseded``.

Timestamps are microseconds since the earliest record (``otherData.t0_unix_s`` holds that origin),
so they stay exact in a double; durations are microseconds too.
"""

from __future__ import annotations

import json
from pathlib import Path

from funrl.profiling.report import SYNC, sync_by_step
from funrl.profiling.spans import DRIVER

WORKERS_PID, DEVICES_PID, STEPS_TID = 1, 2, 1


def _meta(name: str, pid: int, tid: int | None, value: str) -> dict:
    ev = {"name": name, "ph": "M", "pid": pid, "args": {"name": value}}
    if tid is not None:
        ev["tid"] = tid
    return ev


def _complete(name: str, cat: str, pid: int, tid: int, start: float, end: float, t0: float, args: dict) -> dict:
    return {"name": name, "cat": cat, "ph": "X", "pid": pid, "tid": tid,
            "ts": round((start - t0) * 1e6, 3), "dur": round((end - start) * 1e6, 3), "args": args}


def _flag(r: dict) -> dict:
    r = {k: v for k, v in r.items() if k != "type"}
    r["args"] = {**r.get("args", {}), "superseded": True}
    return r


def build_trace(records: dict[str, list[dict]]) -> dict:
    """The trace dict (``{"traceEvents": [...], ...}``) for ``load_records`` output."""
    old = records.get("superseded", [])  # a resumed run's abandoned attempts: shown, flagged
    steps = records["steps"]
    spans = records["spans"] + [_flag(r) for r in old if r["type"] == "span"]
    grants = records["grants"] + [_flag(r) for r in old if r["type"] == "grant"]
    starts = [r["start"] for r in (*steps, *spans, *grants)]
    t0 = min(starts) if starts else 0.0
    workers = sorted({s["worker"] for s in spans}, key=lambda w: (w != DRIVER, w))
    tids = {w: i + 2 for i, w in enumerate(workers)}
    devices = sorted({g["device"] for g in grants})
    dtids = {d: i + 1 for i, d in enumerate(devices)}
    ev = [_meta("process_name", WORKERS_PID, None, "funrl workers"),
          _meta("thread_name", WORKERS_PID, STEPS_TID, "steps")]
    ev += [_meta("thread_name", WORKERS_PID, tid, w) for w, tid in tids.items()]
    if devices:
        ev.append(_meta("process_name", DEVICES_PID, None, "device ownership"))
        ev += [_meta("thread_name", DEVICES_PID, tid, d) for d, tid in dtids.items()]
    for s in steps:
        ev.append(_complete(f"step {s['step']}", "step", WORKERS_PID, STEPS_TID, s["start"], s["end"], t0,
                            {"step": s["step"]}))
    sync = sync_by_step(records["spans"])  # bytes and GB/s on the driver's weight_sync span
    for s in spans:
        args = {"step": s["step"], **s["args"]}
        if s["worker"] == DRIVER and s["name"] == SYNC and s["step"] in sync and not args.get("superseded"):
            args.update(bytes=sync[s["step"]]["bytes"], gb_per_s=sync[s["step"]]["gb_per_s"])
        ev.append(_complete(s["name"], "phase", WORKERS_PID, tids[s["worker"]], s["start"], s["end"], t0, args))
    for g in grants:
        ev.append(_complete(g["role"], "grant", DEVICES_PID, dtids[g["device"]], g["start"], g["end"], t0,
                            {"step": g["step"], "device": g["device"], **g.get("args", {})}))
    return {"traceEvents": ev, "displayTimeUnit": "ms", "otherData": {"t0_unix_s": t0, "producer": "funrl"}}


def write_trace(records: dict[str, list[dict]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_trace(records)), encoding="utf-8")
    return path
