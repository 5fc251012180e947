"""The SFT loop: build or load the model, train CE + CTC with AdamW (warm-up, cosine decay), evaluate
dev WER every ``eval_every`` steps, keep ``last/`` and ``best/`` (lowest dev error rate) checkpoints.

Run directory: ``metrics.jsonl`` (one JSON object per log or eval event), ``config.yaml`` (the
resolved config), ``last/`` and ``best/`` (model folders, :mod:`funrl.models.io`), ``summary.json``.
A checkpoint is written to a temporary folder beside its target and renamed into place, so a crash
never leaves a half-written ``best/``. The report trains the parts in five stages (§4.2.2); the
tiny model from scratch is trained jointly in one stage, and ``trainable`` / ``lora`` select parts
for a staged recipe (one ``funrl sft`` run per stage, each starting from the last ``model.path``).

The loop runs on a *job*: :class:`NativeSft` (funrl's own format) or
:class:`funrl.sft.family.FamilySft` (a transformers family, ``model.family`` or a family folder in
``model.path``); both offer ``params``, ``lengths``, ``loss``, ``evaluate``, ``save`` and ``train``.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from funrl.config import ConfigError

from funrl.data.features import cmvn_stats
from funrl.sft.data import FeatureSet, bucketed_batches, load_features, spec_augment


def build_or_load(cfg, train: FeatureSet, log=print):
    """``(model, tokenizer)``: from ``model.path``, or a tokenizer trained on the training text and
    a model built from ``model`` with the encoder's CMVN set from the training features."""
    from funrl.models.audio_llm import build_model, count_parameters
    from funrl.models.io import load_pretrained
    from funrl.models.prompt import template_strings
    from funrl.models.tokenizer import train_tokenizer

    if cfg.model.path:
        model, tok = load_pretrained(cfg.model.path)
        log(f"model: loaded {cfg.model.path}")
    else:
        tok = train_tokenizer([u.text for u in train.utts], cfg.model.vocab_size, template_strings(cfg.model.prompt))
        model = build_model(cfg.model, tok)
        cmvn = cmvn_stats(train.feats)
        model.encoder.feat_mean.copy_(torch.from_numpy(cmvn.mean)), model.encoder.feat_std.copy_(torch.from_numpy(cmvn.std))
        log(f"model: built from config, {count_parameters(model) / 1e6:.2f}M parameters, vocabulary {len(tok)}")
    return model, tok


def select_trainable(model, cfg) -> list[torch.nn.Parameter]:
    """Freeze every part not in ``sft.trainable``; wrap the LLM with LoRA when ``sft.lora.enabled``."""
    from funrl.models.audio_llm import PARTS

    bad = [p for p in cfg.sft.trainable if p not in PARTS]
    if bad:
        raise ConfigError(f"sft.trainable: unknown part(s) {bad}; choose from {list(PARTS)}")
    if cfg.sft.lora.enabled:
        model.llm = cfg.sft.lora.wrap(model.llm)
    for name in ("encoder", "adaptor", "ctc", "llm"):
        if name == "ctc" and model.ctc_head is None:
            continue
        on = name in cfg.sft.trainable
        for n, p in model.part(name).named_parameters():
            p.requires_grad = on and (not (name == "llm" and cfg.sft.lora.enabled) or "lora_" in n)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("sft.trainable selects no parameters; list at least one of encoder, adaptor, llm, ctc")
    return params


def lr_factor(step: int, warmup: int, total: int, time_frac: float = 0.0) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0. Progress is the step's share of
    ``total`` or, when a time limit is set, ``time_frac`` (training time used / ``max_minutes``),
    whichever is further: the schedule reaches 0 when the run stops, whichever limit stops it."""
    if step < warmup:
        return (step + 1) / warmup
    frac = min(1.0, max((step - warmup) / max(1, total - warmup), time_frac))
    return 0.5 * (1.0 + math.cos(math.pi * frac))


def save_atomic(job, target: Path, dtype: str) -> None:
    """Write ``job``'s model folder to ``target`` via a temporary folder and renames."""
    tmp = target.with_name(target.name + ".tmp")
    old = target.with_name(target.name + ".old")
    for p in (tmp, old):
        shutil.rmtree(p, ignore_errors=True)
    tmp.mkdir(parents=True)
    job.save(tmp, dtype)
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def dev_eval(model, tok, dev: FeatureSet, limit: int) -> dict:
    from funrl.eval.decode import transcribe
    from funrl.eval.metrics import compute_metrics

    n = len(dev) if limit <= 0 else min(limit, len(dev))
    hyps = transcribe(model, tok, dev.utts[:n], dev.feats[:n])
    m = compute_metrics(hyps, dev.utts[:n], n_boot=0)
    return {"dev_error_rate": m["overall"]["error_rate"], "dev_hallucination_rate": m["hallucination_rate"],
            "dev_utterances": n, "dev_example": hyps[0] if hyps else ""}


