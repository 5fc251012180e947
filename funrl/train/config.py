"""Config sections of the GRPO trainer: ``train``, ``cluster`` and ``checkpoint``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional


@dataclass
class TrainConfig:
    steps: int = 20
    prompts_per_step: int = 8  # B: prompts sampled per step; each gets algorithm.group_size samples
    shuffle: bool = True
    resume: str = ""  # "" (fresh), "latest", or a checkpoint folder
    samples_every: int = 0  # every N steps, samples_prompts prompts' completions to samples.jsonl + TensorBoard (0: off)
    samples_prompts: int = 2  # prompts per logged step, each with its G completions, rewards and advantages
    eval_every: int = 0  # every N steps the rollout engine decodes data.eval_manifest greedily: eval/* metrics (0: off)
    eval_max_utterances: int = 0  # the manifest's first N rows (0: all)


@dataclass
class RoleResources:
    """Ray resources of one actor of a role (a placement-group bundle)."""

    num_cpus: float = 0.25
    num_gpus: float = 0.0


def _default_resources() -> Dict[str, RoleResources]:
    return {
        "encoder": RoleResources(),
        "rollout": RoleResources(),
        "policy": RoleResources(),
        "reward": RoleResources(),
    }


@dataclass
class ClusterConfig:
    """Where the Ray actors run.

    ``address``: "" starts a private local cluster inside the run directory (loopback only, no
    dashboard, usage stats off); "auto" or "host:port" joins one started with ``ray start``.
    ``resources``: one bundle per actor of each role (encoder, rollout, policy × world_size,
    reward × rewards.num_workers), all in one placement group. Colocated GPU roles share devices:
    give each GPU role a fraction (e.g. 0.3) so they fit on the same GPU, and the driver grants
    the device to one role at a time.
    """

    address: str = ""
    num_cpus: Optional[int] = None  # logical CPUs of a private cluster (default: enough for the bundles)
    resources: Dict[str, RoleResources] = field(default_factory=_default_resources)
    torch_threads: int = 1  # intra-op threads per actor (roles take turns, so 1-2 on small CPUs)
    placement_strategy: str = "PACK"
    # CPU-only runs have no device memory to hand over: the driver still records each grant in the
    # trace but skips the wake/sleep actor calls (8 a step, each an actor round trip). true: make them anyway.
    switch_on_cpu: bool = False


@dataclass
class CheckpointConfig:
    every: int = 10  # steps; 0 = only at the end
    keep_last: int = 2
    save_final: bool = True
    best_metric: str = ""  # eval/error_rate | eval/hallucination_rate | eval/keyword_recall | eval/language_mismatch_rate:
    # RUN_DIR/best is the model exported when it last improved (needs train.eval_every)
