"""Everything a training run can refuse before it writes a file or starts Ray.

:func:`preflight` runs the runnable-config checks (:data:`funrl.config.checks.RUN_CHECKS`; the CLI
has already run them with file:line, this covers the Python API), then every manifest row: JSON,
fields, and the audio file of each row exists, decodes and is not empty (``load_manifest`` with
``check_audio``, the same code as ``funrl data check``). Rows longer than ``data.max_duration``
are left out with a count; rows longer than the model's context with no ``data.max_duration`` are
refused, with the limit to set.
"""

from __future__ import annotations

import logging

from funrl.config import ConfigError
from funrl.config.checks import RUN_CHECKS, check_ranges

log = logging.getLogger(__name__)


def check_config(cfg) -> None:
    """The loader's range and runnable checks on a config object (a ConfigError names the key)."""
    for check in (check_ranges, *RUN_CHECKS):
        try:
            check(cfg)
        except ValueError as e:
            raise ConfigError(str(e)) from None


def check_rag(cfg) -> None:
    """``data.hotwords=rag``: the list exists and holds terms, and the model has a CTC head."""
    from pathlib import Path

    d = cfg.data
    if d.hotwords != "rag":
        return
    path = Path(d.hotword_list)
    if not path.is_file():
        raise ConfigError(f"data.hotword_list={d.hotword_list}: no such file (one term per line)")
    if not any(line.strip() and not line.lstrip().startswith("#") for line in path.read_text(encoding="utf-8").splitlines()):
        raise ConfigError(f"data.hotword_list={d.hotword_list}: no terms (one term per line; # starts a comment)")
    if not (Path(cfg.model.path) / "ctc.json").is_file():
        raise ConfigError(f"data.hotwords=rag: model.path={cfg.model.path} has no CTC head (ctc.json, "
                          "ctc.safetensors) for the first pass; train one with funrl sft sft.trainable=[ctc], "
                          "or set data.hotwords=manifest")


def check_guide(cfg) -> None:
    """``algorithm.guide=ctc``: a transformers family model with a CTC head, without RAG context."""
    from pathlib import Path

    from funrl.models.families import is_native

    if cfg.algorithm.guide == "none":
        return
    if cfg.data.streaming.p > 0:
        raise ConfigError(f"algorithm.guide={cfg.algorithm.guide} with data.streaming.p={cfg.data.streaming.p}: not "
                          "combined yet (a streaming prompt's guide would have to be its partial transcript); "
                          "set one of them off")
    if cfg.algorithm.guide != "ctc":
        return
    if is_native(cfg.model.path) or not (Path(cfg.model.path) / "ctc.json").is_file():
        raise ConfigError(f"algorithm.guide=ctc: model.path={cfg.model.path} is not a transformers family folder "
                          "with a CTC head (ctc.json, ctc.safetensors); train one with funrl sft "
                          "sft.trainable=[ctc], or set algorithm.guide=none")
    if cfg.data.hotwords == "rag":
        raise ConfigError("algorithm.guide=ctc with data.hotwords=rag: not combined yet (both run the CTC head on "
                          "the encoder); set one of them to none")


def check_streaming(cfg, utts: list) -> None:
    """``data.streaming``: a transformers family model (its prompt builder cuts the audio and carries
    the prefix), and word timings on the rows; rows without them stay offline, counted in the log."""
    s = cfg.data.streaming
    if not s.enabled:
        return
    from funrl.models.families import is_native

    if cfg.model.path and is_native(cfg.model.path):
        raise ConfigError(f"data.streaming.p={s.p}: model.path={cfg.model.path} is a funrl-format model; streaming "
                          "prompts need a transformers family model (Fun-ASR-Nano, Qwen2-Audio); set data.streaming.p=0")
    if s.prefix == "model" and cfg.train.prefetch_prompts:
        raise ConfigError("data.streaming.prefix=model needs the rollout engine's decode of each cut prompt before "
                          "the prompt is built, which train.prefetch_prompts would run beside the update; set one "
                          "of them off")
    from funrl.streaming.training import check_timed

    check_timed(utts, cfg.data.train_manifest, s, log.warning)


def preflight(cfg) -> list:
    """The training utterances, after every check that can fail before the run starts."""
    from funrl.data.config import filter_by_duration
    from funrl.data.context import max_clip_seconds, too_long, too_long_message
    from funrl.data.manifest import load_manifest

    check_config(cfg)
    check_rag(cfg)
    check_guide(cfg)
    manifest = cfg.data.require("train_manifest")
    utts = load_manifest(manifest, check_audio=True)
    utts, dropped = filter_by_duration(utts, cfg.data.max_duration)
    if dropped:
        log.warning("data.max_duration=%s: %d of %d utterances left out of training",
                    cfg.data.max_duration, len(dropped), len(dropped) + len(utts))
    if not utts:
        raise ConfigError(f"data.max_duration={cfg.data.max_duration} leaves none of the "
                          f"{len(dropped)} utterances of {manifest}; raise it")
    limit = max_clip_seconds(cfg.model.path, cfg.rollout.max_new_tokens) if cfg.model.path else None
    long = too_long(utts, limit)
    if long:
        raise ConfigError(too_long_message(
            manifest, long, limit, cfg.model.path,
            f"set data.max_duration={limit:.0f} (or less) to leave them out of training"))
    check_streaming(cfg, utts)
    return utts
