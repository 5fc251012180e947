"""Config section ``rollout``: which engine samples the completions, and how.

:class:`SamplingParams` is defined once, here (torch-free, so that loading a config stays light),
and re-exported by the engine protocol (:mod:`funrl.rollout.protocol`). :class:`RolloutConfig`
extends it, so the section's sampling keys *are* its fields, and ``cfg.rollout.sampling()`` is the
object every engine receives. Engine-specific knobs live in a sub-section: ``rollout.sglang.*``.

Example overrides: ``rollout.engine=sglang rollout.temperature=1.0 rollout.bucket_mb=256``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional

from funrl.errors import check_value

ENGINES = ("hf", "sglang")


@dataclass
class SamplingParams:
    """How an engine samples (the rollout protocol's argument to ``generate``)."""

    temperature: float = 1.0  # 0 means greedy; the policy's log-probs use the same temperature
    top_p: float = 1.0
    top_k: int = -1  # -1: no top-k truncation
    max_new_tokens: int = 64
    stop_token_ids: List[int] = field(default_factory=list)  # empty: the model's own EOS only
    seed: Optional[int] = None


@dataclass
class SGLangConfig:
    """Knobs of the SGLang engine (``funrl.rollout.sglang_engine``); see its module docstring."""

    device: str = "auto"  # "auto": cuda when a GPU is visible, else cpu (SGLANG_USE_CPU_ENGINE)
    dtype: str = "bfloat16"  # weights and activations inside SGLang
    mem_fraction: float = 0.5  # GPU: SGLang's mem_fraction_static (weights + KV cache share)
    max_total_tokens: Optional[int] = None  # KV-cache size in tokens; None: SGLang's choice (GPU), 8192 (CPU)
    context_length: Optional[int] = None  # longest prompt + completion; None: the model's config
    attention_backend: Optional[str] = None  # None: torch_native on CPU, SGLang's default on GPU
    weight_sync: str = "tensor"  # "tensor" (bucketed, in memory) or "disk" (safetensors shards)
    enable_memory_saver: bool = True  # GPU: lets sleep()/wake() free and restore weights + KV cache
    deterministic: bool = False  # SGLang deterministic inference: honours rollout.seed (GPU attention backends only)
    # CPU: OpenMP threads of SGLang's scheduler (OMP_NUM_THREADS at its start). More threads than free
    # cores make its OpenMP workers spin against each other: on a shared 2-core machine 1 thread was
    # far faster than the default. None: leave the environment's setting.
    cpu_threads: Optional[int] = 1
    log_level: str = "error"  # SGLang's own logging
    engine_kwargs: Dict[str, Any] = field(default_factory=dict)  # passed to sglang.Engine verbatim


@dataclass
class RolloutConfig(SamplingParams):
    """How completions are sampled: the :class:`SamplingParams` fields, the engine and its knobs."""

    engine: str = "hf"  # "hf" (transformers, CPU/GPU) or "sglang"
    bucket_mb: float = 512.0  # weight sync, any engine: tensors travel in buckets of at most this many MiB
    # > 1: the step's prompts are generated in this many chunks, and each chunk's completions are
    # scored by the reward pool while the next chunk generates (funrl/train/driver.py rollout_overlapped)
    reward_overlap_chunks: int = 1
    # true: one generate call whose groups come back as soon as each one's samples have all ended,
    # each scored at once by the reward pool while the rest decode (driver.py rollout_overlapped)
    reward_overlap_groups: bool = False
    # rollout engines (data parallel): a step's prompts are split across them; the weight sync
    # gathers once and sends every engine the same buckets (funrl/train/workers/policy.py)
    num_engines: int = 1
    sglang: SGLangConfig = field(default_factory=SGLangConfig)

    @property
    def bucket_bytes(self) -> int:
        return int(self.bucket_mb * (1 << 20))

    def sampling(self) -> SamplingParams:
        """The protocol's sampling parameters from this section (a copy: engines may fill in stops)."""
        kw = {f.name: getattr(self, f.name) for f in fields(SamplingParams)}
        return SamplingParams(**{**kw, "stop_token_ids": list(self.stop_token_ids)})

    def check(self) -> None:
        """Raise ``ValueError`` naming the key for values the type alone cannot rule out."""
        check_value("rollout.engine", self.engine in ENGINES, f"one of {', '.join(ENGINES)}", self.engine)
        check_value("rollout.sglang.weight_sync", self.sglang.weight_sync in ("tensor", "disk"), "'tensor' or 'disk'",
                    self.sglang.weight_sync)
        check_value("rollout.num_engines", self.num_engines >= 1, "an integer >= 1", self.num_engines)
        check_value("rollout.bucket_mb", self.bucket_mb > 0, "a positive size in MiB", self.bucket_mb)
        check_value("rollout.reward_overlap_chunks", self.reward_overlap_chunks >= 1, "an integer >= 1 (1: no overlap)",
                    self.reward_overlap_chunks)
        check_value("rollout.reward_overlap_groups", not (self.reward_overlap_groups and self.reward_overlap_chunks > 1),
                    "false when rollout.reward_overlap_chunks > 1 (two ways to overlap the rewards: choose one)",
                    self.reward_overlap_groups)
        check_value("rollout.sglang.mem_fraction", 0.0 < self.sglang.mem_fraction <= 1.0, "a value in (0, 1]",
                    self.sglang.mem_fraction)
        check_value("rollout.temperature", self.temperature >= 0, "a number >= 0 (0 is greedy)", self.temperature)
        check_value("rollout.top_p", 0.0 < self.top_p <= 1.0, "a number in (0, 1]", self.top_p)
        check_value("rollout.max_new_tokens", self.max_new_tokens > 0, "an integer > 0", self.max_new_tokens)
