"""A synthetic run with round numbers, shared by the report, trace and CLI tests.

Two finished steps (times in seconds since an arbitrary origin T):

step 0: 100.0-110.0 (10 s). driver: encode 100.5-101.5 (1), rollout 101.5-105.5 (4),
        reward 105.5-106.0 (0.5), update 106.5-109.5 (3)             -> phases 8.5, overhead 1.5
step 1: 110.0-122.0 (12 s). driver: encode 110.0-111.0 (1), rollout 111.0-117.0 (6),
        reward 117.0-117.5 (0.5), update 118.0-121.0 (3), checkpoint 121.0-121.5 (0.5)
                                                                      -> phases 11, overhead 1.0
Workers: rollout0 wakes 0.2 / 0.1 s, generates 400 / 600 tokens, sleeps 0.2 / 0.1 s;
policy0 updates with 450 tokens in each step. Device gpu0 is granted to rollout for the
driver's rollout spans and to policy for the update spans (held 4+3+6+3 = 16 of 22 s).
One more driver span belongs to step 2, which never finished (no step record).
"""

from __future__ import annotations

import json
from pathlib import Path

T = 1_700_000_000.0


def _span(name, worker, step, a, b, **args):
    return {"type": "span", "name": name, "worker": worker, "step": step, "start": T + a, "end": T + b, "args": args}


def _grant(role, step, a, b, device="gpu0"):
    return {"type": "grant", "device": device, "role": role, "step": step, "start": T + a, "end": T + b}


def records() -> list[dict]:
    return [
        {"type": "session", "start": T, "pid": 1},
        _span("encode", "driver", 0, 100.5, 101.5),
        _span("rollout", "driver", 0, 101.5, 105.5),
        _span("wake", "rollout0", 0, 101.5, 101.7),
        _span("rollout", "rollout0", 0, 101.7, 105.3, tokens=400),
        _span("sleep", "rollout0", 0, 105.3, 105.5),
        _span("reward", "driver", 0, 105.5, 106.0),
        _span("update", "driver", 0, 106.5, 109.5),
        _span("update", "policy0", 0, 106.5, 109.5, tokens=450),
        _grant("rollout", 0, 101.5, 105.5),
        _grant("policy", 0, 106.5, 109.5),
        {"type": "step", "step": 0, "start": T + 100.0, "end": T + 110.0},
        _span("encode", "driver", 1, 110.0, 111.0),
        _span("rollout", "driver", 1, 111.0, 117.0),
        _span("wake", "rollout0", 1, 111.0, 111.1),
        _span("rollout", "rollout0", 1, 111.1, 116.9, tokens=600),
        _span("sleep", "rollout0", 1, 116.9, 117.0),
        _span("reward", "driver", 1, 117.0, 117.5),
        _span("update", "driver", 1, 118.0, 121.0),
        _span("update", "policy0", 1, 118.0, 121.0, tokens=450),
        _span("checkpoint", "driver", 1, 121.0, 121.5),
        _grant("rollout", 1, 111.0, 117.0),
        _grant("policy", 1, 118.0, 121.0),
        {"type": "step", "step": 1, "start": T + 110.0, "end": T + 122.0},
        _span("encode", "driver", 2, 122.0, 123.0),  # step 2 never finished
    ]


def write_run(run_dir: Path, recs: list[dict] | None = None) -> Path:
    path = Path(run_dir) / "profile" / "spans.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in (records() if recs is None else recs)))
    return path
