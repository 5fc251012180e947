"""Rewards for ASR RL (report §4.2.4.3) and the plugin API.

Built-ins: ``accuracy`` (1 − WER/CER/MER), ``keywords`` (keyword precision/recall with hotword
distractors), ``hallucination`` (penalty ∝ hallucinated length), ``language`` (−1 on a language
mismatch). :class:`RewardCombiner` sums them with the configured weights. The call signature and
every keyword the trainer passes are in :mod:`funrl.rewards.protocol`; the text rules shared with
evaluation (normalisation, units, error counts) are in :mod:`funrl.rewards.text`.
"""

from funrl.rewards.combiner import Component, RewardCombiner, RewardResult
from funrl.rewards.config import RewardsConfig, RewardSpec
from funrl.rewards.protocol import RewardError, RewardFn
from funrl.rewards.registry import build, builtins, register

__all__ = [
    "Component",
    "RewardCombiner",
    "RewardError",
    "RewardFn",
    "RewardResult",
    "RewardSpec",
    "RewardsConfig",
    "build",
    "builtins",
    "register",
]
