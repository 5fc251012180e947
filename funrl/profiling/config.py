"""Config section ``profile``: the time breakdown of a run (spans, trace, pictures, torch captures)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

from funrl.errors import check_value


@dataclass
class ProfileConfig:
    enabled: bool = True  # record phase spans and grants to {run_dir}/profile/spans.jsonl
    torch_steps: List[int] = field(default_factory=list)  # steps captured with torch.profiler
    plots: bool = True  # write the pie chart and per-step bars at the end of a run
    summary: bool = True  # print the breakdown table at the end of a run
    # steps between collections of the workers' spans (each a call to every actor); the actors
    # keep them meanwhile, and a stopping run collects what the living ones hold
    drain_every: int = 10

    def __post_init__(self) -> None:
        check_value("profile.drain_every", self.drain_every >= 1, "an integer >= 1", self.drain_every)
