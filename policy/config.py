"""Config section ``algorithm``: the GRPO knobs (report §4.2.4.2, Eq. 1–3) and their published variants.

Each default is defined here once. The defaults reproduce the report's objective: group-std
advantages, one symmetric clip ε, token-level ratio, a β-weighted KL to the reference and the
report's per-sequence-then-per-group mean. The table in ``funrl.policy.loss`` (module docstring) says
which paper or codebase each non-default option follows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

ADV_STD_MODES = ("group", "batch", "none")
RATIO_LEVELS = ("token", "sequence")
KL_ESTIMATORS = ("k1", "k2", "k3")
LOSS_AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")


@dataclass
class AlgorithmConfig:
    """GRPO advantage and loss settings; validated on construction (every value error names its key)."""

    # --- advantages (Eq. 1)
    group_size: int = 8  # G samples per prompt; the report gives no value, 8 is TRL's num_generations
    adv_std: str = "group"  # "group" (Eq. 1) | "batch" (TRL scale_rewards="batch") | "none" (Dr.GRPO)
    adv_eps: float = 1e-6  # ε in (R - mean) / (std + ε); verl's value (TRL uses 1e-4)
    filter_zero_variance_groups: bool = False  # DAPO dynamic sampling: drop groups whose rewards are all equal

    # --- ratio and clipped surrogate (Eq. 2–3)
    clip_low: float = 0.2  # ratio floor 1 - clip_low (the report's ε; PPO's 0.2)
    clip_high: float = 0.2  # ratio ceiling 1 + clip_high (DAPO "clip-higher" uses 0.28)
    dual_clip: Optional[float] = None  # c > 1: bound the loss of A < 0 tokens at -c·A (verl clip_ratio_c = 3.0)
    ratio_level: str = "token"  # "token" (Eq. 3) | "sequence" (GSPO)
    log_ratio_clamp: float = 20.0  # |log r| is clamped to this before exp (verl's vanilla loss: 20)

    # --- KL to the reference policy (the -β·D_KL term of Eq. 2)
    kl_coef: float = 0.04  # β; 0.04 is the GRPO paper's value (DeepSeekMath); 0 skips the reference pass
    kl_estimator: str = "k3"  # "k1" | "k2" | "k3" (Schulman's low-variance estimator, as GRPO)

    # --- aggregation
    loss_agg_mode: str = "seq-mean-token-mean"  # the report's 1/G Σ 1/|o_i| Σ_t; DAPO/verl use "token-mean"
    loss_norm_length: Optional[int] = None  # divisor of "seq-mean-token-sum-norm"; None: the rollout's max_new_tokens

    # --- log-probabilities
    temperature: float = 1.0  # the rollout sampling temperature; policy log-probs use logits / temperature

    def __post_init__(self) -> None:
        _choice("adv_std", self.adv_std, ADV_STD_MODES)
        _choice("ratio_level", self.ratio_level, RATIO_LEVELS)
        _choice("kl_estimator", self.kl_estimator, KL_ESTIMATORS)
        _choice("loss_agg_mode", self.loss_agg_mode, LOSS_AGG_MODES)
        _check("group_size", self.group_size >= 1, "an integer >= 1", self.group_size)
        _check("adv_eps", self.adv_eps >= 0, "a number >= 0", self.adv_eps)
        _check("clip_low", 0 <= self.clip_low < 1, "a number in [0, 1)", self.clip_low)
        _check("clip_high", self.clip_high >= 0, "a number >= 0", self.clip_high)
        if self.dual_clip is not None:
            _check("dual_clip", self.dual_clip > 1, "null or a number > 1 (verl uses 3.0)", self.dual_clip)
        _check("log_ratio_clamp", self.log_ratio_clamp > 0, "a number > 0", self.log_ratio_clamp)
        _check("kl_coef", self.kl_coef >= 0, "a number >= 0", self.kl_coef)
        if self.loss_norm_length is not None:
            _check("loss_norm_length", self.loss_norm_length >= 1, "null or an integer >= 1", self.loss_norm_length)
        _check("temperature", self.temperature >= 0, "a number >= 0 (0 means greedy: raw logits)", self.temperature)


def _check(key: str, ok: bool, expected: str, got: object) -> None:
    if not ok:
        raise ValueError(
            f"config key 'algorithm.{key}' expects {expected}, got {got!r}; "
            f"fix it in the YAML file or pass algorithm.{key}=... on the command line"
        )


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    _check(key, value in allowed, "one of " + ", ".join(repr(a) for a in allowed), value)
