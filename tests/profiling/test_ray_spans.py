"""A real little run: spans recorded inside a Ray actor (another process) and in the driver."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time

import pytest

from funrl.profiling import Profiler, SpanRecorder, check_exclusive, load_records

ray = pytest.importorskip("ray")  # a declared dependency; importorskip only guards odd installs


def worker_class():
    """A toy rollout worker that sleeps as its "generation" and reports token counts.

    Defined inside a function so that Ray pickles the class by value: the actor process cannot
    import this test module.
    """

    class Worker:
        def __init__(self, name: str) -> None:
            self.rec = SpanRecorder(name)

        def generate(self, step: int, seconds: float) -> int:
            with self.rec.span("wake", step=step):
                pass
            with self.rec.span("rollout", step=step) as s:
                time.sleep(seconds)
                s.args["tokens"] = 10 * (step + 1)
            with self.rec.span("sleep", step=step):
                pass
            return os.getpid()

        def drain_spans(self) -> list[dict]:
            return self.rec.drain()

    return Worker


@pytest.fixture(scope="module")
def ray_local():
    if ray.is_initialized():  # another test module's cluster: use it, leave it to its owner
        yield
        return
    tmp = tempfile.mkdtemp(prefix="rp", dir="/tmp")  # short: Ray's socket paths have a length limit
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"RAY_USAGE_STATS_ENABLED": "0",
                     "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}.items():
            mp.setenv(k, v)
        ray.init(num_cpus=2, include_dashboard=False, _temp_dir=tmp, configure_logging=False)
        yield
        ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slow
def test_actor_and_driver_spans_land_on_separate_tracks_with_consistent_times(ray_local, tmp_path):
    worker = ray.remote(num_cpus=1)(worker_class()).remote("rollout0")
    prof = Profiler(tmp_path)
    pids = set()
    for step in range(3):
        with prof.step(step):
            with prof.span("rollout", step=step), prof.hold("cpu0", "rollout", step):
                pids.add(ray.get(worker.generate.remote(step, 0.05)))
            with prof.span("update", step=step), prof.hold("cpu0", "policy", step):
                time.sleep(0.01)
            prof.add(ray.get(worker.drain_spans.remote()))
    report = prof.close()
    assert pids and os.getpid() not in pids  # the actor really ran in another process

    recs = load_records(tmp_path)
    driver = {(s["step"], s["name"]): s for s in recs["spans"] if s["worker"] == "driver"}
    actor = [s for s in recs["spans"] if s["worker"] == "rollout0"]
    assert [(s["step"], s["name"]) for s in actor] == [(n, p) for n in range(3) for p in ("wake", "rollout", "sleep")]
    for s in actor:  # the actor's wall clock nests inside the driver span that waited for it
        outer = driver[(s["step"], "rollout")]
        assert outer["start"] <= s["start"] <= s["end"] <= outer["end"], (s, outer)
    for n in range(3):
        step = recs["steps"][n]
        assert step["start"] <= driver[(n, "rollout")]["start"] < driver[(n, "update")]["end"] <= step["end"]
    assert check_exclusive(recs["grants"]) == []

    trace = json.loads((tmp_path / "profile" / "trace.json").read_text())
    threads = {e["args"]["name"]: e["tid"] for e in trace["traceEvents"] if e["name"] == "thread_name"}
    assert {"driver", "rollout0", "cpu0", "steps"} <= set(threads)
    assert threads["driver"] != threads["rollout0"]
    tids = {(e["name"], e["tid"]) for e in trace["traceEvents"] if e["ph"] == "X" and e["cat"] == "phase"}
    assert ("wake", threads["rollout0"]) in tids and ("update", threads["driver"]) in tids
    assert report["throughput"]["rollout"]["tokens"] == 10 + 20 + 30
    # phases + orchestration overhead add up to the measured step wall time
    wall = sum(s["end"] - s["start"] for s in recs["steps"])
    assert sum(p["total_s"] for p in report["phases"].values()) == pytest.approx(wall)
    assert report["phases"]["rollout"]["total_s"] == pytest.approx(
        sum(driver[(n, "rollout")]["end"] - driver[(n, "rollout")]["start"] for n in range(3)))
    assert report["switches"]["rollout0"]["wake"]["count"] == 3
