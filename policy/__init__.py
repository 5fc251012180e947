"""funrl.policy: the GRPO math (pure functions on tensors) and, later, the FSDP2 policy worker.

- :mod:`funrl.policy.config`: ``AlgorithmConfig``, the ``algorithm`` config section.
- :mod:`funrl.policy.advantages`: group advantages (report Eq. 1), DAPO zero-variance filter.
- :mod:`funrl.policy.logprobs`: per-token log-probs and entropy at the rollout temperature.
- :mod:`funrl.policy.loss`: ratio, clipped surrogate, KL, aggregation, ``compute_grpo_loss``
  (report Eq. 2–3). Its docstring states the sign convention and the source of every option.

The names below are imported lazily so that reading the config schema does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AlgorithmConfig": "config",
    "group_advantages": "advantages",
    "group_index_from_size": "advantages",
    "zero_variance_keep_mask": "advantages",
    "token_logprobs": "logprobs",
    "importance_ratio": "loss",
    "clipped_surrogate": "loss",
    "kl_penalty": "loss",
    "aggregate_loss": "loss",
    "local_counts": "loss",
    "compute_grpo_loss": "loss",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