class NativeSft:
    """funrl's own format under SFT, behind the interface the loop uses (see :class:`funrl.sft.family.FamilySft`)."""

    def __init__(self, cfg, log=print):
        self.train_set = load_features(cfg.data.require("train_manifest"), log, cfg.data.max_duration)
        self.dev = load_features(cfg.data.eval_manifest, log) if cfg.data.eval_manifest else None
        self.model, self.tok = build_or_load(cfg, self.train_set, log)
        self.params = select_trainable(self.model, cfg)

    @property
    def lengths(self) -> list[int]:
        return [f.shape[0] for f in self.train_set.feats]

    def train(self, on: bool = True) -> None:
        self.model.train(on)

    def loss(self, idx, gen, ctc_weight: float):
        from funrl.data.features import collate
        from funrl.sft.loss import sft_loss

        x, lens = collate([self.train_set.feats[i] for i in idx])
        if gen is not None:
            x = spec_augment(x, lens, self.model.encoder.feat_mean, gen)
        utts = [self.train_set.utts[i] for i in idx]
        return sft_loss(self.model, self.tok, x, lens, utts, [u.text for u in utts], ctc_weight)

    def evaluate(self, limit: int) -> dict:
        row = dev_eval(self.model, self.tok, self.dev, limit)
        self.model.train()
        return row

    def save(self, folder: Path, dtype: str) -> None:
        from funrl.models.io import save_pretrained

        save_pretrained(self.model, self.tok, folder, dtype=dtype)


def is_family_run(cfg) -> bool:
    """A transformers family model: ``model.family`` set, or ``model.path`` a family folder."""
    from funrl.models.families import is_native

    if cfg.model.path:
        return not is_native(cfg.model.path)
    return bool(cfg.model.family)


def run_sft(cfg, log=print) -> dict:
    """Train per ``cfg.sft`` (a FunRLConfig); returns the summary written to ``summary.json``."""
    from funrl.config import to_yaml

    s = cfg.sft
    train_path = cfg.data.require("train_manifest")
    torch.set_num_threads(max(1, s.threads))
    torch.manual_seed(cfg.run.seed)
    out = Path(s.output_dir or Path(cfg.run.output_dir) / cfg.run.name)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(to_yaml(cfg), encoding="utf-8")
    logf = open(out / "metrics.jsonl", "a", encoding="utf-8")

    def record(row: dict) -> None:
        logf.write(json.dumps(row, ensure_ascii=False) + "\n")
        logf.flush()
        log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))

    if is_family_run(cfg):
        from funrl.sft.family import load_family_job

        job = load_family_job(cfg, log)
    else:
        if cfg.data.streaming.enabled:
            raise ConfigError(f"data.streaming.p={cfg.data.streaming.p}: streaming SFT needs a transformers family "
                              "model (model.path a family folder, or model.family); set data.streaming.p=0")
        job = NativeSft(cfg, log)
    dev, params = job.dev, job.params
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    rng = np.random.default_rng(cfg.run.seed)
    gen = torch.Generator().manual_seed(cfg.run.seed)
    lengths = job.lengths
    best, step, t0, train_s = float("inf"), 0, time.time(), 0.0
    job.train()

    def evaluate_and_save() -> None:
        nonlocal best
        row = {"event": "eval", "step": step, "train_minutes": round(train_s / 60, 2)}
        if dev is not None:
            row.update(job.evaluate(s.eval_max_utterances))
        record(row)
        save_atomic(job, out / "last", s.save_dtype)
        if dev is not None and row["dev_error_rate"] < best:
            best = row["dev_error_rate"]
            save_atomic(job, out / "best", s.save_dtype)

    while step < s.max_steps and not (s.max_minutes and train_s >= s.max_minutes * 60):
        for idx in bucketed_batches(lengths, s.batch_size, rng):
            ts = time.time()
            loss, m = job.loss(idx, gen if s.spec_augment else None, s.ctc_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(params, s.grad_clip)
            time_frac = train_s / (s.max_minutes * 60) if s.max_minutes else 0.0
            lr = s.lr * lr_factor(step, s.warmup_steps, s.max_steps, time_frac)
            for group in opt.param_groups:
                group["lr"] = lr
            opt.step()
            step += 1
            train_s += time.time() - ts
            if step % s.log_every == 0:
                record({"event": "train", "step": step, **m, "grad_norm": float(gnorm),
                        "lr": lr, "train_minutes": round(train_s / 60, 2)})
            if step % s.eval_every == 0:
                evaluate_and_save()
            if step >= s.max_steps or (s.max_minutes and train_s >= s.max_minutes * 60):
                break
    if step % s.eval_every:
        evaluate_and_save()
    summary = {"steps": step, "train_minutes": round(train_s / 60, 2), "wall_minutes": round((time.time() - t0) / 60, 2),
               "best_dev_error_rate": best if dev is not None else None, "output_dir": str(out)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    logf.close()
    return summary
