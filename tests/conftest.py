"""Tests marked ``sglang`` run only under the SGLang environment's python.

The main env has no sglang (it pins another torch), so there they are deselected, with a line in
the summary saying how to run them: ``$(bash rollout/sglang_env.sh | tail -1) -m pytest -q -m
sglang tests/rollout``. ``make test`` runs that second invocation, so in CI they always run.
"""

from __future__ import annotations

import importlib.util

import pytest

_deselected: list[str] = []


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("sglang") is not None:
        return
    keep = [it for it in items if it.get_closest_marker("sglang") is None]
    gone = [it for it in items if it.get_closest_marker("sglang") is not None]
    if gone:
        if "sglang" in (config.getoption("markexpr") or "") and "not sglang" not in config.getoption("markexpr"):
            raise pytest.UsageError(
                "-m sglang needs the SGLang environment: run `$(bash rollout/sglang_env.sh | tail -1) "
                "-m pytest -q -m sglang tests` instead of this python"
            )
        config.hook.pytest_deselected(items=gone)
        items[:] = keep
        _deselected.extend(it.nodeid for it in gone)


def pytest_terminal_summary(terminalreporter):
    if _deselected:
        terminalreporter.write_line(
            f"{len(_deselected)} sglang tests deselected (no sglang in this python); they run under "
            "the SGLang env: $(bash rollout/sglang_env.sh | tail -1) -m pytest -q -m sglang tests"
        )
