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
    # sample and encode step s+1's prompts while step s scores rewards, updates and syncs
    # (funrl/train/driver.py prefetch); the same rows in the same order as without it
    prefetch_prompts: bool = False


@dataclass
class RoleResources:
    """Ray resources of one actor of a role (a placement-group bundle)."""

    num_cpus: float = 0.25
    # a fraction of one device for the GPU roles, which share it (funrl/train/layout.py); null: the
    # layout's default (encoder 0.2, rollout 0.4, policy 0.4) when Ray reports GPUs, else none
    num_gpus: Optional[float] = None


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
    ``gpus``: "auto" puts the GPU roles (encoder, rollout, policy) on GPUs whenever Ray reports
    some: one device per policy rank, shared by that rank, one rollout engine and one encoder
    worker, which take turns (:mod:`funrl.train.layout`); "none" keeps every role on the CPU.
    ``resources``: what each actor of a role asks for (its CPUs; its fraction of the shared device).
    """

    address: str = ""
    gpus: str = "auto"  # "auto": GPUs when Ray reports them; "none": CPU only
    num_cpus: Optional[int] = None  # logical CPUs of a private cluster (default: enough for the bundles)
    resources: Dict[str, RoleResources] = field(default_factory=_default_resources)
    torch_threads: int = 1  # intra-op threads per actor (roles take turns, so 1-2 on small CPUs)
    placement_strategy: str = "PACK"
    # CPU-only runs have no device memory to hand over: the driver still records each grant in the
    # trace but skips the wake/sleep actor calls (8 a step, each an actor round trip). true: make them anyway.
    switch_on_cpu: bool = False
    # what a role may keep on its device once it has released it (MiB; measured at each sleep,
    # checked by funrl.profiling.check_exclusive); null: 1024 on GPUs, unchecked on CPU
    sleep_limit_mib: Optional[float] = None


@dataclass
class CheckpointConfig:
    every: int = 10  # steps; 0 = only at the end
    keep_last: int = 2
    save_final: bool = True
    best_metric: str = ""  # eval/error_rate | eval/hallucination_rate | eval/keyword_recall | eval/language_mismatch_rate:
    # RUN_DIR/best is the model exported when it last improved (needs train.eval_every)
