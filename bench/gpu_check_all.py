"""Every GPU check of funrl in one command and one table (``bash bench/gpu_check.sh`` runs this).

Each check runs in its own subprocess with a timeout; a failing one gets ``FAIL`` and the first
error line of its log, the later checks still run, and the table is printed at the end. The
checks, in the order they run:

- ``corpus``: a small eSpeak corpus (``funrl data synth --n 64``) for the training runs (cached).
- ``demo fp32``: ``funrl train examples/tiny_asr_grpo.yaml`` on one GPU for ``--demo-steps``
  steps. Sub-rows from the run's profile (``report.json``, ``spans.jsonl``), means over the steps
  after the first (which warms up): s/step by phase, the driver's wake/sleep spans per role (the
  switch costs), and per role and device the time it held the device per step, with the memory
  its actors held when granted it (the grants' ``held_bytes``, :mod:`funrl.train.ownership`: the
  most one actor reserved, in the GPU column) and kept after releasing it (``kept_bytes``), or
  ``n/a`` where the profile has none. ``FAIL`` on a non-finite loss, grad norm or reward, on an
  ownership violation in ``report.json`` (a role that kept more than ``cluster.sleep_limit_mib``
  after releasing the device), or when no grant names a GPU.
- ``demo bf16``: the same run with ``policy.param_dtype=bfloat16``.
- ``weight sync 0.6B``: ``bench/gpu_sync_check.py`` (FSDP2 policy → HF engine in one process, the
  Qwen3-0.6B body, LoRA and full): the shared-memory path funrl uses against the anchor of 0.2 s
  (one H200: 0.08 s LoRA, 0.12 s full; over it is ``SLOW``), and the engine left with the same
  weights as the reference path (else ``FAIL``).
- ``sglang``: ``bench/gpu_check.py`` under the SGLang env's python (``$SGLANG_PY``, else
  ``rollout/sglang_env.sh``'s when that env is built; the check does not build it): start,
  generate, release (sleep), resume (wake), weight sync, with the device memory in use after each
  phase; ``FAIL`` when release frees nothing.
- ``real-size build`` and ``real-size``: Fun-ASR-Nano at its published size with random weights
  (built once by ``bench/real_size.py``'s ``build_folder``), ``funrl train
  examples/fun_asr_nano_grpo.yaml`` for 3 steps.

Columns: ``seconds`` (the check's wall time, or a sub-row's seconds per call), ``s/step``, ``peak
GPU GiB`` (the whole device's memory in use, sampled from ``nvidia-smi`` every 0.5 s while the
check runs; ``n/a`` without it), ``status`` and a note. Logs go to ``$OUT/gpu_check/`` when ``$OUT``
is set (the device tool brings them back), else to ``WORK/logs``; the table also goes to
``gpu_check_all.json`` beside them.

GPU roles: the layout (``cluster.gpus: auto``, :mod:`funrl.train.layout`) puts them on the GPU
when Ray reports one, so the train checks pass no GPU keys; a run that held no GPU fails.
``--gpu-overrides`` passes ``cluster.resources.{encoder,rollout,policy}.num_gpus=0.2/0.4/0.4``
explicitly (what a checkout from before the layout needed). A device session is short:
``--time-limit`` (default 570 s) skips the checks that would start after it, and each check's
timeout is cut to what is left.

    bash bench/gpu_check.sh                       # everything
    bash bench/gpu_check.sh --only demo,sync      # of: corpus, demo, bf16, sync, sglang, real
    python bench/gpu_check_all.py --dry-run       # the commands, nothing run
    python bench/gpu_check_all.py --cpu --only demo,sync --demo-steps 3   # a smoke test of this script on CPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WORK = Path(os.environ.get("FUNRL_BENCH_WORK", Path.home() / ".cache" / "funrl" / "bench"))
GPU_SHARES = {"encoder": 0.2, "rollout": 0.4, "policy": 0.4}
SYNC_ANCHOR_S = 0.2  # one H200, through host shared memory (README: 0.08 s LoRA, 0.12 s full)
NO_GPU = "needs an NVIDIA GPU: torch.cuda.is_available() is False"


@dataclass
class Row:
    check: str
    seconds: Optional[float] = None
    s_step: Optional[float] = None
    gpu_gib: Optional[float | str] = None  # "n/a": asked for, not known
    status: str = ""
    note: str = ""


@dataclass
class Check:
    name: str
    cmd: list[str]
    timeout: float
    parse: Callable[["Check"], list[Row]] = lambda c: []  # sub-rows; raise CheckFailed to fail the check
    needs: tuple[str, ...] = ()
    cached: Callable[[], bool] = lambda: False  # True: nothing to do
    prepare: Callable[[], None] = lambda: None  # e.g. remove the run folder of an earlier run
    keys: tuple[str, ...] = ()  # what --only matches
    rows: list[Row] = field(default_factory=list)
    out: Path = Path()  # its log folder (main sets it)


class CheckFailed(Exception):
    """A check ran but what it produced is wrong: the message goes into the table, ``rows`` under it."""

    def __init__(self, message: str, rows: Optional[list[Row]] = None):
        super().__init__(message)
        self.rows = rows or []


# ----------------------------------------------------------------------------- the checks
def train_check(a, name: str, keys: tuple[str, ...], config: str, extra: list[str], timeout: float,
                needs: tuple[str, ...] = ("corpus",), detail: bool = True) -> Check:
    run_dir = a.work / "runs" / name.replace(" ", "_")
    gpu = [f"cluster.resources.{r}.num_gpus={v}" for r, v in GPU_SHARES.items()] if a.gpu_overrides else []
    gpu += ["cluster.switch_on_cpu=true"] if a.cpu else []  # the CPU smoke test reads switch spans too
    cmd = [a.python, "-m", "funrl", "train", config, f"run.output_dir={run_dir.parent}", f"run.name={run_dir.name}",
           f"data.train_manifest={a.work / 'gpu_corpus' / 'train.jsonl'}", "checkpoint.every=0",
           "checkpoint.save_final=false", "profile.plots=false", "profile.summary=false", *gpu, *extra]
    return Check(name, cmd, timeout, parse=lambda c: train_rows(run_dir, detail, expect_gpu=not a.cpu), needs=needs,
                 keys=keys, prepare=lambda: shutil.rmtree(run_dir, ignore_errors=True))


def checks(a) -> list[Check]:
    corpus, model, py = a.work / "gpu_corpus", a.real_model, a.python
    sglang = ('set -o pipefail; env="${FUNRL_SGLANG_ENV:-$HOME/.cache/funrl/venv-sglang-0.5.23}"; '
              'if [ -z "${SGLANG_PY:-}" ] && [ ! -x "$env/bin/python" ]; then echo "gpu_check: no SGLang env in $env '
              '(build it with bash rollout/sglang_env.sh, which needs the network, or set SGLANG_PY)"; exit 1; fi; '
              'PY="${SGLANG_PY:-$(bash rollout/sglang_env.sh | tail -1)}" && exec "$PY" bench/gpu_check.py "" 512')
    demo = "examples/tiny_asr_grpo.yaml"
    return [
        Check("corpus", [py, "-m", "funrl", "data", "synth", "--out", str(corpus), "--n", "64", "--seed", "0",
                         "--overwrite"], 240, keys=("corpus",), cached=lambda: (corpus / "train.jsonl").is_file()),
        train_check(a, "demo fp32", ("demo",), demo, [f"train.steps={a.demo_steps}"], 300),
        train_check(a, "demo bf16", ("bf16", "demo"), demo, [f"train.steps={a.demo_steps}", "policy.param_dtype=bfloat16"],
                    300, detail=False),
        Check("weight sync 0.6B", [py, "bench/gpu_sync_check.py", *(["--tiny"] if a.cpu else [])], 300,
              parse=sync_rows, keys=("sync",)),
        Check("sglang", ["bash", "-c", sglang], 420, parse=sglang_rows, keys=("sglang",)),
        Check("real-size build", [py, "bench/gpu_check_all.py", "--build-real-model", str(model)], 420, keys=("real",),
              cached=lambda: (model / ".built").is_file()),
        train_check(a, "real-size", ("real",), "examples/fun_asr_nano_grpo.yaml",
                    [f"model.path={model}", "train.steps=3", *a.real_extra], 540, needs=("corpus", "real-size build")),
    ]


# ----------------------------------------------------------------------------- reading the results
def train_rows(run_dir: Path, detail: bool, expect_gpu: bool) -> list[Row]:
    """The s/step row of a finished run and its phases; with ``detail`` its switches and grants too.
    Fails on a non-finite loss, grad norm or reward, and on a run that held no GPU (``expect_gpu``)."""
    path = run_dir / "profile" / "report.json"
    if not path.is_file():
        raise CheckFailed(f"no {path} (the run ended without its profile)")
    report = json.loads(path.read_text())
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        m = json.loads(line)
        bad = [k for k in ("loss", "grad_norm", "reward/total_mean")
               if isinstance(m.get(k), (int, float)) and not math.isfinite(m[k])]
        if bad:
            raise CheckFailed(f"step {m.get('step')}: {', '.join(bad)} not finite")
    if expect_gpu and set(report["devices"]) <= {"cpu"}:
        raise CheckFailed(f"the run held no GPU (its grants name {sorted(report['devices'])} only)")
    broken = report.get("ownership_violations") or []
    if broken:
        raise CheckFailed(f"{len(broken)} ownership violation(s), the first: {broken[0]}")
    steps = report["per_step"][1:] or report["per_step"]  # step 0 warms up
    if not steps:
        raise CheckFailed(f"{path}: no finished step")
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    rows = [Row("  s/step (wall)", s_step=mean([s["wall_s"] for s in steps]),
                note=f"mean of steps {steps[0]['step']}..{steps[-1]['step']}")]
    names = list(dict.fromkeys(p for s in steps for p in s["phases"]))
    rows += [Row(f"  phase {p}", s_step=mean([s["phases"].get(p, 0.0) for s in steps])) for p in names]
    rows.append(Row("  orchestration", s_step=mean([s["orchestration"] for s in steps])))
    if not detail:
        return rows
    rows += device_rows(run_dir, {s["step"] for s in steps})
    ws = report.get("weight_sync")
    if ws:
        gbs = f", {ws['gb_per_s']:.2f} GB/s" if ws.get("gb_per_s") else ""
        rows.append(Row("  weight sync bytes", note=f"{ws['bytes_per_step'] / 2**20:.1f} MiB/step{gbs}, {ws['transport']}"))
    return rows


def device_rows(run_dir: Path, steps: set[int]) -> list[Row]:
    """Over ``steps``, from ``profile/spans.jsonl``: the driver's wake and sleep spans per role (the
    switch costs: seconds per call, per step), and per role and device the time it held the device
    per step, with the most one of its actors held at the grant and kept after it (``held_bytes``,
    ``kept_bytes``), else n/a."""
    switch: dict[tuple[str, str], list[float]] = {}
    held: dict[tuple[str, str], float] = {}
    mem: dict[str, dict[tuple[str, str], float]] = {"held_bytes": {}, "kept_bytes": {}}
    for line in (run_dir / "profile" / "spans.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("step") not in steps:
            continue
        if r.get("type") == "span" and r.get("worker") == "driver" and r.get("name") in ("wake", "sleep"):
            switch.setdefault((r["name"], r.get("args", {}).get("role", "?")), []).append(r["end"] - r["start"])
        elif r.get("type") == "grant":
            key = (r["role"], r["device"])
            held[key] = held.get(key, 0.0) + r["end"] - r["start"]
            for field_, per in mem.items():
                for v in (r.get(field_) or {}).values():  # {actor name: bytes}
                    per[key] = max(per.get(key, 0.0), v / 2**30)
    n = len(steps)
    rows = [Row(f"  {kind} {role}", seconds=sum(ts) / len(ts), s_step=sum(ts) / n, note=f"{len(ts)} calls")
            for (kind, role), ts in sorted(switch.items(), key=lambda kv: (kv[0][1], kv[0][0] != "wake"))]
    if not switch:
        rows.append(Row("  wake/sleep", note="no switch spans (a CPU run makes no switch calls)"))
    for (role, dev), t in sorted(held.items()):
        at, kept = mem["held_bytes"].get((role, dev)), mem["kept_bytes"].get((role, dev))
        note = (f"on {dev}; " + ("no memory recorded at grants" if at is None else "GiB column: held at grant")
                + (f", kept after release {kept:.2f} GiB" if kept is not None else ""))
        rows.append(Row(f"  grant {role}", s_step=t / n, gpu_gib="n/a" if at is None else at, note=note))
    return rows


def sync_rows(c: Check) -> list[Row]:
    rows = json.loads((c.out / "gpu_sync_check.json").read_text())
    out, problems = [], []
    for r in rows:
        if "error" in r:
            problems.append(f"{r['mode']}: {r['error'][:120]}")
            continue
        if "path" not in r:
            continue
        status, note = "", (f"{r['MB']:.3g} MB" if r.get("MB") else "")
        if r["path"] == "new, shm":  # the transport the actors use
            status = "ok" if r["s"] <= SYNC_ANCHOR_S else "SLOW"
            note = f"anchor <= {SYNC_ANCHOR_S} s (one H200)"
            if r.get("same_weights") is False or r.get("same_after_sleep_wake") is False:
                problems.append(f"{r['mode']}: the engine's weights differ from the reference path's")
        out.append(Row(f"  {r['mode']}: {r['path']}", seconds=r["s"], status=status, note=note))
    if problems:
        raise CheckFailed("; ".join(problems), out)
    return out


def sglang_rows(c: Check) -> list[Row]:
    rows = json.loads((c.out / "gpu_check.json").read_text())
    used = {r["phase"]: r["device_used_gib"] for r in rows}
    out = [Row(f"  {r['phase']}", seconds=r["seconds"], gpu_gib=r["peak_alloc_gib"],
               note=f"device used after: {r['device_used_gib']:.2f} GiB" + (f"; {r['note']}" if r["note"] else ""))
           for r in rows]
    freed = used.get("generate", 0.0) - used.get("sleep (release)", 0.0)
    out.append(Row("  release frees", status="ok" if freed > 0 else "FAIL", note=f"{freed:.2f} GiB"))
    if freed <= 0:
        raise CheckFailed(f"release freed {freed:.2f} GiB of device memory", out)
    return out


# ----------------------------------------------------------------------------- running
class GpuMemory:
    """The device's peak memory in use (GiB, all GPUs summed) while a check runs, from nvidia-smi."""

    def __init__(self):
        self.tool = shutil.which("nvidia-smi")

    def sample(self) -> Optional[float]:
        try:
            out = subprocess.run([self.tool, "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=5).stdout
            return sum(float(x) for x in out.split()) / 1024  # MiB -> GiB
        except (OSError, ValueError, subprocess.SubprocessError):
            return None

    def watch(self, proc: subprocess.Popen) -> Callable[[], Optional[float]]:
        if self.tool is None:
            return lambda: None
        peak: list[float] = []

        def loop():
            while proc.poll() is None:
                v = self.sample()
                if v is not None:
                    peak.append(v)
                time.sleep(0.5)

        t = threading.Thread(target=loop, daemon=True)
        t.start()
        return lambda: (t.join(2), max(peak) if peak else None)[1]


def first_error(log: Path) -> str:
    """The first line of the log that names an error, else its last non-empty line."""
    lines = [x.strip() for x in log.read_text(errors="replace").splitlines() if x.strip()]
    for x in lines:
        head = x.split(":", 1)[0].split("(", 1)[0]
        if head.endswith(("Error", "Exception", "Died")) or x.startswith(("funrl ", "error:", "gpu_check")):
            return x[:200]
    return lines[-1][:200] if lines else "(no output)"


def kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def run_check(c: Check, env: dict, deadline: float, mem: GpuMemory) -> Row:
    row = Row(c.name)
    if c.cached():
        row.status, row.note = "ok", "cached"
        return row
    left = deadline - time.monotonic()
    if left < 10:
        row.status, row.note = "SKIP", "--time-limit reached"
        return row
    timeout = min(c.timeout, left)
    c.prepare()
    c.out.mkdir(parents=True, exist_ok=True)
    log = c.out / "log.txt"
    print(f"== {c.name} (timeout {timeout:.0f} s): {shlex.join(c.cmd)}", flush=True)
    t0 = time.monotonic()
    with open(log, "w") as f:  # its own session: a timeout kills the whole process group
        proc = subprocess.Popen(c.cmd, cwd=REPO, env={**env, "OUT": str(c.out)}, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
        peak = mem.watch(proc)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
            kill_group(proc.pid, signal.SIGTERM)  # funrl's driver stops its Ray cluster on SIGTERM
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        kill_group(proc.pid, signal.SIGKILL)  # whatever the check left (a Ray daemon holding GPU memory)
        proc.wait()
    row.seconds, row.gpu_gib = time.monotonic() - t0, peak()
    row.gpu_gib = "n/a" if row.gpu_gib is None else row.gpu_gib
    if rc is None:
        row.status, row.note = "FAIL", f"timed out after {timeout:.0f} s; last: {first_error(log)}"
    elif rc != 0:
        row.status, row.note = "FAIL", f"exit {rc}: {first_error(log)}"
    else:
        try:
            c.rows = c.parse(c)
            row.status = "ok"
        except CheckFailed as e:
            row.status, row.note, c.rows = "FAIL", str(e), e.rows
        except Exception as e:  # noqa: BLE001 - a parse bug is this check's failure, not the table's
            row.status, row.note = "FAIL", f"reading its results: {type(e).__name__}: {e}"
    row.s_step = next((r.s_step for r in c.rows if r.check.strip() == "s/step (wall)"), None)
    flags = {r.status for r in c.rows}
    if row.status == "ok" and flags & {"FAIL", "SLOW"}:  # a sub-row over its anchor marks the check
        row.status = "FAIL" if "FAIL" in flags else "SLOW"
    return row


def fmt(v, digits: int = 3) -> str:
    if v is None:
        return ""
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def table(rows: list[Row]) -> str:
    head = ["check", "seconds", "s/step", "peak GPU GiB", "status", "note"]
    cells = [[r.check, fmt(r.seconds), fmt(r.s_step), fmt(r.gpu_gib, 2), r.status, r.note] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head[:-1])]
    line = lambda c: "  ".join([c[0].ljust(widths[0]), *(x.rjust(w) for x, w in zip(c[1:-1], widths[1:])), c[-1]])  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths] + ["-" * 4]), *map(line, cells)])


