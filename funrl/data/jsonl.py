"""The one JSONL reader: ``(line number, object)`` for every non-blank line of a file.

Used by manifests (:mod:`funrl.data.manifest`), ``funrl rewards score`` inputs
(:mod:`funrl.rewards.cli`), the profiler's ``spans.jsonl`` (:mod:`funrl.profiling.records`) and a
run's ``metrics.jsonl`` (:mod:`funrl.train.metrics`). Each caller checks the objects' fields itself;
this module owns the file-level rules and their messages, which name ``file:line``:

- a missing, unreadable or folder path;
- a line that is not UTF-8 (byte and column);
- a line that is not JSON (the parser's message and column), or not a JSON object.

``on_error``: without it the first problem raises :class:`JsonlError`; with it every problem is
passed to ``on_error(line_number, message)`` and the line is skipped, so a checker can list all
of a file's problems at once. ``torn_tail_ok``: a last line that is not JSON is dropped with a
warning instead (a writer killed mid-line leaves one; the profiler's spans file may).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from funrl.errors import UserError


class JsonlError(UserError, ValueError):
    """A JSONL file a user can fix; the message names ``file:line`` and what is wrong."""


def read_jsonl(
    path: str | Path,
    *,
    what: str = "file",
    on_error: Optional[Callable[[int, str], None]] = None,
    torn_tail_ok: bool = False,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, dict)`` per non-blank line of ``path`` (``what`` names the file in
    messages: "manifest", "input", ...)."""
    path = Path(path)
    if path.is_dir():
        raise JsonlError(f"{path}: is a folder, not a {what}; pass the JSONL file in it")
    if not path.is_file():
        raise JsonlError(f"{path}: {what} not found; pass the path of a JSONL file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise JsonlError(f"{path}: cannot read the {what} ({e.strerror}); check its permissions") from None

    def problem(lineno: int, message: str) -> None:
        if on_error is None:
            raise JsonlError(message)
        on_error(lineno, message)

    lines = raw.splitlines()
    for lineno, data in enumerate(lines, 1):
        try:
            line = data.decode("utf-8")
        except UnicodeDecodeError as e:
            problem(lineno, f"{path}:{lineno}: byte 0x{data[e.start]:02x} at column {e.start + 1} is not UTF-8; "
                            f"save the {what} as UTF-8")
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            if torn_tail_ok and lineno == len(lines):
                warnings.warn(f"{path}:{lineno}: ignoring a torn last line (the writer stopped mid-line)")
                return
            problem(lineno, f"{path}:{lineno}: malformed JSON ({e.msg} at column {e.colno}); each line must "
                            "be one JSON object")
            continue
        if not isinstance(obj, dict):
            problem(lineno, f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            continue
        yield lineno, obj
