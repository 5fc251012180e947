"""Config section ``rollout``: which engine samples the completions, and how.

The sampling fields mirror :class:`funrl.rollout.protocol.SamplingParams` one to one (same names,
same defaults), so ``cfg.rollout.sampling()`` is the object every engine receives. Engine-specific
knobs live in a sub-section: ``rollout.sglang.*`` for the SGLang engine.

Example overrides: ``rollout.engine=sglang rollout.temperature=1.0 rollout.sglang.bucket_mb=256``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional

if TYPE_CHECKING:  # the protocol imports torch; config loading must stay light
    from funrl.rollout.protocol import SamplingParams

ENGINES = ("hf", "sglang")


@dataclass
class SGLangConfig:
    """Knobs of the SGLang engine (``funrl.rollout.sglang_engine``); see its module docstring."""

    device: str = "auto"  # "auto": cuda when a GPU is visible, else cpu (SGLANG_USE_CPU_ENGINE)
    dtype: str = "bfloat16"  # weights and activations inside SGLang
    mem_fraction: float = 0.5  # GPU: SGLang's mem_fraction_static (weights + KV cache share)
    max_total_tokens: Optional[int] = None  # KV-cache size in tokens; None: SGLang's choice (GPU), 8192 (CPU)
    context_length: Optional[int] = None  # longest prompt + completion; None: the model's config
    attention_backend: Optional[str] = None  # None: torch_native on CPU, SGLang's default on GPU
    bucket_mb: float = 512.0  # weight sync: one update_weights_from_tensor call per bucket of this many MiB
    weight_sync: str = "tensor"  # "tensor" (bucketed, in memory) or "disk" (safetensors shards)
    enable_memory_saver: bool = True  # GPU: lets sleep()/wake() free and restore weights + KV cache
    deterministic: bool = False  # SGLang deterministic inference: honours rollout.seed (GPU attention backends only)
    # CPU: OpenMP threads of SGLang's scheduler (OMP_NUM_THREADS at its start). More threads than free
    # cores make its OpenMP workers spin against each other: on a shared 2-core machine 1 thread was
    # 25x faster than the default. None: leave the environment's setting.
    cpu_threads: Optional[int] = 1
    log_level: str = "error"  # SGLang's own logging
    engine_kwargs: Dict[str, Any] = field(default_factory=dict)  # passed to sglang.Engine verbatim


@dataclass
class RolloutConfig:
    """How completions are sampled. Fields up to ``seed`` are :class:`SamplingParams`."""

    engine: str = "hf"  # "hf" (transformers, CPU/GPU) or "sglang"
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = -1  # -1: no top-k truncation
    max_new_tokens: int = 64
    stop_token_ids: List[int] = field(default_factory=list)  # empty: the model's own EOS only
    seed: Optional[int] = None
    sglang: SGLangConfig = field(default_factory=SGLangConfig)

    def sampling(self) -> "SamplingParams":
        """The protocol's sampling parameters from this section."""
        from funrl.rollout.protocol import SamplingParams

        return SamplingParams(
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            max_new_tokens=self.max_new_tokens,
            stop_token_ids=tuple(self.stop_token_ids),
            seed=self.seed,
        )

    def check(self) -> None:
        """Raise ``ValueError`` naming the key for values the type alone cannot rule out."""
        if self.engine not in ENGINES:
            raise ValueError(f"rollout.engine: expected one of {ENGINES}, got {self.engine!r}")
        if self.sglang.weight_sync not in ("tensor", "disk"):
            raise ValueError(
                f"rollout.sglang.weight_sync: expected 'tensor' or 'disk', got {self.sglang.weight_sync!r}"
            )
        if self.sglang.bucket_mb <= 0:
            raise ValueError(f"rollout.sglang.bucket_mb: expected a positive size in MiB, got {self.sglang.bucket_mb}")
        if not 0.0 < self.sglang.mem_fraction <= 1.0:
            raise ValueError(f"rollout.sglang.mem_fraction: expected a value in (0, 1], got {self.sglang.mem_fraction}")
        if self.temperature < 0 or not 0.0 < self.top_p <= 1.0 or self.max_new_tokens <= 0:
            raise ValueError(
                "rollout: expected temperature >= 0, 0 < top_p <= 1 and max_new_tokens > 0, got "
                f"temperature={self.temperature}, top_p={self.top_p}, max_new_tokens={self.max_new_tokens}"
            )
