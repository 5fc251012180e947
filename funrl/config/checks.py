"""Value checks across sections that the types alone cannot make, and the checks of a runnable config.

Each check raises :class:`funrl.errors.ConfigValueError` (key, expected, got); the loader turns that
into a :class:`~funrl.config.ConfigError` with the file:line of the key (or "command line"), the
same way it reports the sections' own ``__post_init__``/``check`` errors.

- :func:`check_ranges` runs on every :func:`~funrl.config.load_config`: ``train.*``,
  ``checkpoint.*``, ``rewards.num_workers`` and weights, ``cluster.*``.
- :data:`RUN_CHECKS` run for ``funrl config validate`` and ``funrl train`` (before Ray starts):
  every reward component is built, ``model.path`` must be a model folder, and settings that learn
  nothing are refused (one sample per prompt, greedy rollouts).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

from funrl.errors import ConfigValueError, check_value

ROLES = ("encoder", "rollout", "policy", "reward")
PLACEMENT_STRATEGIES = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")


_need = check_value


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_ranges(cfg: Any) -> None:
    """``train``, ``checkpoint``, ``rewards`` and ``cluster`` values within their ranges."""
    t = cfg.train
    _need("train.steps", t.steps > 0, "an integer > 0", t.steps, " (no steps: nothing is trained)")
    _need("train.prompts_per_step", t.prompts_per_step >= 1, "an integer >= 1", t.prompts_per_step)
    _need("train.samples_every", t.samples_every >= 0, "an integer >= 0 (0: no samples)", t.samples_every)
    _need("train.samples_prompts", t.samples_prompts >= 1, "an integer >= 1", t.samples_prompts)
    _need("train.eval_every", t.eval_every >= 0, "an integer >= 0 (0: no evaluation)", t.eval_every)
    _need("train.eval_max_utterances", t.eval_max_utterances >= 0, "an integer >= 0 (0: all)", t.eval_max_utterances)
    c = cfg.checkpoint
    _need("checkpoint.every", c.every >= 0, "an integer >= 0 (0: only at the end)", c.every)
    _need("checkpoint.keep_last", c.keep_last >= 0, "an integer >= 0 (0: keep all)", c.keep_last)
    if c.best_metric:
        from funrl.train.evaluation import BEST_METRICS

        _need("checkpoint.best_metric", c.best_metric in BEST_METRICS, "empty or one of " + ", ".join(BEST_METRICS),
              c.best_metric)
        _need("checkpoint.best_metric", t.eval_every > 0, "empty unless train.eval_every > 0 (best by what?)",
              c.best_metric)
    r = cfg.rewards
    _need("rewards.num_workers", r.num_workers >= 1, "an integer >= 1", r.num_workers)
    _need("model.encoder_workers", cfg.model.encoder_workers >= 1, "an integer >= 1", cfg.model.encoder_workers)
    _need("model.embed_cache_mib", _number(cfg.model.embed_cache_mib) and cfg.model.embed_cache_mib >= 0,
          "a size in MiB >= 0 (0: off)", cfg.model.embed_cache_mib)
    if t.prefetch_prompts:
        _need("train.prefetch_prompts", not cfg.algorithm.max_refill_rounds,
              "false while algorithm.max_refill_rounds > 0 (refill rounds draw prompts after the prefetched "
              "ones, so a resume could not replay the order)", t.prefetch_prompts)
    for i, spec in enumerate(r.components):
        _need(f"rewards.components.{i}.weight", _number(spec.weight), "a finite number", spec.weight)
    _check_cluster(cfg.cluster)


def _check_cluster(cl: Any) -> None:
    _need("cluster.torch_threads", cl.torch_threads >= 1, "an integer >= 1", cl.torch_threads)
    if cl.num_cpus is not None:
        _need("cluster.num_cpus", cl.num_cpus >= 1, "null or an integer >= 1", cl.num_cpus)
    _need("cluster.gpus", cl.gpus in ("auto", "none"), "'auto' (GPUs when Ray reports them) or 'none'", cl.gpus)
    _need("cluster.placement_strategy", cl.placement_strategy in PLACEMENT_STRATEGIES,
          f"one of {', '.join(PLACEMENT_STRATEGIES)}", cl.placement_strategy)
    for role, res in cl.resources.items():
        _need(f"cluster.resources.{role}", role in ROLES, f"a role name ({', '.join(ROLES)})", role)
        _need(f"cluster.resources.{role}.num_cpus", _number(res.num_cpus) and res.num_cpus >= 0,
              "a finite number >= 0", res.num_cpus)
        if res.num_gpus is not None:
            _need(f"cluster.resources.{role}.num_gpus", _number(res.num_gpus) and 0 <= res.num_gpus <= 1,
                  "null (the layout's share) or a fraction of one device in [0, 1]", res.num_gpus)


# ----------------------------------------------------------------------------- runnable configs


def check_rewards(cfg: Any) -> None:
    """Build every reward component: an unknown name, a missing plugin file, a plugin that does
    not import (syntax error, import error) or bad ``kwargs`` name the component."""
    from funrl.rewards.combiner import RewardCombiner
    from funrl.rewards.protocol import RewardError
    from funrl.rewards.registry import build

    for i, spec in enumerate(cfg.rewards.components):
        try:
            build(spec.name, dict(spec.kwargs or {}), spec.label)
        except RewardError as e:
            raise ConfigValueError(f"rewards.components.{i}.name", message=str(e)) from None
    try:
        RewardCombiner.from_config(cfg.rewards)  # two components with one name
    except RewardError as e:
        raise ConfigValueError("rewards.components", message=str(e)) from None


def check_model_path(cfg: Any) -> None:
    """``model.path``, when set, is a model folder: a funrl one (``funrl_model.json``) or a
    transformers one (``config.json``, whose family the model loader checks)."""
    from funrl.models.io import CONFIG_FILE

    path = cfg.model.path
    if not path:
        return
    p = Path(path)
    if not p.is_dir():
        raise ConfigValueError("model.path", message=f"folder '{path}' not found (relative paths are taken from "
                               f"{Path.cwd()}); give a model folder written by `funrl sft` or `funrl train`")
    if not (p / CONFIG_FILE).is_file() and not (p / "config.json").is_file():
        raise ConfigValueError("model.path", message=f"'{path}' has no {CONFIG_FILE} or config.json, so it is not a "
                               "model folder; give a folder written by `funrl sft` or `funrl train`")


def check_learns(cfg: Any) -> None:
    """Refuse GRPO settings whose every advantage is zero (steps that change nothing)."""
    G = cfg.algorithm.group_size
    _need("algorithm.group_size", G >= 2, "an integer >= 2", G,
          " (GRPO's advantage is a sample's reward minus its group's mean: with one sample per "
          "prompt every advantage is 0 and nothing is learned; 8 is usual)")
    T = cfg.rollout.temperature
    _need("rollout.temperature", T > 0, "a number > 0 for training", T,
          " (0 is greedy: all G samples of a prompt are the same, their rewards equal, every "
          "advantage 0 and nothing is learned; 1.0 is usual)")


RUN_CHECKS: tuple[Callable[[Any], None], ...] = (check_learns, check_model_path, check_rewards)
