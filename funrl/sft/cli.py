"""``funrl sft CONFIG [key=value ...]``: the supervised warm start (see funrl.sft.trainer)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sft", help="supervised fine-tuning (CE + CTC) of the audio LLM; writes checkpoints")
    p.add_argument("config", nargs="?", help="YAML config (sections run, model, sft)")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from funrl.config import load_config
    from funrl.sft.trainer import run_sft

    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config and not Path(config).exists():
        config, overrides = None, [config, *overrides]
    summary = run_sft(load_config(config, overrides), log=lambda m: print(m, flush=True))
    print(f"done: {summary}")
    return 0
