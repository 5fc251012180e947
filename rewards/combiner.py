"""The weighted sum of reward components: ``total_i = Σ_k w_k · R_k,i`` over applicable components.

Report §4.2.4.3 sums R1..R4 with unit weights (the default config); funrl makes the weights and
the component list configurable. A component that returns ``None`` for a sample adds nothing to
that sample's total (a sample with no applicable component totals 0.0) and is left out of the
component's mean and std. Every component output is checked: a list of one finite real number
or ``None`` per completion; anything else is a :class:`RewardError` naming the component and,
where it is one sample's fault, the sample index.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from funrl.rewards.config import RewardsConfig
from funrl.rewards.protocol import RewardError
from funrl.rewards.registry import build


@dataclass
class Component:
    name: str
    weight: float
    fn: Callable


@dataclass
class RewardResult:
    total: list[float]  # [N] Σ w·R over applicable components
    components: dict[str, list[Optional[float]]]  # name -> [N], None where not applicable
    metrics: dict[str, float] = field(default_factory=dict)  # reward_stats(components, total, ...)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    m = math.fsum(values) / len(values)
    return m, math.sqrt(math.fsum((v - m) ** 2 for v in values) / len(values))  # population std


def reward_stats(components: dict[str, list[Optional[float]]], total: Sequence[float],
                 error_rates: Optional[dict[str, str]] = None, extremes: bool = False) -> dict[str, float]:
    """The step's reward metrics, the one place they are computed and named:
    ``reward/<name>_mean``, ``_std`` (population) and ``_applicable`` (share of samples not None;
    mean and std NaN when none applies), ``reward/total_mean`` / ``_std``, and for each declared
    error rate (``{metric: component}``, see :attr:`RewardCombiner.error_rates`) ``1 − mean``.
    With ``extremes`` (``funrl rewards score``'s table) also ``_min`` and ``_max`` for each
    component and the total, NaN when none applies.

    >>> reward_stats({"accuracy": [1.0, 0.5], "kw": [None, 1.0]}, [1.0, 1.5], {"wer": "accuracy"})["wer"]
    0.25
    """
    nan = float("nan")
    out: dict[str, float] = {}
    for name, vals in components.items():
        app = [v for v in vals if v is not None]
        mean, std = _mean_std(app) if app else (nan, nan)
        out[f"reward/{name}_mean"], out[f"reward/{name}_std"] = mean, std
        out[f"reward/{name}_applicable"] = len(app) / len(vals) if vals else 0.0
        if extremes:
            out[f"reward/{name}_min"], out[f"reward/{name}_max"] = (min(app), max(app)) if app else (nan, nan)
    out["reward/total_mean"], out["reward/total_std"] = _mean_std(list(total)) if len(total) else (nan, nan)
    if extremes:
        out["reward/total_min"], out["reward/total_max"] = (min(total), max(total)) if len(total) else (nan, nan)
    for metric, name in (error_rates or {}).items():
        out[metric] = 1.0 - out[f"reward/{name}_mean"]
    return out


def _subset_kwargs(kwargs: dict, idx: Sequence[int], n: int) -> dict:
    """The trainer's keywords for the samples ``idx``: lists aligned with the batch are cut."""
    return {k: ([v[i] for i in idx] if isinstance(v, (list, tuple)) and len(v) == n else v)
            for k, v in kwargs.items()}


class RewardCombiner:
    """Runs the configured components on a batch and combines them.

    >>> from funrl.rewards.config import RewardsConfig, RewardSpec
    >>> comb = RewardCombiner.from_config(RewardsConfig(components=[
    ...     RewardSpec(name="accuracy", weight=1.0), RewardSpec(name="keywords", weight=0.5)]))
    >>> res = comb(["hello world", "hello"], references=["hello world"] * 2,
    ...            samples=[{"keywords": ["world"]}, {}])
    >>> res.total, res.components["keywords"]
    ([1.5, 0.5], [1.0, None])
    """

    def __init__(self, components: Sequence[Component]):
        seen: dict[str, int] = {}
        for k, c in enumerate(components):
            if c.name == "total":
                raise RewardError("a reward component may not be named 'total' (the sum); set another `label`")
            if c.name in seen:
                raise RewardError(
                    f"reward components {seen[c.name]} and {k} are both named '{c.name}'; "
                    "set `label` on one of them in rewards.components",
                    component=c.name,
                )
            seen[c.name] = k
        self.components = list(components)

    @classmethod
    def from_config(cls, config: RewardsConfig) -> "RewardCombiner":
        comps = []
        for spec in config.components:
            name, fn = build(spec.name, dict(spec.kwargs or {}), getattr(spec, "label", None))
            comps.append(Component(name, float(spec.weight), fn))
        return cls(comps)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.components]

    @property
    def error_rates(self) -> dict[str, str]:
        """``{metric: component}`` for components that declare ``error_rate_metric`` (rewards.protocol)."""
        return {c.fn.error_rate_metric: c.name for c in self.components if getattr(c.fn, "error_rate_metric", None)}

    def __call__(
        self, completions: list[str], *, references: list[str], samples: list[dict], **kwargs: Any
    ) -> RewardResult:
        n = len(completions)
        if len(references) != n or len(samples) != n:
            raise RewardError(f"{n} completions but {len(references)} references and {len(samples)} samples")
        comps = {c.name: self._run(c, completions, references, samples, kwargs) for c in self.components}
        total = [0.0] * n
        for c in self.components:
            for i, v in enumerate(comps[c.name]):
                if v is not None:
                    total[i] += c.weight * v
        return RewardResult(total, comps, reward_stats(comps, total, self.error_rates))

    def _run(self, comp: Component, completions, references, samples, kwargs) -> list[Optional[float]]:
        try:
            out = comp.fn(completions, references=references, samples=samples, **kwargs)
        except Exception as e:
            raise self._locate(comp, completions, references, samples, kwargs, e) from e
        return self._check(comp.name, out, len(completions))

    def _locate(self, comp, completions, references, samples, kwargs, err: Exception) -> RewardError:
        """Name the sample that makes ``comp`` raise ``err`` (the same exception type).

        First by bisection: a half of the batch that raises alone is split again, down to one
        sample (about log2(n) calls). A plugin that raises only in company (batch statistics,
        cross-sample lookups) is then tried with each sample left out: the one sample whose
        absence lets the batch score is named. Only when neither finds one sample does the
        message blame the batch.
        """
        n = len(completions)

        def raises(idx: list[int]) -> Optional[Exception]:
            try:
                comp.fn([completions[i] for i in idx], references=[references[i] for i in idx],
                        samples=[samples[i] for i in idx], **_subset_kwargs(kwargs, idx, n))
            except Exception as e:  # noqa: BLE001 - a plugin may raise anything
                return e if type(e) is type(err) else None
            return None

        span = list(range(n))
        while len(span) > 1:
            halves = (span[: len(span) // 2], span[len(span) // 2 :])
            found = [(part, e) for part in halves for e in [raises(part)] if e is not None][:1]
            if not found:
                break
            span, err_span = found[0]
            if len(span) == 1:
                return self._blame(comp, samples, span[0], "raised on", err_span)
        left_out = [i for i in range(n) if n > 1 and raises([j for j in range(n) if j != i]) is None]
        if len(left_out) == 1:
            return self._blame(comp, samples, left_out[0], f"raised on the batch of {n} because of", err,
                               " (the batch scores without it)")
        return RewardError(
            f"reward '{comp.name}' raised on the batch of {n} (no single sample raises alone, and "
            f"leaving out any one does not stop it): {type(err).__name__}: {err}",
            component=comp.name,
        )

    @staticmethod
    def _blame(comp, samples, i: int, what: str, err: Exception, tail: str = "") -> RewardError:
        return RewardError(
            f"reward '{comp.name}' {what} sample {i} (id {samples[i].get('id', '?')!r}){tail}: "
            f"{type(err).__name__}: {err}",
            component=comp.name,
            index=i,
        )

    @staticmethod
    def _check(name: str, out: Any, n: int) -> list[Optional[float]]:
        try:
            values = list(out)
        except TypeError:
            raise RewardError(
                f"reward '{name}' returned {type(out).__name__}; expected a list of {n} floats or None",
                component=name,
            ) from None
        if len(values) != n:
            raise RewardError(
                f"reward '{name}' returned {len(values)} values for {n} completions; return one per completion",
                component=name,
            )
        clean: list[Optional[float]] = []
        for i, v in enumerate(values):
            if v is None:
                clean.append(None)
                continue
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise RewardError(
                    f"reward '{name}' returned {v!r} ({type(v).__name__}) for sample {i}; expected a float or None",
                    component=name,
                    index=i,
                )
            if not math.isfinite(v):
                raise RewardError(
                    f"reward '{name}' returned {v} for sample {i}; rewards must be finite (None = not applicable)",
                    component=name,
                    index=i,
                )
            clean.append(float(v))
        return clean
