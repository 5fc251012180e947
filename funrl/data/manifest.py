"""JSONL speech manifests in the FunASR style: one utterance per line.

Fields of a line (a JSON object):

=========== ========== =====================================================================
``audio``   required   path to the audio file, relative to the manifest's folder or absolute
``text``    required   the transcript; empty only on a noise line
``id``      optional   unique string (default ``<manifest stem>-<line number>``)
``language`` optional  ``en``, ``zh`` or ``mixed`` (code-switched), or null
``keywords`` optional  list of the rare terms actually spoken (each must occur in ``text``)
``hotwords`` optional  list of context terms for the prompt (may include distractors)
``duration`` optional  seconds (checked against the file when audio is checked)
``noise``    optional  true for a clip without speech, whose ``text`` must be empty
``words``    optional  word timings ``[[word, start_s, end_s], …]`` in time order (Mandarin: a
                       character an entry); written by ``funrl data synth`` and ``funrl data
                       align``, read by streaming training (``data.streaming``)
=========== ========== =====================================================================

FunASR's own names are accepted as aliases: ``key`` for ``id``, ``source`` for ``audio``,
``target`` for ``text``. Other fields are kept (``Utterance.extra``) and written back unchanged.

Loading collects every problem in the file before raising one :class:`ManifestError` that lists
them (file:line, field, what was expected, what to do), so a bad manifest is fixed in one pass.
Nothing is skipped silently: blank lines are the only lines without an utterance.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from funrl.errors import UserError

LANGUAGES = ("en", "zh", "mixed")
ALIASES = {"key": "id", "source": "audio", "target": "text"}
KNOWN = ("id", "audio", "text", "language", "keywords", "hotwords", "duration", "noise", "words")
DURATION_TOLERANCE_S = 0.05  # declared vs. measured duration
MAX_LISTED = 30  # problems spelled out in an exception message
AUDIO_CHECK_THREADS = 8  # header reads in flight (I/O bound: more threads than cores is fine)


class ManifestError(UserError, ValueError):
    """One or more problems in a manifest; ``problems`` holds one message per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        shown = self.problems[:MAX_LISTED]
        more = len(self.problems) - len(shown)
        tail = f"\n  … and {more} more (run `funrl data check` for all)" if more > 0 else ""
        head = f"{len(self.problems)} manifest problem(s):\n  "
        super().__init__(head + "\n  ".join(shown) + tail)

    def one_line(self) -> str:
        """The first problem, and how many more there are (the CLI's one line)."""
        first, more = self.problems[0], len(self.problems) - 1
        path = first.split(":", 1)[0]
        return first + (f" (and {more} more problem(s): `funrl data check {path}` lists them)"
                        if more else "")


@dataclass
class Utterance:
    """One manifest row; ``audio`` is an absolute path."""

    id: str
    audio: str
    text: str
    language: str | None = None
    keywords: list[str] = field(default_factory=list)
    hotwords: list[str] = field(default_factory=list)
    duration: float | None = None
    noise: bool = False
    words: list | None = None  # [[word, start_s, end_s], …] when the row has timings
    extra: dict[str, Any] = field(default_factory=dict)
    line: int | None = field(default=None, compare=False, repr=False)  # in the manifest read (not written)

    def to_dict(self, relative_to: str | Path | None = None) -> dict[str, Any]:
        """The manifest row (what reward modules receive as ``samples``); with ``relative_to``,
        ``audio`` is written relative to that folder when it lies below it."""
        audio = self.audio
        if relative_to is not None:
            try:
                audio = Path(self.audio).relative_to(Path(relative_to).resolve()).as_posix()
            except ValueError:
                pass
        row = {"id": self.id, "audio": audio, "text": self.text, "language": self.language,
               "keywords": list(self.keywords), "hotwords": list(self.hotwords),
               "duration": self.duration, "noise": self.noise}
        if self.words is not None:
            row["words"] = [list(w) for w in self.words]
        row.update(self.extra)
        return row


