"""Profiling: where a GRPO step's time goes.

Each phase (encode, rollout, reward, advantage, logprob_old, logprob_ref, update, weight_sync,
checkpoint, wake, sleep, idle) is a named span per step and per worker, timed where the work
happens with wall-clock ``time.time()``. Workers (Ray actors) record with :class:`SpanRecorder`
and ship spans back as plain dicts; the driver's :class:`Profiler` adds step wall times and
device-ownership grants and appends everything to ``{run_dir}/profile/spans.jsonl`` once per step.
Everything else — the breakdown table (:mod:`.report`), the Chrome/Perfetto trace (:mod:`.trace`),
the pie chart and per-step bars (:mod:`.plots`) — is computed from that file alone.

Driver::

    prof = Profiler(run_dir, enabled=cfg.profile.enabled)
    for step in range(n):
        with prof.step(step):
            with prof.span("rollout", step=step), prof.hold("cuda:0", "rollout", step):
                out = ray.get(rollout.generate.remote(...))
            prof.add(ray.get(rollout.drain_spans.remote()))
    report = prof.close()

Actor::

    self.rec = SpanRecorder("rollout0")
    with self.rec.span("rollout", step=step) as s:
        ...
        s.args["tokens"] = n_generated
"""

from funrl.profiling.config import ProfileConfig
from funrl.profiling.grants import KeptMemory, Violation, check_exclusive
from funrl.profiling.outputs import write_outputs
from funrl.profiling.profiler import Profiler
from funrl.profiling.spans import DRIVER
from funrl.profiling.records import load_records
from funrl.profiling.report import build_report, print_report
from funrl.profiling.spans import PHASES, Span, SpanRecorder
from funrl.profiling.torch_capture import torch_profile

__all__ = [
    "DRIVER",
    "PHASES",
    "ProfileConfig",
    "Profiler",
    "Span",
    "SpanRecorder",
    "KeptMemory",
    "Violation",
    "build_report",
    "check_exclusive",
    "load_records",
    "print_report",
    "torch_profile",
    "write_outputs",
]
