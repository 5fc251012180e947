"""Example reward plugins: one function and one class (see README, "Write a reward plugin").

Use them from a config by file path or, with this folder on PYTHONPATH, by dotted path::

    rewards:
      components:
        - name: examples/plugins/my_rewards.py:no_digits     # file path + function name
          weight: 0.5
        - name: my_rewards:StartsRight                        # dotted path (PYTHONPATH=examples/plugins)
          weight: 0.2
          kwargs: {n: 2}

The call signature and every keyword the trainer passes are documented in
``funrl.rewards.protocol``.
"""

from __future__ import annotations

from typing import Optional

from funrl.rewards.text import units


def no_digits(
    completions: list[str], *, references: list[str], samples: list[dict], penalty: float = -0.5, **kwargs
) -> list[Optional[float]]:
    """``penalty`` when the output has digits but the reference has none (spelled-out numbers).

    ``None`` (not applicable) when the reference itself has digits.

    >>> no_digits(["twenty one", "21", "21"],
    ...           references=["twenty one", "twenty one", "route 21"], samples=[{}] * 3)
    [0.0, -0.5, None]
    """
    out: list[Optional[float]] = []
    for hyp, ref in zip(completions, references):
        if any(ch.isdigit() for ch in ref):
            out.append(None)
        else:
            out.append(penalty if any(ch.isdigit() for ch in hyp) else 0.0)
    return out


class StartsRight:
    """1.0 when the first ``n`` units of the output equal the reference's, else 0.0.

    A class: ``__init__`` takes the config's ``kwargs``, ``__call__`` scores a batch.

    >>> StartsRight(n=2)(["Hello there, world", "hello world"],
    ...                  references=["hello there"] * 2, samples=[{}] * 2)
    [1.0, 0.0]
    """

    def __init__(self, n: int = 3):
        self.n = n

    def __call__(
        self, completions: list[str], *, references: list[str], samples: list[dict], **kwargs
    ) -> list[Optional[float]]:
        return [
            1.0 if units(h)[: self.n] == units(r)[: self.n] else 0.0 for h, r in zip(completions, references)
        ]
