"""The driver's profiler: step wall times, driver spans, spans from actors, device grants.

Everything is buffered in memory and appended to ``{run_dir}/profile/spans.jsonl`` by
:meth:`Profiler.flush` (automatically at the end of each ``with prof.step(...)``), one JSON object
per line, so a crashed run keeps every step it finished. Record types::

    {"type": "session", "start": t, "pid": 123}                # each Profiler opening the file
    {"type": "step", "step": 3, "start": t0, "end": t1}       # step wall time
    {"type": "span", "name", "worker", "step", "start", "end", "args"}
    {"type": "grant", "device", "role", "step", "start", "end"}

A resumed run appends a new session to the same file. :func:`load_records` keeps, for each step,
only the records of the last session that finished it, so steps redone after a resume are not
counted twice (the others are kept apart as ``superseded``). :meth:`Profiler.close` writes the Chrome trace, ``report.json`` and (optionally) the PNGs,
and returns the report dict.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from funrl.profiling.grants import check_grant
from funrl.profiling.outputs import write_outputs
from funrl.profiling.records import profile_dir
from funrl.profiling.spans import DRIVER, Span, SpanRecorder, check_span


class Profiler:
    """Collects one run's timeline in the driver. With ``enabled=False`` every method is a no-op."""

    def __init__(self, run_dir: str | Path, enabled: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.dir = profile_dir(run_dir)
        self.path = self.dir / "spans.jsonl"
        self.enabled = enabled
        self._recs: dict[str, SpanRecorder] = {DRIVER: SpanRecorder(DRIVER, enabled=enabled)}
        self._records: list[dict] = []  # steps, grants, spans added from workers
        if enabled:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._records.append({"type": "session", "start": time.time(), "pid": os.getpid()})

    @contextmanager
    def step(self, step: int) -> Iterator[None]:
        """Mark the wall time of one training step; flushes to disk when the step ends.

        A step that raises is flushed without a step record: its spans stay in the trace and the
        report counts them as unfinished, not as a normal step.
        """
        start = time.time()
        try:
            yield
        except BaseException:
            self.flush()
            raise
        if self.enabled:
            self._records.append({"type": "step", "step": step, "start": start, "end": time.time()})
            self.flush()

    def span(self, name: str, step: int | None = None, worker: str = DRIVER, **args: Any) -> Span:
        """Time a ``with`` block as phase ``name`` (default worker: the driver)."""
        rec = self._recs.get(worker)
        if rec is None:
            rec = self._recs[worker] = SpanRecorder(worker, enabled=self.enabled)
        return rec.span(name, step, **args)

    def add(self, spans: list[dict]) -> None:
        """Add spans drained from workers (``SpanRecorder.drain()``), checking each one."""
        if not self.enabled:
            return
        for i, s in enumerate(spans):
            check_span(s, where=f"Profiler.add item {i}")
        self._records.extend(spans)

    def grant(self, device: str, role: str, step: int | None, start: float, end: float, **memory: Any) -> None:
        """Log that ``role`` owned ``device`` from ``start`` to ``end`` (``time.time()`` seconds);
        ``memory``: what its actors reported (``held_bytes``, ``kept_bytes``, ``limit_bytes``:
        :mod:`funrl.train.ownership`)."""
        if self.enabled:
            g = {"device": device, "role": role, "step": step, "start": float(start), "end": float(end), **memory}
            check_grant(g, where="Profiler.grant")
            self._records.append({"type": "grant", **g})

    @contextmanager
    def hold(self, device: str, role: str, step: int | None) -> Iterator[None]:
        """Grant ``device`` to ``role`` for the ``with`` block."""
        start = time.time()
        try:
            yield
        finally:
            self.grant(device, role, step, start, time.time())

    def flush(self) -> None:
        """Append everything recorded since the last flush to ``spans.jsonl``."""
        if not self.enabled:
            return
        records = self._records
        self._records = []
        lines = [json.dumps(r if "type" in r else {"type": "span", **r}) for r in records]
        for rec in self._recs.values():
            lines += [json.dumps({"type": "span", **s}) for s in rec.drain()]
        if lines:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")

    def close(self, plots: bool = True) -> dict | None:
        """Flush, then write ``trace.json``, ``report.json`` and the PNGs; return the report."""
        if not self.enabled:
            return None
        self.flush()
        return write_outputs(self.run_dir, plots=plots)
