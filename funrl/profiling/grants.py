"""Device-ownership grants and the exclusivity check.

The driver grants each device to exactly one role per phase (``wake`` before, ``sleep`` after).
A grant is a plain dict ``{"device", "role", "step", "start", "end"}`` (``time.time()`` seconds),
with, when the roles were switched, what each actor reported (:mod:`funrl.train.ownership`):
``held_bytes`` when granted, ``kept_bytes`` after it released the device, and ``limit_bytes``.

:func:`check_exclusive` finds any two grants of one device to different roles that overlap in
time (grants that only touch, one ending exactly when the next starts, are fine), and any actor
that kept more than the limit once it had released the device: the next role to be granted it
would not find the memory free.

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
MIB = 1 << 20


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


@dataclass(frozen=True)
class KeptMemory:
    """An actor still held memory on a device it had released."""

    device: str
    grant: dict
    actor: str
    kept: int
    limit: float

    def __str__(self) -> str:
        g = self.grant
        return (f"{self.device}: {self.actor} ({g['role']}, step {g['step']}) kept {self.kept / MIB:.1f} MiB after "
                f"releasing it at {g['end']:.3f}, over the limit of {self.limit / MIB:.1f} MiB "
                "(cluster.sleep_limit_mib): its sleep() must free what the next role needs")


def check_grant(grant: dict, where: str = "grant") -> None:
    """Raise ValueError naming the problem if ``grant`` is not a well-formed grant dict."""
    missing = [k for k in GRANT_KEYS if k not in grant]
    if missing:
        raise ValueError(f"{where}: grant {grant!r} lacks {missing}")
    if not float(grant["end"]) >= float(grant["start"]):
        raise ValueError(f"{where}: grant ends before it starts: {grant!r}")


def check_exclusive(grants: Iterable[dict], limit_bytes: float | None = None) -> list:
    """Every pair of overlapping grants of one device to different roles (:class:`Violation`), in
    time order, then every actor that kept more than ``limit_bytes`` (default: each grant's own
    ``limit_bytes``; None: not checked) after releasing (:class:`KeptMemory`)."""
    by_device: dict[str, list[dict]] = {}
    kept: list[KeptMemory] = []
    for g in grants:
        check_grant(g)
        by_device.setdefault(g["device"], []).append(g)
        limit = limit_bytes if limit_bytes is not None else g.get("limit_bytes")
        if limit is not None:
            kept += [KeptMemory(g["device"], g, a, int(b), float(limit))
                     for a, b in sorted((g.get("kept_bytes") or {}).items()) if b > limit]
    out: list = []
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
    return out + sorted(kept, key=lambda k: k.grant["end"])
