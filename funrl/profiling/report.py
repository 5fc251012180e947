"""The time breakdown of a run, computed from its spans, steps and grants alone.

Definitions (all seconds of wall-clock time):

- step time: the wall time of ``with prof.step(n)``; only finished steps (with a step record)
  count. Spans of an unfinished step (a crash) or of no step are counted under
  ``incomplete_spans``; records superseded by a resumed run under ``superseded_records``.
- phase total: the sum of the **driver's** spans of that phase over all finished steps. The
  driver times each phase around the call that does it, so driver spans never double-count work
  done in parallel by several workers. A phase recorded only by workers (no driver span of that
  name) is reported per worker, not in the phase table.
- share: phase total / total step time. per-step mean/p50/p95: over the steps where the phase ran.
- orchestration overhead = step time − sum of the driver's phase spans in that step (the time the
  driver spent between phases: scheduling, Ray calls, bookkeeping). If driver spans overlap (phases
  run concurrently) the sum exceeds their union; ``overlap_s`` says by how much.
- device idle = step time − time some role held the device (union of its grants in the step).
- wake/sleep switch costs: the ``wake`` and ``sleep`` spans of each worker (split by their
  ``role`` arg when they have one, as the driver's do).
- tokens/s of a phase: ``tokens`` in the args of worker spans of that phase (driver spans if no
  worker span carries them) / the phase's driver time (the worker spans' union if none).
- weight-sync cost: bytes sent per step = ``bytes`` in the args of the workers' ``weight_sync``
  spans (the policy's; rank 0 carries the count), effective GB/s = bytes / the driver's
  ``weight_sync`` time of the step (10^9 bytes a GB). The trace carries both on the driver's span.
"""

from __future__ import annotations

import math
from typing import Iterable

from funrl.profiling.grants import check_exclusive
from funrl.profiling.spans import DRIVER
from funrl.profiling.spans import PHASES

OVERHEAD = "orchestration"


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default method), ``q`` in [0, 100]."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _stats(per_step: list[float]) -> dict:
    """mean/p50/p95 over steps; None when there are none (report.json stays strict JSON)."""
    if not per_step:
        return {"mean": None, "p50": None, "p95": None, "steps": 0}
    return {
        "mean": sum(per_step) / len(per_step),
        "p50": percentile(per_step, 50),
        "p95": percentile(per_step, 95),
        "steps": len(per_step),
    }


def union_length(intervals: Iterable[tuple[float, float]]) -> float:
    """Total length covered by possibly overlapping [start, end] intervals."""
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted(intervals):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def phase_order(names: Iterable[str]) -> list[str]:
    """Known phases in pipeline order, then the others alphabetically."""
    names = set(names)
    return [p for p in PHASES if p in names] + sorted(names - set(PHASES))


def _dur(s: dict) -> float:
    return s["end"] - s["start"]


def build_report(records: dict[str, list[dict]]) -> dict:
    """The breakdown dict from ``load_records`` output (``{"steps", "spans", "grants"}``)."""
    steps = {s["step"]: s for s in records["steps"]}
    spans = [s for s in records["spans"] if s["step"] in steps]
    step_time = {n: _dur(s) for n, s in steps.items()}
    total = sum(step_time.values())
    driver = [s for s in spans if s["worker"] == DRIVER]
    per_step = _per_step(driver, step_time)
    return {
        "steps": len(steps),
        "step_time": {"total_s": total, **_stats(list(step_time.values()))},
        "phases": _phases(per_step, total),
        "per_step": per_step,
        "workers": _workers(spans),
        "devices": _devices(records["grants"], steps),
        "switches": _switches(spans),
        "throughput": _throughput(spans, driver),
        "weight_sync": weight_sync_cost(spans),
        "incomplete_spans": len(records["spans"]) - len(spans),
        "superseded_records": len(records.get("superseded", [])),
        "ownership_violations": [str(v) for v in check_exclusive(records["grants"])],
        "device_memory": _device_memory(records["grants"]),
    }