def selected(all_checks: list[Check], only: list[str]) -> list[Check]:
    if not only:
        return all_checks
    known = sorted({k for c in all_checks for k in c.keys})
    unknown = [o for o in only if o not in known]
    if unknown:
        sys.exit(f"gpu_check: --only {','.join(unknown)}: not a check (choose from {', '.join(known)})")
    names = {c.name for c in all_checks if set(c.keys) & set(only)}
    while True:  # and what they need (the corpus of a training run)
        more = {n for c in all_checks if c.name in names for n in c.needs} - names
        if not more:
            return [c for c in all_checks if c.name in names]
        names |= more


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="print the commands it would run, run nothing")
    ap.add_argument("--only", default="", help="comma-separated: corpus, demo, bf16, sync, sglang, real")
    ap.add_argument("--demo-steps", type=int, default=5, help="steps of each demo run (the first is not timed)")
    ap.add_argument("--real-extra", nargs="*", default=[], metavar="key=value",
                    help="more overrides for the real-size run (e.g. train.prompts_per_step=8)")
    ap.add_argument("--time-limit", type=float, default=570.0, help="no check starts after this many seconds")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK / "gpu_check", help="corpus, runs and logs")
    ap.add_argument("--real-model", type=Path, default=DEFAULT_WORK / "fun_asr_nano_830m",
                    help="the published-size Fun-ASR-Nano folder (built there once)")
    ap.add_argument("--python", default=sys.executable, help="the python of funrl train and the torch checks")
    ap.add_argument("--sglang-python", default=os.environ.get("SGLANG_PY", ""),
                    help="the SGLang env's python (default $SGLANG_PY, else rollout/sglang_env.sh's)")
    ap.add_argument("--gpu-overrides", action="store_true",
                    help="pass cluster.resources.{encoder,rollout,policy}.num_gpus=0.2/0.4/0.4 to the train checks")
    ap.add_argument("--cpu", action="store_true", help="run without a GPU (a smoke test of this script)")
    ap.add_argument("--build-real-model", type=Path, metavar="DIR",
                    help="(what the real-size build check runs) build the published-size model in DIR, then exit")
    a = ap.parse_args(argv)
    a.work = a.work.expanduser().resolve()
    a.real_model = a.real_model.expanduser().resolve()
    a.gpu_overrides = a.gpu_overrides and not a.cpu
    return a


