"""Device-ownership grants and the exclusivity check.

The driver grants each device to exactly one role per phase (``wake`` before, ``sleep`` after).
A grant is a plain dict ``{"device", "role", "step", "start", "end"}`` (``time.time()`` seconds).
:func:`check_exclusive` finds any two grants of one device to different roles that overlap in
time; grants that only touch (one ends exactly when the next starts) are fine.

>>> g = [dict(device="cuda:0", role="rollout", step=1, start=0.0, end=2.0),
...      dict(device="cuda:0", role="policy", step=1, start=2.0, end=3.0)]
>>> check_exclusive(g)
[]
>>> g.append(dict(device="cuda:0", role="encoder", step=1, start=2.5, end=4.0))
>>> [str(v) for v in check_exclusive(g)]
['cuda:0 held by policy (step 1, 2.000-3.000) and encoder (step 1, 2.500-4.000) at once for 0.500 s']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

GRANT_KEYS = ("device", "role", "step", "start", "end")


@dataclass(frozen=True)
class Violation:
    """Two roles held one device at the same time."""

    device: str
    first: dict
    second: dict
    overlap_s: float

    def __str__(self) -> str:
        a, b = self.first, self.second
        return (
            f"{self.device} held by {a['role']} (step {a['step']}, {a['start']:.3f}-{a['end']:.3f}) and "
            f"{b['role']} (step {b['step']}, {b['start']:.3f}-{b['end']:.3f}) at once for {self.overlap_s:.3f} s"
        )


def check_grant(grant: dict, where: str = "grant") -> None:
    """Raise ValueError naming the problem if ``grant`` is not a well-formed grant dict."""
    missing = [k for k in GRANT_KEYS if k not in grant]
    if missing:
        raise ValueError(f"{where}: grant {grant!r} lacks {missing}")
    if not float(grant["end"]) >= float(grant["start"]):
        raise ValueError(f"{where}: grant ends before it starts: {grant!r}")


def check_exclusive(grants: Iterable[dict]) -> list[Violation]:
    """Every pair of overlapping grants of one device to different roles, in time order."""
    by_device: dict[str, list[dict]] = {}
    for g in grants:
        check_grant(g)
        by_device.setdefault(g["device"], []).append(g)
    out = []
    for device, gs in sorted(by_device.items()):
        gs.sort(key=lambda g: (g["start"], g["end"]))
        active: list[dict] = []  # grants still open at the current start
        for g in gs:
            active = [a for a in active if a["end"] > g["start"]]
            for a in active:
                if a["role"] != g["role"]:
                    overlap = min(a["end"], g["end"]) - g["start"]
                    out.append(Violation(device, a, g, overlap))
            active.append(g)
    return out
