"""Reward plugins that misbehave on purpose, for the fault tests (loaded by file path)."""

from __future__ import annotations

import os
import signal


def die_at_step(completions, *, references, samples, step, die_step=-1, marker="", **kwargs):
    """Kill this reward actor's own process (SIGKILL) the first time ``step == die_step``.

    Returns None (not applicable) otherwise, so it never changes the reward total.
    """
    if step == die_step and marker and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return [None] * len(completions)


def explode(completions, *, references, samples, group_ids, **kwargs):
    """Raises on every sample of the second prompt's group."""
    if 1 in group_ids:
        raise ZeroDivisionError("boom")
    return [0.0] * len(completions)


def constant_on_even_ids(completions, *, references, samples, **kwargs):
    """0 for every completion of a sample whose manifest id ends in an even digit (its group's
    rewards are all equal), the completion's length otherwise (they differ, almost surely)."""
    return [0.0 if int(s["id"][-1]) % 2 == 0 else float(len(c)) for c, s in zip(completions, samples)]


def length_on_odd_ids(completions, *, references, samples, **kwargs):
    """A reward that is a known function of (completion, sample): the completion's length in
    characters for odd ids, minus it for even ids (tests check rewards stay with their rows)."""
    return [float(len(c)) * (1 if int(s["id"][-1]) % 2 else -1) for c, s in zip(completions, samples)]
