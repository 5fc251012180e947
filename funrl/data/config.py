"""Config section ``data``: which manifests to train and evaluate on, and the feature front end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from funrl.streaming.training import StreamingConfig


@dataclass
class DataConfig:
    """Manifests are JSONL (see ``funrl.data.manifest``); relative paths resolve against the
    working directory. They default to unset because no path is right for every run: a command
    that needs one says so (``data.train_manifest is not set: ...``), and ``funrl config
    validate`` accepts configs that only score or profile."""

    train_manifest: Optional[str] = None
    eval_manifest: Optional[str] = None
    # The front end (16 kHz, fbank bins, CMVN) is the model's: its config and saved statistics.
    # utterances longer than this (seconds) are left out of training with a counted report
    # (funrl.data.config.filter_by_duration); None keeps everything
    max_duration: Optional[float] = None
    # the hotword context of GRPO's prompts (and of eval during training): "saved" (the model's
    # prompt setting, model.prompt.use_hotwords), "none", "manifest" (each row's hotwords), or
    # "rag": the terms retrieved from hotword_list by the model's CTC first pass (funrl.hotwords.rag)
    hotwords: str = "saved"
    hotword_list: Optional[str] = None
    rag_k: int = 10  # rag: terms retrieved per utterance
    # streaming-mode prompts (issue 19; funrl.streaming.training): a share p of the prompts cut at
    # a chunk boundary, with the committed prefix and the partial reference; SFT and GRPO
    streaming: StreamingConfig = field(default_factory=StreamingConfig)

    def check(self) -> None:
        from funrl.errors import ConfigValueError

        if self.hotwords not in ("saved", "none", "manifest", "rag"):
            raise ConfigValueError("data.hotwords", "one of saved, none, manifest, rag", self.hotwords)
        if self.hotwords == "rag" and not self.hotword_list:
            raise ConfigValueError("data.hotword_list", "a file of terms (one a line) with data.hotwords=rag",
                                   self.hotword_list)
        if self.rag_k < 1:
            raise ConfigValueError("data.rag_k", "an integer >= 1", self.rag_k)
        self.streaming.check()

    def require(self, key: str) -> str:
        """The path at ``key`` (``train_manifest`` / ``eval_manifest``), or an actionable error."""
        from funrl.errors import ConfigError

        value = getattr(self, key)
        if not value:
            raise ConfigError(f"data.{key} is not set: pass data.{key}=PATH/train.jsonl (make one "
                              "with `funrl data synth --out DIR --n 1000 --seed 0`)")
        return value


def filter_by_duration(utterances: list, max_duration: Optional[float]) -> tuple[list, list]:
    """``(kept, dropped)`` by ``max_duration``; callers log ``len(dropped)`` (never drop silently).

    Utterances without a ``duration`` are kept (their length is unknown until loaded).
    """
    if max_duration is None:
        return list(utterances), []
    kept = [u for u in utterances if u.duration is None or u.duration <= max_duration]
    dropped = [u for u in utterances if u.duration is not None and u.duration > max_duration]
    return kept, dropped
