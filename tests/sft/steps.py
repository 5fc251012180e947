"""Helpers the family SFT tests share: a few optimiser steps on a job, then its saved weights."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file


def saved_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(Path(folder) / "model.safetensors"))


def train_then_save(job, out: Path, steps: int, ctc_weight: float, lr: float = 1e-2) -> dict[str, torch.Tensor]:
    """``steps`` AdamW steps of ``job`` on rows 0 and 1, then ``job.save(out)`` (float32); its weights."""
    job.train()
    opt = torch.optim.AdamW(job.params, lr=lr)
    for _ in range(steps):
        loss, _ = job.loss([0, 1], None, ctc_weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
    out.mkdir()
    job.save(out, "float32")
    return saved_weights(out)
