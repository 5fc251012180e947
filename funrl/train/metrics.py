"""Step metrics: ``metrics.jsonl`` and TensorBoard in the run directory, a line on the console."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

# (metric name, console label): every name is one the trainer emits (tests/train/test_grpo_ray.py
# checks them against a real run's metrics.jsonl)
CONSOLE_KEYS = [
    ("reward/total_mean", "reward"),
    ("wer", "wer"),
    ("kl_ref", "kl"),
    ("clip_frac_high", "clip+"),
    ("clip_frac_low", "clip-"),
    ("entropy", "ent"),
    ("response_len_mean", "len"),
    ("time/step", "s/step"),
]


class MetricsLogger:
    def __init__(self, run_dir: Path, total_steps: int, tensorboard: bool = True, start_step: int = 0,
                 tracker=None):
        """``tracker``: also log there (:class:`funrl.train.wandb_log.WandbTracker`), same names."""
        self.path = run_dir / "metrics.jsonl"
        self.tracker = tracker
        self.console = Console(stderr=True)
        self.total = total_steps
        self.progress = Progress(
            TextColumn("[bold]GRPO"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
            TextColumn("{task.description}"), console=self.console, transient=False,
        )
        self.task = self.progress.add_task("", total=total_steps, completed=start_step)
        self.progress.start()
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard.writer import FileWriter

            # One event a step holding every scalar (SummaryWriter.add_scalar writes one event per
            # scalar), a queue that holds a few steps and the writer's timed flush (flush_secs): with
            # add_scalar and the defaults (10 events, a flush a step) the writer thread cost time every step.
            self.tb = FileWriter(str(run_dir / "tensorboard"), max_queue=1000, flush_secs=10)
            if start_step > 0:  # a resume: TensorBoard drops the earlier files' events from this step on
                from tensorboard.compat.proto.event_pb2 import Event, SessionLog

                self.tb.add_event(Event(step=start_step, session_log=SessionLog(status=SessionLog.START)))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": step, **{k: _plain(v) for k, v in sorted(metrics.items())}}
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.tb is not None:  # one event holding every scalar of the step
            from tensorboard.compat.proto.summary_pb2 import Summary
            from torch.utils.tensorboard.summary import scalar

            values = [scalar(k, v).value[0] for k, v in row.items()
                      if isinstance(v, (int, float)) and k != "step" and math.isfinite(v)]
            self.tb.add_summary(Summary(value=values), step)
        if self.tracker is not None:
            self.tracker.log(step, row)
        parts = [f"{label} {row[k]:.4g}" for k, label in CONSOLE_KEYS if isinstance(row.get(k), (int, float))]
        self.progress.console.print(f"step {step + 1}/{self.total}  " + "  ".join(parts), highlight=False)
        self.progress.update(self.task, completed=step + 1, description="  ".join(parts[:2]))

    def log_samples(self, step: int, records: list[dict]) -> None:
        """Append ``records`` to ``samples.jsonl``; a text panel ``samples`` in TensorBoard."""
        with open(self.path.with_name("samples.jsonl"), "a", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        if self.tb is not None:
            from torch.utils.tensorboard.summary import text

            self.tb.add_summary(text("samples", samples_markdown(records)), step)
        if self.tracker is not None:
            self.tracker.log_samples(step, records)

    def close(self) -> None:
        self.progress.stop()
        if self.tb is not None:
            self.tb.close()
        if self.tracker is not None:
            self.tracker.close()
            self.tracker = None


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def read_metrics(run_dir: Path) -> list[dict]:
    from funrl.data.jsonl import read_jsonl

    return [row for _, row in read_jsonl(run_dir / "metrics.jsonl", what="metrics file", torn_tail_ok=True)]


def truncate_metrics(run_dir: Path, last_step: int, name: str = "metrics.jsonl") -> int:
    """Keep the rows of steps ``<= last_step`` of ``run_dir/name`` (``metrics.jsonl``,
    ``samples.jsonl``: a resume redoes the later steps) and drop a line torn by a kill mid-write;
    the file is replaced atomically. Returns the rows dropped."""
    path = run_dir / name
    if not path.is_file():
        return 0
    from funrl.data.jsonl import read_jsonl

    keep, dropped = [], []
    for lineno, row in read_jsonl(path, what=f"{name} file", on_error=lambda lineno, msg: dropped.append(lineno)):
        if isinstance(row.get("step"), int) and row["step"] <= last_step:
            keep.append(json.dumps(row) + "\n")
        else:
            dropped.append(lineno)
    dropped = len(dropped)
    if dropped:
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(tmp, "w") as f:
            f.writelines(keep)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return dropped


def sample_records(step: int, rows: list[dict], texts: list[str], rewards: dict, adv, kept: list[int],
                   finish_reasons: list[str], group_size: int, prompts: int) -> list[dict]:
    """The first ``prompts`` prompts of a step, one record each: the manifest id and reference,
    then its G completions with their total reward, each reward component (None where it does not
    apply), the advantage, the engine's finish reason and whether the update used it."""
    kept_set = set(kept)
    out = []
    for p in range(min(prompts, len(rows))):
        samples = []
        for i in range(p * group_size, (p + 1) * group_size):
            samples.append({
                "text": texts[i], "reward": rewards["total"][i],
                "components": {name: vals[i] for name, vals in rewards["components"].items()},
                "advantage": float(adv[i]), "finish_reason": finish_reasons[i], "in_update": i in kept_set,
            })
        out.append({"step": step, "id": rows[p].get("id"), "reference": rows[p].get("text", ""), "samples": samples})
    return out


def samples_markdown(records: list[dict]) -> str:
    """The records as one Markdown table for TensorBoard's text panel."""
    lines = ["| id | reference | completion | reward | advantage |", "|---|---|---|---|---|"]
    esc = lambda x: str(x).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    for r in records:
        for s in r["samples"]:
            lines.append(f"| {esc(r['id'])} | {esc(r['reference'])} | {esc(s['text'])} | {s['reward']:.3f} | {s['advantage']:+.3f} |")
    return "\n".join(lines)
