"""``funrl config show`` and ``funrl config validate``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show or validate configs")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION")
    csub.required = True
    show = csub.add_parser("show", help="print the resolved config (defaults + file + overrides)")
    show.add_argument("config", nargs="?", help="YAML file (omit for the defaults)")
    show.add_argument("overrides", nargs="*", metavar="key=value")
    show.set_defaults(func=_show)
    val = csub.add_parser("validate", help="check config files (default: every YAML under examples/)")
    val.add_argument("files", nargs="*")
    val.set_defaults(func=_validate)


def _show(args: argparse.Namespace) -> int:
    from funrl.config import load_config, to_yaml

    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config and not Path(config).exists():
        config, overrides = None, [config, *overrides]
    print(to_yaml(load_config(config, overrides)), end="")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from funrl.config import validate_files

    files = args.files or sorted(str(p) for p in Path("examples").rglob("*.yaml"))
    if not files:
        print("no config files found (looked under examples/)")
        return 1
    bad = 0
    for path, err in validate_files(files):
        print(f"ok    {path}" if err is None else f"FAIL  {err}")
        bad += err is not None
    print(f"{len(files) - bad} valid, {bad} invalid")
    return 2 if bad else 0  # a user error (the CLI's exit code for one)
