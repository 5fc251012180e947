"""Optional ``torch.profiler`` capture of chosen steps (config ``profile.torch_steps=[5]``).

>>> with torch_profile("runs/x", step=3, steps=[5], worker="policy0"):  # not a chosen step:
...     pass                                                             # nothing is captured

For a chosen step the block runs under ``torch.profiler.profile`` (CPU, plus CUDA when a GPU is
present) and the Chrome trace goes to ``{run_dir}/profile/torch/{worker}_step{step}.json``; open it
in Perfetto beside ``profile/trace.json``.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence


def torch_trace_path(run_dir: str | Path, step: int, worker: str) -> Path:
    return Path(run_dir) / "profile" / "torch" / f"{worker}_step{step}.json"


@contextmanager
def torch_profile(run_dir: str | Path, step: int, steps: Sequence[int], worker: str) -> Iterator[object | None]:
    """Profile the block with torch.profiler if ``step`` is in ``steps``; yields the profiler or None."""
    if step not in steps:
        yield None
        return
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    out = torch_trace_path(run_dir, step, worker)
    out.parent.mkdir(parents=True, exist_ok=True)
    with profile(activities=activities, record_shapes=True) as prof:
        yield prof
    prof.export_chrome_trace(str(out))