def _device_memory(grants: list[dict]) -> dict:
    """Per role: the most bytes one of its actors held when granted a device and kept after
    releasing it (the wake/sleep reports; empty when the roles were not switched)."""
    out: dict[str, dict[str, int]] = {}
    for g in grants:
        for key, field in (("held_bytes", "max_held_bytes"), ("kept_bytes", "max_kept_bytes")):
            for v in (g.get(key) or {}).values():
                row = out.setdefault(g["role"], {"max_held_bytes": 0, "max_kept_bytes": 0})
                row[field] = max(row[field], int(v))
    return out


def _per_step(driver: list[dict], step_time: dict[int, float]) -> list[dict]:
    """One row per finished step: its wall time, driver seconds by phase, overhead, overlap."""
    by_step: dict[int, list[dict]] = {n: [] for n in step_time}
    for s in driver:
        by_step[s["step"]].append(s)
    out = []
    for n in sorted(step_time):
        phases: dict[str, float] = {}
        for s in by_step[n]:
            phases[s["name"]] = phases.get(s["name"], 0.0) + _dur(s)
        busy = sum(phases.values())
        out.append({"step": n, "wall_s": step_time[n], "phases": {p: phases[p] for p in phase_order(phases)},
                    OVERHEAD: step_time[n] - busy,
                    "overlap_s": busy - union_length((s["start"], s["end"]) for s in by_step[n])})
    return out


def _phases(per_step: list[dict], total: float) -> dict:
    per: dict[str, list[float]] = {}
    for row in per_step:
        for name, v in row["phases"].items():
            per.setdefault(name, []).append(v)
    out = {}
    for name in phase_order(per):
        t = sum(per[name])
        out[name] = {"total_s": t, "share": t / total if total else 0.0, **_stats(per[name])}
    over = [row[OVERHEAD] for row in per_step]
    t = sum(over)
    out[OVERHEAD] = {"total_s": t, "share": t / total if total else 0.0, **_stats(over),
                     "overlap_s": sum(row["overlap_s"] for row in per_step)}
    return out


def _workers(spans: list[dict]) -> dict:
    out: dict[str, dict] = {}
    for s in spans:
        w = out.setdefault(s["worker"], {"busy_s": 0.0, "phases": {}})
        p = w["phases"].setdefault(s["name"], {"count": 0, "total_s": 0.0})
        p["count"] += 1
        p["total_s"] += _dur(s)
    intervals: dict[str, list[tuple[float, float]]] = {}
    for s in spans:
        intervals.setdefault(s["worker"], []).append((s["start"], s["end"]))
    for worker, w in out.items():
        w["busy_s"] = union_length(intervals[worker])
        w["phases"] = {p: w["phases"][p] for p in phase_order(w["phases"])}
    return dict(sorted(out.items(), key=lambda kv: (kv[0] != DRIVER, kv[0])))


def _devices(grants: list[dict], steps: dict[int, dict]) -> dict:
    by_dev: dict[str, dict[int, list[dict]]] = {}
    for g in grants:
        if g["step"] in steps:
            by_dev.setdefault(g["device"], {}).setdefault(g["step"], []).append(g)
    wall = sum(_dur(st) for st in steps.values())
    out: dict[str, dict] = {}
    for dev in sorted(by_dev):
        held, by_role = 0.0, {}
        for n, gs in by_dev[dev].items():
            st = steps[n]  # grants are clipped to their step's wall time
            clipped = [(max(g["start"], st["start"]), min(g["end"], st["end"]), g["role"]) for g in gs]
            clipped = [(a, b, r) for a, b, r in clipped if b > a]
            held += union_length((a, b) for a, b, _ in clipped)
            for a, b, r in clipped:
                by_role[r] = by_role.get(r, 0.0) + (b - a)
        out[dev] = {"held_s": held, "idle_s": wall - held, "idle_share": (wall - held) / wall if wall else 0.0,
                    "by_role": dict(sorted(by_role.items()))}
    return out