def write_manifest(path: str | Path, utterances: Iterable[Utterance]) -> None:
    """Write JSONL (UTF-8, one row per line, audio paths relative to the file's folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = path.parent.resolve()
    with open(path, "w", encoding="utf-8") as f:
        for u in utterances:
            f.write(json.dumps(u.to_dict(relative_to=folder), ensure_ascii=False) + "\n")


def load_manifest(path: str | Path, check_audio: bool = False) -> list[Utterance]:
    """Parse and validate a manifest; with ``check_audio`` also open every audio file.

    Raises :class:`ManifestError` listing every problem: a missing or unreadable manifest, a line
    that is not UTF-8 (named by its line), an empty manifest, and each bad row. The audio checks
    (:func:`check_audio_file`, a header read per file) run on a thread pool: cffi releases the
    GIL during libsndfile's calls, so on several cores the file opens overlap (bench/manifest_check.py).
    A row without ``duration`` gets the measured one.
    """
    from funrl.data.jsonl import JsonlError, read_jsonl

    path = Path(path)
    problems: list[tuple[int, str]] = []
    rows: list[tuple[int, Utterance]] = []
    first_line: dict[str, int] = {}
    lines = read_jsonl(path, what="manifest", on_error=lambda lineno, msg: problems.append((lineno, msg)))
    try:
        lines = list(lines)
    except JsonlError as e:  # the file itself: missing, a folder, unreadable
        raise ManifestError([str(e)]) from None
    for lineno, row in lines:
        where = f"{path}:{lineno}"
        found: list[str] = []
        utt = _parse_line(row, where, path, lineno, found)
        problems += [(lineno, p) for p in found]
        if utt is None:
            continue
        if utt.id in first_line:
            problems.append((lineno, f"{where}: field 'id': duplicate id {utt.id!r} (first on "
                                     f"line {first_line[utt.id]}); make ids unique"))
            continue
        first_line[utt.id] = lineno
        rows.append((lineno, utt))
    if check_audio:
        problems += _check_all_audio(rows, path)
    if not rows and not problems:
        problems.append((0, f"{path}: the manifest has no utterances; add one JSON object per "
                            "line (make a corpus with `funrl data synth --out DIR --n 100`)"))
    if problems:
        raise ManifestError([p for _, p in sorted(problems, key=lambda lp: lp[0])])
    return [u for _, u in rows]


def _check_all_audio(rows: list[tuple[int, Utterance]], path: Path) -> list[tuple[int, str]]:
    from concurrent.futures import ThreadPoolExecutor

    def one(row: tuple[int, Utterance]) -> list[tuple[int, str]]:
        lineno, utt = row
        return [(lineno, p) for p in check_audio_file(utt, f"{path}:{lineno}")]

    with ThreadPoolExecutor(max_workers=AUDIO_CHECK_THREADS) as pool:
        return [p for found in pool.map(one, rows, chunksize=64) for p in found]


def _parse_line(row: dict, where: str, path: Path, lineno: int,
                problems: list[str]) -> Utterance | None:
    start = len(problems)
    row = _apply_aliases(row, where, problems)
    fields = {k: _check_field(k, row.get(k), where, problems) for k in KNOWN}
    if len(problems) > start:
        return None
    text, noise = fields["text"], bool(fields["noise"])
    if not noise and not text.strip():
        problems.append(f"{where}: field 'text': empty transcript on a speech line; write the "
                        "transcript, or set \"noise\": true for a clip without speech")
    if noise and text.strip():
        problems.append(f"{where}: field 'text': a noise line (\"noise\": true) must have empty "
                        f"text, got {text!r}; clear it or set \"noise\": false")
    for kw in fields["keywords"] or []:
        if kw.casefold() not in text.casefold():
            problems.append(f"{where}: field 'keywords': {kw!r} does not occur in the text; "
                            "keywords are the terms actually spoken: fix the keyword or the text")
    words = fields["words"]
    if words is not None:
        _check_timings(words, fields["duration"], noise, where, problems)
    if len(problems) > start:
        return None
    audio = Path(fields["audio"])
    if not audio.is_absolute():
        audio = path.parent / audio
    return Utterance(
        id=fields["id"] if fields["id"] is not None else f"{path.stem}-{lineno}",
        audio=str(audio.resolve()), text=text, language=fields["language"],
        keywords=list(fields["keywords"] or []), hotwords=list(fields["hotwords"] or []),
        duration=None if fields["duration"] is None else float(fields["duration"]), noise=noise,
        words=None if words is None else [[str(w), float(a), float(b)] for w, a, b in words],
        extra={k: v for k, v in row.items() if k not in KNOWN}, line=lineno,
    )


def _check_timings(words: list, duration, noise: bool, where: str, problems: list[str]) -> None:
    """Time order, start <= end, within the clip; a noise line has no words."""
    fix = "fix the timings or drop 'words' (`funrl data align` derives them)"
    if noise and words:
        problems.append(f"{where}: field 'words': a noise line has no words, got {len(words)}; {fix}")
        return
    prev_end = 0.0
    for k, (w, a, b) in enumerate(words):
        if not (0 <= a <= b):
            problems.append(f"{where}: field 'words': entry {k} ({w!r}) starts at {a} and ends at {b}; "
                            f"need 0 <= start <= end; {fix}")
            return
        if a < prev_end - 1e-6:
            problems.append(f"{where}: field 'words': entry {k} ({w!r}) starts at {a}, before the previous "
                            f"word ends ({prev_end}); words must be in time order; {fix}")
            return
        if duration is not None and b > duration + DURATION_TOLERANCE_S:
            problems.append(f"{where}: field 'words': entry {k} ({w!r}) ends at {b} s, after the clip's "
                            f"duration {duration} s; {fix}")
            return
        prev_end = b


def _apply_aliases(row: dict, where: str, problems: list[str]) -> dict:
    row = dict(row)
    for alias, name in ALIASES.items():
        if alias in row:
            if name in row:
                problems.append(f"{where}: both '{name}' and its FunASR alias '{alias}' are set; "
                                "keep one")
            else:
                row[name] = row.pop(alias)
    return row


def _check_field(name: str, value: Any, where: str, problems: list[str]) -> Any:
    """The field's value if it has the right type, else None (and a problem)."""
    def bad(expected: str, fix: str) -> None:
        got = "missing" if value is None else f"got {json.dumps(value, ensure_ascii=False)}"
        problems.append(f"{where}: field '{name}': expected {expected}, {got}; {fix}")

    if name in ("audio", "text"):
        if not isinstance(value, str) or (name == "audio" and not value):
            bad("a string" if name == "text" else "a non-empty path string",
                f"every line needs '{name}'")
            return None
    elif name == "id":
        if value is not None and not (isinstance(value, str) and value):
            bad("a non-empty string", "write the id as a JSON string")
            return None
    elif name == "language":
        if value is not None and value not in LANGUAGES:
            bad(f"one of {', '.join(LANGUAGES)} or null", "use 'mixed' for code-switched speech")
            return None
    elif name in ("keywords", "hotwords"):
        if value is not None and not (isinstance(value, list)
                                      and all(isinstance(v, str) and v for v in value)):
            bad("a list of non-empty strings", "write e.g. [\"PyTorch\", \"张伟\"]")
            return None
    elif name == "duration":
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            bad("a number of seconds >= 0 or null", "fix it or drop the field")
            return None
    elif name == "words":
        def number(x):
            return not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x)

        if value is not None and not (isinstance(value, list) and all(
                isinstance(w, list) and len(w) == 3 and isinstance(w[0], str) and w[0]
                and number(w[1]) and number(w[2]) for w in value)):
            bad("a list of [word, start_s, end_s]", "write e.g. [[\"call\", 0.05, 0.31], [\"Priya\", 0.31, 0.8]]")
            return None
    elif name == "noise":
        if value is not None and not isinstance(value, bool):
            bad("true or false", "write a JSON boolean")
            return None
        return bool(value)
    return value


def check_audio_file(utt: Utterance, where: str) -> list[str]:
    """Problems with ``utt``'s audio: missing, unreadable, empty, undecodable (compressed files
    get their last block decoded, see :func:`funrl.data.audio.probe_audio`), or a wrong declared
    duration. Sets ``utt.duration`` to the measured length when the row has none."""
    from funrl.data.audio import AudioError, probe_audio

    try:
        info = probe_audio(utt.audio)
    except AudioError as e:
        return [f"{where}: field 'audio': {e}"]
    if info.frames == 0:
        return [f"{where}: field 'audio': {utt.audio} has no samples; remove the line or "
                "replace the file"]
    actual = info.frames / info.samplerate
    if utt.duration is not None and abs(utt.duration - actual) > DURATION_TOLERANCE_S:
        return [f"{where}: field 'duration': says {utt.duration:.3f} s but {utt.audio} lasts "
                f"{actual:.3f} s; fix or drop 'duration'"]
    if utt.duration is None:
        utt.duration = round(actual, 3)
    return []
