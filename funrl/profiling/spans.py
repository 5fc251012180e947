"""Spans: one timed phase of one step on one worker, as a plain dict.

A span is recorded where the work happens (often inside a Ray actor in another process) with
wall-clock ``time.time()`` seconds, so spans from different processes line up on one timeline
(across nodes this relies on the hosts' clocks being synchronised, e.g. by NTP). Recording costs
about a microsecond: two clock reads, one small object and one list append, no I/O. The worker
ships its spans to the driver with :meth:`SpanRecorder.drain`; the driver hands them to
``Profiler.add``.

A span dict has exactly these keys::

    {"name": "rollout", "worker": "rollout0", "step": 3, "start": 1.7e9, "end": 1.7e9 + 2.1,
     "args": {"tokens": 4096}}

``step`` may be ``None`` for work outside any step (e.g. a final checkpoint). ``args`` holds
small JSON-serialisable facts; the report reads ``tokens`` from it for tokens/s.

>>> rec = SpanRecorder("policy0")
>>> with rec.span("update", step=3) as s:
...     s.args["tokens"] = 128
>>> [(d["name"], d["worker"], d["step"], d["args"]) for d in rec.drain()]
[('update', 'policy0', 3, {'tokens': 128})]
>>> rec.drain()
[]
"""

from __future__ import annotations

import time
from typing import Any

DRIVER = "driver"  # the worker name of the driver's own spans

# The phases funrl's trainer records, in pipeline order (tables and charts use this order;
# any other name is accepted and listed after these).
PHASES = (
    "encode",
    "rollout",
    "reward",
    "advantage",
    "logprob_old",
    "logprob_ref",
    "update",
    "weight_sync",
    "eval",
    "checkpoint",
    "wake",
    "sleep",
    "idle",
)

SPAN_KEYS = ("name", "worker", "step", "start", "end", "args")

_now = time.time


class Span:
    """The open span returned by ``SpanRecorder.span``; add facts to ``args`` before it closes.

    Closing it appends the object itself to its recorder (no allocation in the hot path);
    ``SpanRecorder.drain`` turns it into the plain dict.
    """

    __slots__ = ("_out", "name", "worker", "step", "args", "start", "end")

    def __init__(self, out: list, name: str, worker: str, step: int | None, args: dict) -> None:
        self._out = out
        self.name = name
        self.worker = worker
        self.step = step
        self.args = args
        self.start = self.end = 0.0

    def __enter__(self) -> "Span":
        self.start = _now()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.end = _now()
        if exc_type is not None:  # the time was spent: keep the span, say it failed
            self.args["error"] = exc_type.__name__
        self._out.append(self)

    def as_dict(self) -> dict:
        return {"name": self.name, "worker": self.worker, "step": self.step,
                "start": self.start, "end": self.end, "args": self.args}


class SpanRecorder:
    """Collects spans in memory for one worker; usable in any process (driver or Ray actor)."""

    def __init__(self, worker: str, enabled: bool = True) -> None:
        self.worker = worker
        self.enabled = enabled
        self._spans: list[Span | dict] = []

    def span(self, name: str, step: int | None = None, **args: Any) -> Span:
        """Time the ``with`` block as phase ``name`` of ``step``; ``args`` go into the span."""
        return Span(self._spans if self.enabled else [], name, self.worker, step, args)

    def record(self, name: str, start: float, end: float, step: int | None = None, **args: Any) -> None:
        """Add a span timed elsewhere (``time.time()`` seconds)."""
        if self.enabled:
            self._spans.append(
                {"name": name, "worker": self.worker, "step": step, "start": float(start),
                 "end": float(end), "args": args}
            )

    def drain(self) -> list[dict]:
        """Return the spans recorded since the last drain (as plain dicts) and forget them."""
        out, self._spans = self._spans, []
        return [s.as_dict() if isinstance(s, Span) else s for s in out]


def check_span(span: Any, where: str = "span") -> None:
    """Raise ValueError naming the problem if ``span`` is not a well-formed span dict."""
    if not isinstance(span, dict):
        raise ValueError(f"{where}: expected a span dict from SpanRecorder.drain(), got {type(span).__name__}")
    missing = [k for k in SPAN_KEYS if k not in span]
    if missing:
        raise ValueError(f"{where}: span {span!r} lacks {missing}; spans come from SpanRecorder.drain()")
    if not isinstance(span["name"], str) or not isinstance(span["worker"], str):
        raise ValueError(f"{where}: span name and worker must be strings, got {span!r}")
    if span["step"] is not None and not isinstance(span["step"], int):
        raise ValueError(f"{where}: span step must be an int or None, got {span['step']!r}")
    if not float(span["end"]) >= float(span["start"]):
        raise ValueError(f"{where}: span ends before it starts: {span!r}")
    if not isinstance(span["args"], dict):
        raise ValueError(f"{where}: span args must be a dict, got {span['args']!r}")