def _switches(spans: list[dict]) -> dict:
    """wake/sleep costs per worker; spans with a ``role`` arg (the driver's) are split by role."""
    out: dict[str, dict] = {}
    for s in spans:
        if s["name"] in ("wake", "sleep"):
            key = f"{s['worker']} ({s['args']['role']})" if "role" in s["args"] else s["worker"]
            d = out.setdefault(key, {}).setdefault(s["name"], {"count": 0, "total_s": 0.0})
            d["count"] += 1
            d["total_s"] += _dur(s)
    for per in out.values():
        for d in per.values():
            d["mean_s"] = d["total_s"] / d["count"]
    return dict(sorted(out.items()))


def _throughput(spans: list[dict], driver: list[dict]) -> dict:
    out = {}
    for phase in ("rollout", "update"):
        mine = [s for s in spans if s["name"] == phase and "tokens" in s["args"]]
        from_workers = [s for s in mine if s["worker"] != DRIVER]
        counted = from_workers or mine
        if not counted:
            continue
        tokens = sum(int(s["args"]["tokens"]) for s in counted)
        drv = [s for s in driver if s["name"] == phase]
        seconds = sum(_dur(s) for s in drv) if drv else union_length((s["start"], s["end"]) for s in counted)
        out[phase] = {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds if seconds else None}
    return out


SYNC = "weight_sync"


def sync_by_step(spans: list[dict]) -> dict[int, dict]:
    """Per step: ``bytes`` sent (workers' ``weight_sync`` spans), ``seconds`` (the driver's span, else
    the workers' union), ``gb_per_s`` (None for a zero-length sync). Steps without bytes are left out."""
    sent: dict[int, int] = {}
    for s in spans:
        if s["name"] == SYNC and s["worker"] != DRIVER and "bytes" in s["args"]:
            sent[s["step"]] = sent.get(s["step"], 0) + int(s["args"]["bytes"])
    out = {}
    for step, n in sent.items():
        mine = [s for s in spans if s["name"] == SYNC and s["step"] == step]
        drv = [s for s in mine if s["worker"] == DRIVER]
        sec = sum(_dur(s) for s in drv) if drv else union_length((s["start"], s["end"]) for s in mine)
        out[step] = {"bytes": n, "seconds": sec, "gb_per_s": n / sec / 1e9 if sec > 0 else None}
    return out


def weight_sync_cost(spans: list[dict]) -> dict | None:
    """Bytes per step and effective GB/s of the weight sync (None when no span counted bytes)."""
    per = sync_by_step(spans)
    if not per:
        return None
    n, sec = sum(v["bytes"] for v in per.values()), sum(v["seconds"] for v in per.values())
    transports = sorted({s["args"]["transport"] for s in spans if s["name"] == SYNC and "transport" in s["args"]})
    return {"steps": len(per), "bytes_per_step": n / len(per), "seconds_per_step": sec / len(per),
            "gb_per_s": n / sec / 1e9 if sec > 0 else None, "transport": ",".join(transports) or None,
            "bytes_by_step": {str(k): v["bytes"] for k, v in sorted(per.items())}}


