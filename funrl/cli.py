"""The ``funrl`` command line.

Each subcommand lives in the module that owns it and exposes ``register(subparsers)``; this file
only lists them. Heavy imports (torch, ray) happen inside the command functions so that
``funrl --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# module path -> registers one top-level subcommand
SUBCOMMANDS = [
    "funrl.config.cli",
    "funrl.data.cli",
    "funrl.eval.cli",
    "funrl.profiling.cli",
    "funrl.rewards.cli",
    "funrl.sft.cli",
    "funrl.train.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="funrl", description="GRPO for audio-language models")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for mod in SUBCOMMANDS:
        importlib.import_module(mod).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand. A user error (:class:`funrl.errors.UserError`, or a file the OS refuses
    to read or write) is one line on stderr and exit code 2; only funrl's own bugs get a traceback."""
    from funrl.config import ConfigError
    from funrl.errors import UserError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"funrl: config error: {e.one_line()}", file=sys.stderr)
        return 2
    except UserError as e:
        print(f"funrl {args.command}: {e.one_line()}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.filename is None:
            raise
        print(f"funrl {args.command}: {e.filename}: {e.strerror}; check the path and its "
              "permissions", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
