"""Profiler overhead: the cost of one span, of one step's bookkeeping, and a loop on vs off.

    .venv/bin/python bench/profiler_overhead.py [--steps 60] [--work-ms 20]

Prints (never asserts) three figures:
1. ns per span: ``with rec.span(...)`` in a tight loop, drained every 200 spans;
2. µs per step of bookkeeping: a step with about the trainer's span count (11 driver spans,
   2 grants, 14 spans drained from an "actor" and ``add``-ed) and its flush to disk, no work;
3. a GRPO-shaped loop (11 phases, each ``--work-ms`` of torch matmuls on one thread) with the
   profiler on and off, interleaved to share the machine's noise: the median step-time ratio.
The goal is ≤ 1% (issue 9); figure 2 divided by a real step time is the precise number, figure 3
checks it end to end but carries the shared machine's noise.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch

from funrl.profiling import PHASES, Profiler, SpanRecorder

DRIVER_PHASES = [p for p in PHASES if p != "idle"][:11]


def ns_per_span(n: int = 200, rounds: int = 500) -> float:
    """Best-of-rounds cost of a span; drained every ``n`` spans as a worker drains once per step."""
    rec = SpanRecorder("bench")
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(n):
            with rec.span("update", step=i):
                pass
        best = min(best, time.perf_counter() - t0)
        rec.drain()
    return best / n * 1e9


def step(prof: Profiler, actor: SpanRecorder, n: int, work) -> None:
    with prof.step(n):
        for phase in DRIVER_PHASES:
            with prof.span(phase, step=n):
                if phase in ("rollout", "update"):
                    with prof.hold("cpu0", phase, n), actor.span(phase, step=n, tokens=512):
                        work()
                else:
                    work()
        prof.add(actor.drain())


def bookkeeping_us(run_dir: str, steps: int = 500) -> tuple[float, float]:
    """(median, mean) µs of one step's profiling work with no work inside the phases."""
    prof, actor = Profiler(run_dir), SpanRecorder("rollout0")
    ts = []
    for n in range(steps):
        t0 = time.perf_counter()
        for _ in range(12):  # spans recorded by an "actor", plus the 2 it records in step()
            actor.record("rollout", 0.0, 1.0, step=n, tokens=512)
        step(prof, actor, n, lambda: None)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e6, statistics.mean(ts) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--work-ms", type=float, default=20.0, help="torch work per phase, ms (roughly)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    a = torch.randn(192, 192)
    t0 = time.perf_counter()
    for _ in range(50):
        a @ a
    reps = max(1, round(args.work_ms / 1e3 / ((time.perf_counter() - t0) / 50)))

    def work() -> None:
        for _ in range(reps):
            a @ a

    print(f"span cost: {ns_per_span():.0f} ns per span (best of 500 rounds of 200)")
    with tempfile.TemporaryDirectory() as tmp:
        bk, bk_mean = bookkeeping_us(tmp + "/bk")
        print(f"bookkeeping: {bk:.0f} µs per step median, {bk_mean:.0f} µs mean "
              "(11 driver spans, 2 grants, 12+2 actor spans, flush)")
        on, off = Profiler(tmp + "/on"), Profiler(tmp + "/off", enabled=False)
        actor_on, actor_off = SpanRecorder("rollout0"), SpanRecorder("rollout0", enabled=False)
        t_on, t_off = [], []
        pair = [(on, actor_on, t_on), (off, actor_off, t_off)]
        for n in range(args.steps):  # interleaved, order alternating, so both see the same load
            for prof, actor, out in pair if n % 2 else pair[::-1]:
                t0 = time.perf_counter()
                step(prof, actor, n, work)
                out.append(time.perf_counter() - t0)
        m_on, m_off = statistics.median(t_on), statistics.median(t_off)
    print(f"loop: median step {m_off * 1e3:.1f} ms off, {m_on * 1e3:.1f} ms on; "
          f"ratio on/off = {m_on / m_off:.4f}")
    print(f"bookkeeping / step time = {bk / 1e6 / m_off * 100:.3f}% (goal <= 1%); "
          f"steps of {bk / 1e6 / 0.01 * 1e3:.0f} ms or longer meet the goal")


if __name__ == "__main__":
    main()