def gpu_problem() -> Optional[str]:
    try:
        import torch
    except ImportError as e:
        return f"needs torch with CUDA: import torch failed ({e})"
    return None if torch.cuda.is_available() else NO_GPU


def main(argv=None) -> int:
    a = parse_args(argv)
    if a.build_real_model:
        sys.path.insert(0, str(REPO / "bench"))
        import real_size

        real_size.build_folder(a.build_real_model)
        return 0
    todo = selected(checks(a), [o for o in a.only.split(",") if o])
    logs = Path(os.environ["OUT"]) / "gpu_check" if os.environ.get("OUT") else a.work / "logs"
    for c in todo:
        c.out = logs / c.name.replace(" ", "_")
    if a.dry_run:
        print(f"# from {REPO}; each check in its own process group, OUT=<its log folder>")
        for c in todo:
            cond = "  # skipped when cached" if c.name in ("corpus", "real-size build") else ""
            print(f"# {c.name} (timeout {c.timeout:.0f} s{', needs ' + ', '.join(c.needs) if c.needs else ''})")
            print(shlex.join(c.cmd) + cond)
        return 0
    problem = None if a.cpu else gpu_problem()
    if problem:
        print(f"gpu_check: {problem}", file=sys.stderr)
        return 2
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
           **({"SGLANG_PY": a.sglang_python} if a.sglang_python else {})}
    deadline, mem, rows, status = time.monotonic() + a.time_limit, GpuMemory(), [], {}
    for c in todo:
        failed = [n for n in c.needs if status.get(n, "ok") != "ok"]
        row = (Row(c.name, status="SKIP", note=f"{', '.join(failed)} did not pass") if failed
               else run_check(c, env, deadline, mem))
        status[c.name] = row.status
        rows += [row, *c.rows]
        print(f"   {row.status} {c.name} {fmt(row.seconds)} s {row.note}", flush=True)
    text = table(rows)
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip() if shutil.which("nvidia-smi") else "no nvidia-smi"
    print(f"\nGPU: {gpu}; logs: {logs}\n{text}")
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "gpu_check_all.json").write_text(json.dumps([r.__dict__ for r in rows], indent=1))
    fails = [r.check for r in rows if r.status == "FAIL" and not r.check.startswith(" ")]
    slow = [r.check for r in rows if r.status == "SLOW" and not r.check.startswith(" ")]
    print(f"\n{len(fails)} check(s) failed" + (f": {', '.join(fails)}" if fails else "")
          + (f"; over their anchor: {', '.join(slow)}" if slow else ""))
    return 1 if fails else 0


if __name__ == "__main__":
    raise SystemExit(main())
