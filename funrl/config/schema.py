"""The config schema: one dataclass per section, each default defined here once.

Sections that belong to a subsystem are defined next to it (``funrl.rewards.config`` …) and
composed here, so the owner of a phase finds its knobs beside its code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from funrl.data.config import DataConfig
from funrl.errors import ConfigValueError
from funrl.models.config import ModelConfig
from funrl.policy.config import AlgorithmConfig, PolicyConfig
from funrl.profiling.config import ProfileConfig
from funrl.rewards.config import RewardsConfig
from funrl.rollout.config import RolloutConfig
from funrl.sft.config import SftConfig
from funrl.train.config import CheckpointConfig, ClusterConfig, TrainConfig
from funrl.train.wandb_log import LoggingConfig


@dataclass
class RunConfig:
    """Where a run writes and how it is seeded."""

    name: str = "funrl"  # one folder name: no path separators, not "." or ".."
    output_dir: str = "runs"  # the run directory is {output_dir}/{name}
    seed: int = 0
    # a fresh run (train.resume="") into a run directory that already holds metrics or checkpoints
    # is refused; true: remove that run's metrics, checkpoints, TensorBoard, profile and model first
    overwrite: bool = False

    def check(self) -> None:
        """``run.name`` must stay inside ``run.output_dir`` (``../..`` or ``/x`` would not)."""
        n = self.name
        seps = {"/", "\\", os.sep, os.altsep or "/"}
        if not n.strip() or n in (".", "..") or any(c in n for c in seps) or "\0" in n:
            raise ConfigValueError(
                "run.name", "one folder name (the run directory is run.output_dir/run.name)", n,
                fix="pick a plain name such as run.name=asr_grpo, and put the parent folders in run.output_dir")


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
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    sft: SftConfig = field(default_factory=SftConfig)
