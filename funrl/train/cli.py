"""``funrl train CONFIG [key=value ...]``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="GRPO training on Ray (encode → rollout → reward → update → sync)")
    p.add_argument("config", help="YAML config, e.g. examples/tiny_asr_grpo.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    import sys

    from funrl.config import load_config
    from funrl.config.checks import RUN_CHECKS
    from funrl.train.driver import Trainer
    from funrl.train.roles import WorkerDied

    # rewards built, model folder, ranges, settings that learn: all with file:line, before Ray
    cfg = load_config(args.config, args.overrides, checks=RUN_CHECKS)
    try:
        run_dir = Trainer(cfg).fit()  # a RewardError (the user's plugin) reaches main: exit 2
    except WorkerDied as e:
        print(f"funrl train: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"run directory: {run_dir}")
    print(f"trained model: {run_dir / 'model'}  (evaluate: funrl eval --model {run_dir / 'model'} --manifest TEST.jsonl)")
    return 0
