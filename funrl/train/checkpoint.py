"""Atomic checkpoints: a step is written to a temporary folder and renamed into place.

A folder ``checkpoints/step_000010`` exists only when complete, so a crash mid-write never
leaves a half checkpoint that ``resume=latest`` would pick. Layout::

    step_000010/
      trainer_state.json   step, data position, driver RNG states, the run's config and its
                           sha256 (a resume compares the hash, then if it differs the keys:
                           funrl.train.run_dir)
      policy/              written by the policy worker (weights or PEFT adapter, optimizer,
                           scheduler, RNG states; see funrl.policy.fsdp_worker)
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

STEP_RE = re.compile(r"^step_(\d{6,})$")
TMP_RE = re.compile(r"^\.step_(\d{6,})\.tmp-(\d+)$")  # being written by process PID (or left by it)


def checkpoint_dir(run_dir: Path) -> Path:
    return run_dir / "checkpoints"


def step_name(step: int) -> str:
    return f"step_{step:06d}"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_RE.match(p.name)) and p.is_dir()]
    return sorted(found)


def remove_partial(run_dir: Path) -> list[Path]:
    """Remove the temporary folders of checkpoint writes that never finished (their writer was
    killed); a folder whose writer is still alive is left alone. Returns the removed folders."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    removed = []
    for p in sorted(root.iterdir()):
        m = TMP_RE.match(p.name)
        if not m:
            continue
        pid = int(m.group(2))
        if pid != os.getpid() and _alive(pid):
            continue  # another process is writing it now
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def resolve_resume(run_dir: Path, resume: str) -> Path | None:
    """``""`` -> None; ``"latest"`` -> newest complete checkpoint (None if there is none); a path."""
    if not resume:
        return None
    if resume == "latest":
        found = list_checkpoints(run_dir)
        return found[-1][1] if found else None
    p = Path(resume)
    if not (p / "trainer_state.json").is_file():
        raise FileNotFoundError(
            f"train.resume={resume!r}: no checkpoint there (expected {p}/trainer_state.json); "
            f"use resume=latest or one of {[str(c) for _, c in list_checkpoints(run_dir)]}"
        )
    return p


def save_checkpoint(
    run_dir: Path, step: int, state: dict[str, Any], write_parts: Callable[[Path], None], keep_last: int
) -> Path:
    """Write ``state`` and whatever ``write_parts(tmp_folder)`` writes, then rename atomically."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / step_name(step)
    tmp = root / f".{step_name(step)}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        write_parts(tmp)
        with open(tmp / "trainer_state.json", "w") as f:
            json.dump(state, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        if final.exists():  # re-saving the same step (e.g. final == periodic)
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _, old in list_checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_state(ckpt: Path) -> dict[str, Any]:
    with open(ckpt / "trainer_state.json") as f:
        return json.load(f)
