"""The config schema: one dataclass per section, each default defined here once.

Sections that belong to a subsystem are defined next to it (``funrl.rewards.config`` …) and
composed here, so the owner of a phase finds its knobs beside its code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from funrl.data.config import DataConfig
from funrl.models.config import ModelConfig
from funrl.policy.config import AlgorithmConfig, PolicyConfig
from funrl.profiling.config import ProfileConfig
from funrl.rewards.config import RewardsConfig
from funrl.rollout.config import RolloutConfig
from funrl.sft.config import SftConfig
from funrl.train.config import CheckpointConfig, ClusterConfig, TrainConfig


@dataclass
class RunConfig:
    """Where a run writes and how it is seeded."""

    name: str = "funrl"
    output_dir: str = "runs"  # the run directory is {output_dir}/{name}
    seed: int = 0


@dataclass
class FunRLConfig:
    """The whole configuration of a funrl job."""

    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    rewards: RewardsConfig = field(default_factory=RewardsConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    sft: SftConfig = field(default_factory=SftConfig)
