"""Config section ``algorithm``: the GRPO knobs (report §4.2.4.2, Eq. 1–3) and their published variants.

Each default is defined here once. The defaults reproduce the report's objective: group-std
advantages, one symmetric clip ε, token-level ratio, a β-weighted KL to the reference and the
report's per-sequence-then-per-group mean. The table in ``funrl.policy.loss`` (module docstring) says
which paper or codebase each non-default option follows.

Section ``policy`` (end of this file): the FSDP2 policy workers (LoRA, optimiser, micro-batches).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from funrl.errors import check_value

ADV_STD_MODES = ("group", "batch", "none")
RATIO_LEVELS = ("token", "sequence")
ROLLOUT_IS_MODES = ("none", "tis", "mis")
KL_ESTIMATORS = ("k1", "k2", "k3")
LOSS_AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")
GUIDES = ("none", "ctc", "reference")


@dataclass
class AlgorithmConfig:
    """GRPO advantage and loss settings; validated on construction (every value error names its key)."""

    # --- advantages (Eq. 1)
    group_size: int = 8  # G samples per prompt; the report gives no value, 8 is TRL's num_generations
    adv_std: str = "group"  # "group" (Eq. 1) | "batch" (TRL scale_rewards="batch") | "none" (Dr.GRPO)
    adv_eps: float = 1e-6  # ε in (R - mean) / (std + ε); verl's value (TRL uses 1e-4)
    filter_zero_variance_groups: bool = False  # DAPO dynamic sampling: drop groups whose rewards are all equal
    max_refill_rounds: int = 0  # with the filter: sample up to this many more rounds of B prompts until B groups teach (funrl/train/refill.py)
    # over-long filtering: completions that hit rollout.max_new_tokens without a stop token leave
    # the loss (their rewards still count in their group's advantages), as TRL's
    # mask_truncated_completions and DAPO's over-long filtering
    mask_truncated: bool = False
    # guided exploration (funrl/train/guide.py): the last of each group's G samples is replaced by a
    # transcript the policy did not sample: "ctc", the model's own CTC head's greedy transcript of
    # the audio (a family model with ctc.json); "reference", the manifest text (off-policy
    # guidance as LUFFY's); "none" (the report's GRPO)
    guide: str = "none"

    # --- ratio and clipped surrogate (Eq. 2–3)
    clip_low: float = 0.2  # ratio floor 1 - clip_low (the report's ε; PPO's 0.2)
    clip_high: float = 0.2  # ratio ceiling 1 + clip_high (DAPO "clip-higher" uses 0.28)
    dual_clip: Optional[float] = None  # c > 1: bound the loss of A < 0 tokens at -c·A (verl clip_ratio_c = 3.0)
    ratio_level: str = "token"  # "token" (Eq. 3) | "sequence" (GSPO)
    log_ratio_clamp: float = 20.0  # |log r| is clamped to this before exp (verl's vanilla loss: 20)

    # --- KL to the reference policy (the -β·D_KL term of Eq. 2)
    kl_coef: float = 0.04  # β; 0.04 is the GRPO paper's value (DeepSeekMath); 0 skips the reference pass
    kl_estimator: str = "k3"  # "k1" | "k2" | "k3" (Schulman's low-variance estimator, as GRPO)
    kl_ratio_correction: bool = False  # multiply the per-token KL by π_θ/π_old (TRL's use_bias_correction_kl)

    # --- aggregation
    loss_agg_mode: str = "seq-mean-token-mean"  # the report's 1/G Σ 1/|o_i| Σ_t; DAPO/verl use "token-mean"
    loss_norm_length: Optional[int] = None  # divisor of "seq-mean-token-sum-norm"; None: the rollout's max_new_tokens

    # --- log-probabilities
    # funrl takes one optimizer step per rollout, so π_old is the policy before that step and its
    # log-probs equal the update's own (detached), as TRL does when on-policy. True runs a separate
    # no-grad pass instead (verl's behaviour; needed only if a rollout fed several updates).
    recompute_old_logprobs: bool = False
    # The temperature of the log-probs is the rollout's (rollout.temperature): one key for one fact.

    # --- engine vs trainer (policy/rollout_correction.py): the mismatch is logged every step; this
    # corrects the policy-gradient term by w = π_old/π_engine: "tis" truncates at the cap, "mis"
    # drops what exceeds it, per token or per sequence (verl rollout_is, TRL vllm_importance_sampling_*)
    rollout_is: str = "none"  # "none" | "tis" | "mis"
    rollout_is_level: str = "token"  # "token" | "sequence"
    rollout_is_cap: float = 2.0  # verl's rollout_is_threshold default (TRL's cap: 3.0)

    def __post_init__(self) -> None:
        _choice("adv_std", self.adv_std, ADV_STD_MODES)
        _choice("ratio_level", self.ratio_level, RATIO_LEVELS)
        _choice("kl_estimator", self.kl_estimator, KL_ESTIMATORS)
        _choice("loss_agg_mode", self.loss_agg_mode, LOSS_AGG_MODES)
        _choice("rollout_is", self.rollout_is, ROLLOUT_IS_MODES)
        _choice("guide", self.guide, GUIDES)
        if self.guide != "none":
            _check("group_size", self.group_size >= 2, "an integer >= 2 with algorithm.guide (one sample is the guide)",
                   self.group_size)
            _check("guide", not self.max_refill_rounds, "'none' with algorithm.max_refill_rounds > 0 (not combined yet)",
                   self.guide)
        _choice("rollout_is_level", self.rollout_is_level, RATIO_LEVELS)
        _check("rollout_is_cap", self.rollout_is_cap > 0, "a number > 0", self.rollout_is_cap)
        _check("group_size", self.group_size >= 1, "an integer >= 1", self.group_size)
        _check("adv_eps", self.adv_eps >= 0, "a number >= 0", self.adv_eps)
        _check("max_refill_rounds", self.max_refill_rounds >= 0, "an integer >= 0", self.max_refill_rounds)
        if self.max_refill_rounds:
            _check("max_refill_rounds", self.filter_zero_variance_groups,
                   "0 unless algorithm.filter_zero_variance_groups=true (refill replaces the groups it drops)",
                   self.max_refill_rounds)
        _check("clip_low", 0 <= self.clip_low < 1, "a number in [0, 1)", self.clip_low)
        _check("clip_high", self.clip_high >= 0, "a number >= 0", self.clip_high)
        if self.dual_clip is not None:
            _check("dual_clip", self.dual_clip > 1, "null or a number > 1 (verl uses 3.0)", self.dual_clip)
        _check("log_ratio_clamp", self.log_ratio_clamp > 0, "a number > 0", self.log_ratio_clamp)
        _check("kl_coef", self.kl_coef >= 0, "a number >= 0", self.kl_coef)
        if self.loss_norm_length is not None:
            _check("loss_norm_length", self.loss_norm_length >= 1, "null or an integer >= 1", self.loss_norm_length)


def _check(key: str, ok: bool, expected: str, got: object) -> None:
    check_value(f"algorithm.{key}", ok, expected, got)


def _choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    _check(key, value in allowed, "one of " + ", ".join(repr(a) for a in allowed), value)


# ----------------------------------------------------------------------------- section ``policy``

LR_SCHEDULES = ("constant", "cosine")
PARAM_DTYPES = ("float32", "bfloat16")


def _default_lora_targets() -> List[str]:
    # every linear layer of a Qwen3/Llama decoder block (as TRL/verl "all-linear" for these models)
    return ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class LoraSettings:
    """LoRA on the LLM, a peft ``LoraConfig`` (``enabled: false`` = full fine-tuning). The one
    settings class of ``policy.lora`` and ``sft.lora`` (the sections differ only in defaults)."""

    enabled: bool = True
    r: int = 16
    alpha: float = 32.0  # peft lora_alpha; the update is scaled by alpha / r
    dropout: float = 0.0
    target_modules: List[str] = field(default_factory=_default_lora_targets)  # nn.Linear module names

    def wrap(self, llm):
        """``peft.get_peft_model(llm, LoraConfig(...))`` with these settings."""
        from peft import LoraConfig, get_peft_model

        return get_peft_model(llm, LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                                              target_modules=list(self.target_modules)))


@dataclass
class OptimSettings:
    """``policy.optim``: AdamW, gradient clipping and the learning-rate schedule."""

    lr: float = 1e-5  # issue 7: 1e-5–3e-5 stayed stable on the prototype, 1e-4 collapsed rare names
    betas: List[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0  # 0 disables clipping (the norm is still reported)
    warmup_steps: int = 0  # linear warm-up from 0 over this many optimizer steps
    schedule: str = "constant"  # "constant" after warm-up | "cosine" decay to min_lr_ratio·lr
    total_steps: int = 0  # cosine only: the step at which the decay ends (the trainer's step count)
    min_lr_ratio: float = 0.0  # cosine only
    fused: bool = True  # torch's fused AdamW kernel (CPU and CUDA; beats the per-tensor loop on CPU); false: foreach


@dataclass
class PolicyConfig:
    """Section ``policy``: the FSDP2 policy workers (:class:`funrl.policy.fsdp_worker.PolicyWorker`)."""

    world_size: int = 1  # policy ranks (one Ray actor each; gloo on CPU, NCCL on GPU)
    micro_batch_size: int = 4  # sequences per forward/backward on one rank (gradient accumulation)
    logprob_micro_batch_size: int = 8  # sequences per no-grad forward for old/ref log-probs
    gradient_checkpointing: bool = False
    share_prompt: bool = True  # feed each prompt once per micro-batch for all its samples (funrl.policy.batch)
    param_dtype: str = "float32"  # compute dtype of the FSDP2 all-gathered params; masters stay fp32
    reshard_after_forward: bool = True  # FSDP2: free gathered layer params after forward (ZeRO-3)
    seed: int = 0  # LoRA initialisation and dropout RNG (rank r uses seed + r for dropout)
    lora: LoraSettings = field(default_factory=LoraSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)

    def __post_init__(self) -> None:
        _pcheck("world_size", self.world_size >= 1, "an integer >= 1", self.world_size)
        _pcheck("micro_batch_size", self.micro_batch_size >= 1, "an integer >= 1", self.micro_batch_size)
        _pcheck(
            "logprob_micro_batch_size", self.logprob_micro_batch_size >= 1, "an integer >= 1",
            self.logprob_micro_batch_size,
        )
        _pcheck("param_dtype", self.param_dtype in PARAM_DTYPES, f"one of {PARAM_DTYPES}", self.param_dtype)
        lora, opt = self.lora, self.optim
        _pcheck("lora.r", lora.r >= 1, "an integer >= 1", lora.r)
        _pcheck("lora.dropout", 0 <= lora.dropout < 1, "a number in [0, 1)", lora.dropout)
        _pcheck("lora.target_modules", len(lora.target_modules) > 0, "a non-empty list of module names",
                lora.target_modules)
        _pcheck("optim.lr", opt.lr > 0, "a number > 0", opt.lr)
        _pcheck("optim.betas", len(opt.betas) == 2, "a list of two numbers [beta1, beta2]", opt.betas)
        _pcheck("optim.max_grad_norm", opt.max_grad_norm >= 0, "a number >= 0 (0: no clipping)", opt.max_grad_norm)
        _pcheck("optim.warmup_steps", opt.warmup_steps >= 0, "an integer >= 0", opt.warmup_steps)
        _pcheck("optim.schedule", opt.schedule in LR_SCHEDULES, f"one of {LR_SCHEDULES}", opt.schedule)
        if opt.schedule == "cosine":
            _pcheck("optim.total_steps", opt.total_steps > opt.warmup_steps,
                    "an integer > optim.warmup_steps when optim.schedule is 'cosine'", opt.total_steps)
        _pcheck("optim.min_lr_ratio", 0 <= opt.min_lr_ratio <= 1, "a number in [0, 1]", opt.min_lr_ratio)


def _pcheck(key: str, ok: bool, expected: str, got: object) -> None:
    check_value(f"policy.{key}", ok, expected, got)
