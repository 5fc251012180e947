"""Config section ``sft``: the supervised warm start (cross-entropy on the target + CTC)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from funrl.policy.config import LoraSettings


def _sft_lora() -> LoraSettings:
    """SFT's defaults: off (full fine-tuning), and when on, r 8 on the attention projections."""
    return LoraSettings(enabled=False, r=8, alpha=16.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])


@dataclass
class SftConfig:
    """Trains on ``data.train_manifest``; ``data.eval_manifest`` (the dev split) picks ``best/``."""

    output_dir: str = ""  # logs (metrics.jsonl), checkpoints last/ and best/; empty: {run.output_dir}/{run.name}
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 300
    max_steps: int = 3000  # length of the cosine schedule
    max_minutes: float = 0.0  # also stop after this much training time (0: no limit)
    batch_size: int = 32
    ctc_weight: float = 0.3  # loss = CE(target) + ctc_weight * CTC
    grad_clip: float = 1.0
    trainable: List[str] = field(default_factory=lambda: ["encoder", "adaptor", "llm", "ctc"])
    lora: LoraSettings = field(default_factory=_sft_lora)
    spec_augment: bool = True  # time and frequency masking of training features
    eval_every: int = 250  # steps between dev evaluations (and checkpoints)
    eval_max_utterances: int = 300  # dev subset decoded at each evaluation (0: all)
    log_every: int = 25
    save_dtype: str = "float32"  # float32 | bfloat16 | float16 for saved checkpoints
    threads: int = 2  # torch CPU threads (at most 2 on the shared machine)
    # the hotword context each training prompt carries, drawn per utterance and step with these
    # weights: "none", "manifest" (the row's hotwords: its keywords among distractors), "rag" (terms
    # retrieved from hotword_list by the starting model's CTC first pass; Fun-ASR-Nano family);
    # empty: as model.prompt.use_hotwords says, for every prompt
    hotword_mix: Dict[str, float] = field(default_factory=dict)
    hotword_list: Optional[str] = None
