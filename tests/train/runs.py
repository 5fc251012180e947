"""A short real training run for the tests that check what a run wrote."""

from __future__ import annotations

from pathlib import Path

from funrl.config import load_config
from funrl.train.driver import Trainer
from funrl.train.metrics import read_metrics


def train_to_end(overrides: list[str]) -> tuple[Path, list[dict]]:
    """Run the config of ``overrides`` to the end on Ray (``finish`` even when a step raises);
    ``(run_dir, metrics.jsonl rows)``."""
    trainer = Trainer(load_config(None, overrides))
    try:
        trainer.run_steps()
    finally:
        trainer.finish()
    return trainer.run_dir, read_metrics(trainer.run_dir)
