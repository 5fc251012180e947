"""The run directory before a run starts: nothing of another run is lost or mixed in.

:func:`prepare` runs in ``Trainer.__init__`` before Ray starts or anything is written:

- checkpoint folders left half-written by a killed run (``.step_N.tmp-PID``) are removed;
- a fresh run (``train.resume=""``) into a directory that holds metrics or checkpoints is refused,
  unless ``run.overwrite=true`` (then the old metrics, checkpoints, TensorBoard events, profile
  and model are removed first);
- a resume says where it resumes from (loudly when ``resume=latest`` finds no checkpoint and
  starts from step 0), says when the config is unchanged (the checkpoint's ``config_sha256``),
  else refuses config keys that cannot change under a checkpoint (each one named) and lists the
  ones it applies, and cuts ``metrics.jsonl`` back to the resumed step, so every
  step has one row.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from funrl.errors import UserError
from funrl.train import checkpoint as ckpt
from funrl.train.metrics import truncate_metrics

log = logging.getLogger(__name__)

# what a run writes into its directory (config.yaml is rewritten by every start)
OUTPUTS = ("metrics.jsonl", "samples.jsonl", "checkpoints", "tensorboard", "profile", "model")

# keys a resume cannot change: the checkpoint's weights, optimizer moments, data position or
# RNG streams belong to their old values (a prefix ending in "." covers its section)
FROZEN = (
    "model.", "policy.lora.", "policy.world_size", "policy.seed", "algorithm.group_size",
    "run.seed", "rollout.seed", "data.train_manifest", "data.max_duration",
    "train.prompts_per_step", "train.shuffle",
)
# how the run is laid out, not what it trains: a resume may change these under "model."
OPERATIONAL = ("model.encoder_workers", "model.embed_cache_mib")
# keys that only say where things are or how this start behaves
IGNORED = ("run.name", "run.output_dir", "run.overwrite", "train.resume", "logging.")


class RunDirError(UserError, ValueError):
    """The run directory and the config disagree (old outputs, changed keys under a checkpoint)."""


@dataclass
class Start:
    checkpoint: Path | None  # the checkpoint to resume from (None: step 0, fresh weights)
    step: int  # the first step this run takes


def prepare(cfg: Any, run_dir: Path) -> Start:
    removed = ckpt.remove_partial(run_dir)
    if removed:
        log.warning("removed %d checkpoint folder(s) left half-written by a killed run: %s",
                    len(removed), ", ".join(p.name for p in removed))
    if not cfg.train.resume:
        _fresh(cfg, run_dir)
        return Start(None, 0)
    path = ckpt.resolve_resume(run_dir, cfg.train.resume)
    if path is None:
        log.warning("train.resume=latest: no complete checkpoint in %s%s; STARTING FROM STEP 0 with the "
                    "model in model.path", ckpt.checkpoint_dir(run_dir),
                    " (only the half-written ones removed above)" if removed else "")
        for name in ("metrics.jsonl", "samples.jsonl"):
            truncate_metrics(run_dir, -1, name)
        return Start(None, 0)
    state = ckpt.load_state(path)
    check_config(cfg, state, path)
    for name in ("metrics.jsonl", "samples.jsonl"):
        truncate_metrics(run_dir, state["step"], name)
    log.warning("resuming from %s (the last complete checkpoint): steps 0-%d are done, the run continues "
                "at step %d", path, state["step"], state["step"] + 1)
    return Start(path, state["step"] + 1)


def _fresh(cfg: Any, run_dir: Path) -> None:
    found = [n for n in ("metrics.jsonl",) if (run_dir / n).is_file() and (run_dir / n).stat().st_size] + [
        f"checkpoints/{p.name}" for _, p in ckpt.list_checkpoints(run_dir)]
    if not found:
        return
    if not cfg.run.overwrite:
        raise RunDirError(
            f"run directory {run_dir} already holds a run ({', '.join(found[:4])}{' ...' if len(found) > 4 else ''}); "
            "continue it with train.resume=latest, replace it with run.overwrite=true, or pick another run.name"
        )
    for name in OUTPUTS:
        p = run_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    log.warning("run.overwrite=true: removed the previous run's %s from %s", ", ".join(OUTPUTS), run_dir)


def flat(d: Any, prefix: str = "") -> dict[str, Any]:
    """{"a.b.c": leaf} of a nested dict (lists are leaves)."""
    if not isinstance(d, dict):
        return {prefix[:-1]: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(flat(v, f"{prefix}{k}."))
    return out


def check_config(cfg: Any, state: dict, path: Path) -> None:
    """Refuse keys in :data:`FROZEN` that differ from the checkpoint's config; log the others.

    When the checkpoint's ``config_sha256`` is the new config's hash the config is unchanged and
    no key is compared; otherwise the stored config is compared key by key."""
    new_config = config_dict(cfg)
    if state.get("config_sha256") == config_hash(new_config):
        log.warning("resuming with the config unchanged (config_sha256 matches the checkpoint's)")
        return
    if "config" not in state:
        log.warning("checkpoint %s has no config snapshot (an older funrl wrote it): changed keys "
                    "cannot be checked against it", path)
        return
    old, new = flat(state["config"]), flat(new_config)
    changed = sorted(k for k in set(old) | set(new)
                     if old.get(k) != new.get(k) and not k.startswith(IGNORED))
    frozen = [k for k in changed if k.startswith(FROZEN) and k not in OPERATIONAL]
    if frozen:
        what = "; ".join(f"{k}: {old.get(k)!r} in the checkpoint, {new.get(k)!r} now" for k in frozen)
        raise RunDirError(
            f"train.resume={cfg.train.resume}: {path} was trained with other values of keys a resume cannot "
            f"change: {what}. Set them back, or start a new run (another run.name) with train.resume unset"
        )
    if changed:
        log.warning("resuming with changed settings, applied from here on: %s",
                    "; ".join(f"{k}={new.get(k)!r} (was {old.get(k)!r})" for k in changed))


def config_dict(cfg: Any) -> dict:
    """The config as plain JSON-able values (what trainer_state.json stores)."""
    from omegaconf import OmegaConf

    return json.loads(json.dumps(OmegaConf.to_container(OmegaConf.structured(cfg)), default=str))


def config_hash(config: dict) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
