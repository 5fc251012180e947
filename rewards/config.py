"""Config section ``rewards``: which reward modules run, with which weights and parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING


@dataclass
class RewardSpec:
    """One reward component.

    ``name`` is a built-in (``accuracy``, ``keywords``, ``hallucination``, ``language``), a dotted
    path ``pkg.module:fn`` or a file path ``path/to/file.py:fn``. ``kwargs`` go to a class's
    ``__init__`` or are bound to a function's keyword arguments. ``label`` names the component in
    outputs and metrics (default: the built-in name or the plugin's function name); two components
    with one name are an error. See ``funrl.rewards.protocol`` for the call signature.
    """

    name: str = MISSING
    weight: float = 1.0
    kwargs: Dict[str, Any] = field(default_factory=dict)
    label: Optional[str] = None


def _default_components() -> List[RewardSpec]:
    # Report §4.2.4.3: R = R1 (1-WER) + R2 (keywords) + R3 (hallucination) + R4 (language).
    return [
        RewardSpec(name="accuracy", weight=1.0),
        RewardSpec(name="keywords", weight=1.0),
        RewardSpec(name="hallucination", weight=1.0),
        RewardSpec(name="language", weight=1.0),
    ]


@dataclass
class RewardsConfig:
    components: List[RewardSpec] = field(default_factory=_default_components)
    num_workers: int = 1  # CPU reward actors in the reward pool
