"""Config section ``profile``: the time breakdown of a run (spans, trace, pictures, torch captures)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List


@dataclass
class ProfileConfig:
    enabled: bool = True  # record phase spans and grants to {run_dir}/profile/spans.jsonl
    torch_steps: List[int] = field(default_factory=list)  # steps captured with torch.profiler
    plots: bool = True  # write the pie chart and per-step bars at the end of a run
    summary: bool = True  # print the breakdown table at the end of a run
