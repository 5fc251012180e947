"""Weights & Biases, optional (``pip install -e ".[wandb]"``; ``logging.wandb.enabled=true``).

The same metric names as ``metrics.jsonl`` and TensorBoard, logged at the same step; the run's
config as the W&B config; sample outputs (``train.samples_every``) as a ``samples`` table. The
W&B run id is kept in ``RUN_DIR/wandb_run_id``, so a resumed run continues the same W&B run.
``logging.wandb.mode=offline`` writes the run under ``RUN_DIR/wandb`` without a network (``wandb
sync`` uploads it later); the tests run that way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List

from funrl.errors import ConfigValueError


@dataclass
class WandbConfig:
    enabled: bool = False
    project: str = "funrl"
    entity: str = ""  # your W&B team or user ("" : the default of your login)
    name: str = ""  # the W&B run's name ("": run.name)
    mode: str = "online"  # online | offline (no network; `wandb sync RUN_DIR/wandb/offline-run-*` later)
    tags: List[str] = field(default_factory=list)


@dataclass
class LoggingConfig:
    """Config section ``logging``: trackers beside ``metrics.jsonl`` and TensorBoard."""

    wandb: WandbConfig = field(default_factory=WandbConfig)

    def check(self) -> None:
        w = self.wandb
        if w.mode not in ("online", "offline"):
            raise ConfigValueError("logging.wandb.mode", "'online' or 'offline'", w.mode)
        if w.enabled:
            try:
                import wandb  # noqa: F401
            except ImportError:
                raise ConfigValueError("logging.wandb.enabled", "false unless wandb is installed", True,
                                       fix='install it with pip install -e ".[wandb]" (or pip install wandb), '
                                           "or set logging.wandb.enabled=false") from None


class WandbTracker:
    """One W&B run for a funrl run; :meth:`log` takes the rows ``metrics.jsonl`` gets."""

    def __init__(self, cfg: WandbConfig, run_dir: Path, run_name: str, config: dict, resumed: bool):
        import uuid

        import wandb

        id_file = run_dir / "wandb_run_id"
        run_id = id_file.read_text().strip() if resumed and id_file.is_file() else uuid.uuid4().hex[:12]
        id_file.write_text(run_id + "\n")
        self.run = wandb.init(project=cfg.project, entity=cfg.entity or None, name=cfg.name or run_name,
                              mode=cfg.mode, tags=list(cfg.tags), dir=str(run_dir), config=config, id=run_id,
                              resume="allow", settings=wandb.Settings(silent=True, console="off"))

    def log(self, step: int, row: dict[str, Any]) -> None:
        values = {k: v for k, v in row.items()
                  if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        self.run.log(values, step=step)

    def log_samples(self, step: int, records: list[dict]) -> None:
        import wandb

        cols = ["step", "id", "reference", "completion", "reward", "advantage", "finish_reason"]
        table = wandb.Table(columns=cols)
        for r in records:
            for c in r.get("samples", []):
                table.add_data(step, r.get("id"), r.get("reference"), c.get("text"), c.get("reward"),
                               c.get("advantage"), c.get("finish_reason"))
        self.run.log({"samples": table}, step=step)

    def close(self) -> None:
        self.run.finish()
