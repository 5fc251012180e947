"""Reading a run's profile back: ``{run_dir}/profile/spans.jsonl`` into steps, spans and grants.

A leaf module: the :class:`~funrl.profiling.profiler.Profiler` writes the file, and the outputs
(report, trace, plots) read it through :func:`load_records`.
"""

from __future__ import annotations

from pathlib import Path


def profile_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "profile"


def load_records(run_dir: str | Path) -> dict[str, list[dict]]:
    """Read ``{run_dir}/profile/spans.jsonl`` into ``{"steps", "spans", "grants", "superseded"}``.

    A step number belongs to the last session (Profiler opening) that finished it: a resumed run
    redoes the steps after its checkpoint. Records of that step number from any other session (the
    crashed attempt, or work a resumed run tagged with an old step) go to ``superseded`` (with
    their ``type``): the trace shows them, the report counts but does not add them.
    """
    path = profile_dir(run_dir) / "spans.jsonl"
    if not path.is_file():
        raise FileNotFoundError(
            f"no profile data at {path}: it is written by `funrl train` when profile.enabled=true "
            "(the default), or by funrl.profiling.Profiler(run_dir) in your own driver"
        )
    from funrl.data.jsonl import read_jsonl

    sessions: list[list[dict]] = [[]]
    for _, rec in read_jsonl(path, what="profile", torn_tail_ok=True):  # a crash mid-write tears the last line
        if rec.get("type") == "session":
            sessions.append([])
        else:
            sessions[-1].append(rec)
    return _latest_per_step(sessions, path)


def _latest_per_step(sessions: list[list[dict]], path: Path) -> dict[str, list[dict]]:
    owner: dict[int, int] = {}  # step -> last session index with a step record for it
    for i, recs in enumerate(sessions):
        for r in recs:
            if r.get("type") == "step":
                owner[r["step"]] = i
    out: dict[str, list[dict]] = {"steps": [], "spans": [], "grants": [], "superseded": []}
    kinds = {"step": "steps", "span": "spans", "grant": "grants"}
    for i, recs in enumerate(sessions):
        for r in recs:
            kind = kinds.get(r.get("type"))
            if kind is None:
                raise ValueError(f"{path}: unknown record type {r.get('type')!r} in {r!r}")
            if owner.get(r.get("step"), i) != i:  # another session finished this step number
                out["superseded"].append(r)
                continue
            out[kind].append({k: v for k, v in r.items() if k != "type"})
    out["steps"].sort(key=lambda s: s["step"])
    return out