# ----------------------------------------------------------------------------- rich rendering


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def tables(report: dict) -> list:
    """The report as rich tables: phases, workers, devices, switches, throughput."""
    from rich.table import Table

    st = report["step_time"]
    t = Table(title=f"Time by phase ({report['steps']} steps)")
    for col in ("phase", "total s", "share", "mean s", "p50 s", "p95 s", "steps"):
        t.add_column(col, justify="left" if col == "phase" else "right")
    t.add_row("step (wall)", f"{st['total_s']:.3f}", "100.0%", _fmt(st["mean"]), _fmt(st["p50"]),
              _fmt(st["p95"]), str(st["steps"]), end_section=True)
    for name, p in report["phases"].items():
        label = "orchestration overhead" if name == OVERHEAD else name
        t.add_row(label, f"{p['total_s']:.3f}", f"{100 * p['share']:.1f}%", _fmt(p["mean"]),
                  _fmt(p["p50"]), _fmt(p["p95"]), str(p["steps"]), style="bold" if name == OVERHEAD else None)
    out = [t]
    if report["workers"]:
        w = Table(title="Time by worker (busy = union of its spans)")
        for col in ("worker", "phase", "spans", "total s", "mean s"):
            w.add_column(col, justify="left" if col in ("worker", "phase") else "right")
        for name, d in report["workers"].items():
            w.add_row(name, "busy", "", f"{d['busy_s']:.3f}", "", style="bold")
            items = list(d["phases"].items())
            for i, (p, v) in enumerate(items):
                w.add_row("", p, str(v["count"]), f"{v['total_s']:.3f}", f"{v['total_s'] / v['count']:.4f}",
                          end_section=i == len(items) - 1)
        out.append(w)
    if report["devices"]:
        d = Table(title="Devices (from the grant log)")
        for col in ("device", "held s", "idle s", "idle share", "held by role (s)"):
            d.add_column(col, justify="left" if col in ("device", "held by role (s)") else "right")
        for name, v in report["devices"].items():
            d.add_row(name, f"{v['held_s']:.3f}", f"{v['idle_s']:.3f}", f"{100 * v['idle_share']:.1f}%",
                      ", ".join(f"{r} {s:.3f}" for r, s in v["by_role"].items()))
        out.append(d)
    if report["switches"]:
        s = Table(title="Wake/sleep switch costs")
        for col in ("worker", "switch", "count", "total s", "mean s"):
            s.add_column(col, justify="left" if col in ("worker", "switch") else "right")
        for worker, per in report["switches"].items():
            for kind, v in per.items():
                s.add_row(worker, kind, str(v["count"]), f"{v['total_s']:.3f}", f"{v['mean_s']:.4f}")
        out.append(s)
    if report["throughput"]:
        tp = Table(title="Throughput")
        for col in ("phase", "tokens", "seconds", "tokens/s"):
            tp.add_column(col, justify="left" if col == "phase" else "right")
        for name, v in report["throughput"].items():
            rate = "-" if v["tokens_per_s"] is None else f"{v['tokens_per_s']:.1f}"
            tp.add_row(name, str(v["tokens"]), f"{v['seconds']:.3f}", rate)
        out.append(tp)
    ws = report.get("weight_sync")
    if ws:
        t = Table(title="Weight sync (policy -> rollout engine)")
        for col in ("steps", "MB/step", "s/step", "GB/s", "transport"):
            t.add_column(col, justify="right")
        rate = "-" if ws["gb_per_s"] is None else f"{ws['gb_per_s']:.3f}"
        t.add_row(str(ws["steps"]), f"{ws['bytes_per_step'] / 1e6:.3f}", f"{ws['seconds_per_step']:.4f}", rate,
                  ws["transport"] or "-")
        out.append(t)
    return out


def print_report(report: dict, console=None) -> None:
    """Print the tables (and notes on overlap / unfinished steps) to a rich console."""
    from rich.console import Console

    console = console or Console()
    for t in tables(report):
        console.print(t)
    overlap = report["phases"][OVERHEAD]["overlap_s"]
    if overlap > 1e-9:
        console.print(f"note: driver phase spans overlapped for {overlap:.3f} s (phases ran concurrently); "
                      "the overhead row is step time minus their sum and may be negative")
    for v in report.get("ownership_violations", []):
        console.print(f"[red]device ownership violated:[/red] {v}")
    if report["incomplete_spans"]:
        console.print(f"note: {report['incomplete_spans']} spans belong to unfinished steps or no step "
                      "and are left out of the tables (they are in trace.json)")
    if report["superseded_records"]:
        console.print(f"note: {report['superseded_records']} records carry step numbers that a later or "
                      "earlier session finished (a resumed run) and are left out of the tables "
                      "(they are in trace.json)")
