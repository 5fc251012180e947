"""A reward plugin for bench/overlap.py: sleeps ``seconds_per_group`` per group it scores (a stand-in
for a model-based judge), then scores each completion by its length."""

from __future__ import annotations

import time


def sleepy(completions, *, references, samples, group_ids, seconds_per_group=0.05, **kwargs):
    time.sleep(seconds_per_group * len(set(group_ids)))
    return [float(len(c)) for c in completions]
