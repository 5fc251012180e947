"""Streaming-mode training data (issue 19; the report's §4.2.5 "fine-tuning on data that is chunked
to simulate a real-time streaming scenario"): ``data.streaming: {chunk_ms, prefix, p}``.

A share ``p`` of the prompts is cut at a chunk boundary ``b = k · chunk_ms`` (``k`` uniform over
the clip's chunks; the last "boundary" is the end of the clip), as the streaming decoder
(:mod:`funrl.streaming.decode`) sees it at its ``k``-th chunk:

- the audio ends at ``b`` (``audio_end_s``; the families' prompt builders cut it there);
- the prompt carries the committed prefix (``stream_prefix``) as the start of the answer. With
  ``prefix: reference`` it is the words fully spoken by the previous boundary ``b − chunk_ms``
  (what an ideal streaming decoder had shown one chunk earlier) less its last ``rollback`` tokens,
  which the decoder reopens at every chunk (``funrl eval --rollback``). With ``prefix: model`` it is
  the model's own greedy decode of the audio up to the previous boundary, whole (SFT: the starting
  model's, computed once; GRPO: the policy's, by the rollout engine at each step, a
  ``stream_prefix`` phase in the profile), so the model learns to go on from its own output;
- the target (``text``, what the rewards score as the reference) is the rest of the words fully
  spoken by ``b`` after the prefix (from inside a word, when the rollback reopened it): a word the boundary cuts in half is not in it, so saying it is
  a guess, which the hallucination reward's ``unheard`` rule penalises (and on an empty target, any
  output at all: its noise rule);
- ``keywords`` keeps the keywords that occur in the target.

Departure from the decoder: at inference the committed text is the model's own output; with
``prefix: reference`` training commits the reference. The rewards see
``stream_boundary_s`` (b), ``stream_prefix``, ``stream_reference`` (all words fully spoken by b,
prefix included) and ``full_text`` (the whole clip's transcript) in their samples
(:mod:`funrl.rewards.protocol`). Rows without word timings (``words``) stay offline, counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np

from funrl.streaming.reference import join_words, words_by

PREFIX_MODES = ("reference", "model")


@dataclass
class StreamingConfig:
    """``data.streaming``: p = 0 (the default) trains offline only."""

    p: float = 0.0  # share of the prompts cut at a chunk boundary
    chunk_ms: int = 720  # the streaming decoder's chunk (funrl eval --streaming --chunk-ms)
    prefix: str = "reference"  # the committed prefix: "reference" words or the "model"'s own decode
    rollback: int = 5  # reference prefix: its last tokens left to the target, as funrl eval --rollback reopens them
    seed: Optional[int] = None  # the boundaries' draws; None: run.seed

    def check(self) -> None:
        from funrl.errors import ConfigValueError

        if not 0.0 <= float(self.p) <= 1.0:
            raise ConfigValueError("data.streaming.p", "a share in [0, 1]", self.p)
        if int(self.chunk_ms) <= 0:
            raise ConfigValueError("data.streaming.chunk_ms", "a positive number of milliseconds", self.chunk_ms)
        if int(self.rollback) < 0:
            raise ConfigValueError("data.streaming.rollback", "a number of tokens >= 0", self.rollback)
        if self.prefix not in PREFIX_MODES:
            raise ConfigValueError("data.streaming.prefix", "reference or model", self.prefix)

    @property
    def enabled(self) -> bool:
        return float(self.p) > 0

    @property
    def chunk_s(self) -> float:
        return int(self.chunk_ms) / 1000.0


def check_timed(utts, manifest: str, cfg: StreamingConfig, warn) -> list[int]:
    """The indices of ``utts`` (manifest Utterances) with word timings, for ``data.streaming``: a
    :class:`~funrl.errors.ConfigError` when none has them, ``warn(message)`` with the count (and the
    first line) when some lack them (they stay offline)."""
    from funrl.errors import ConfigError

    have = [i for i, u in enumerate(utts) if u.words is not None and u.duration]
    if not have:
        raise ConfigError(f"data.streaming.p={cfg.p}: no row of {manifest} has word timings ('words'); "
                          "`funrl data synth` writes them, `funrl data align` adds them to a manifest")
    if len(have) < len(utts):
        first = next(u for u in utts if u.words is None or not u.duration)
        warn(f"data.streaming: {len(utts) - len(have)} of {len(utts)} rows of {manifest} have no word timings "
             f"('words', first: line {first.line}); they stay offline")
    return have


def n_chunks(duration: float, chunk_s: float) -> int:
    return max(1, math.ceil(duration / chunk_s - 1e-9))


def keep_tokens(text: str, tokenizer, rollback: int) -> str:
    """``text`` without its last ``rollback`` tokens (as the decoder leaves them open to revision):
    the longest decode of a token prefix that is also a string prefix of ``text`` (a multi-byte
    character split between tokens decodes to a replacement character, so one more goes)."""
    if rollback <= 0 or not text:
        return text
    ids = tokenizer.encode(text, add_special_tokens=False)
    for n in range(max(0, len(ids) - rollback), -1, -1):
        kept = tokenizer.decode(ids[:n])
        if text.startswith(kept):
            return kept
    return ""


def streaming_view(row: Mapping[str, Any], k: int, chunk_s: float, tokenizer=None, rollback: int = 0,
                   model_prefix: str | None = None) -> dict:
    """``row`` as the streaming decoder sees it at chunk ``k`` (1-based; the last chunk ends at
    the clip's end). Prefix: the reference words spoken by the previous boundary, less their last
    ``rollback`` tokens of ``tokenizer``; the target is the rest of the words heard by the
    boundary (it may begin inside a word the rollback reopened, with the space that precedes it).
    ``model_prefix``: the model's own decode up to the previous boundary instead (``prefix:
    model``; the target is then the words spoken since that boundary)."""
    duration = float(row["duration"])
    n = n_chunks(duration, chunk_s)
    if not 1 <= k <= n:
        raise ValueError(f"chunk {k} is outside 1..{n} for a clip of {duration} s in {chunk_s} s chunks")
    words = row.get("words")
    if words is None:
        raise ValueError(f"row {row.get('id')!r} has no word timings ('words'); make them with `funrl data align`")
    b, prev = min(duration, k * chunk_s), (k - 1) * chunk_s
    heard, committed = words_by(words, b), words_by(words, prev)
    heard_text = join_words(heard)
    if model_prefix is not None:
        prefix = model_prefix
        new = join_words(heard[len(committed):])
        text = join_words([prefix, new])[len(prefix):] if prefix and new else new  # with the space it needs
    else:
        prefix = keep_tokens(join_words(committed), tokenizer, rollback) if tokenizer is not None else join_words(committed)
        text = heard_text[len(prefix):]
    out = dict(row)
    out.update(audio_end_s=round(b, 6), stream_boundary_s=round(b, 6), stream_prefix=prefix,
               stream_reference=heard_text, full_text=row.get("text", ""), text=text,
               keywords=[kw for kw in row.get("keywords") or [] if kw.casefold() in text.casefold()])
    return out


def draw_chunk(row: Mapping[str, Any], rng: np.random.Generator, cfg: StreamingConfig) -> int | None:
    """The chunk a row is cut at (1-based), or None: offline. One ``rng.random()`` always, then one
    ``rng.integers`` when it is cut, so the draws of later rows do not depend on a row's timings."""
    cut = rng.random() < float(cfg.p)
    if not cut or row.get("words") is None or row.get("duration") is None:
        return None
    return int(rng.integers(1, n_chunks(float(row["duration"]), cfg.chunk_s) + 1))


def row_rng(seed: int, step: int, draw: int, i: int) -> np.random.Generator:
    """The generator of the ``i``-th row of a step's ``draw``-th sample of rows: a resumed run cuts
    the same rows at the same boundaries."""
    return np.random.default_rng([int(seed), int(step), int(draw), int(i)])


def cut_audio(wave: np.ndarray, row: Mapping[str, Any], rate: int) -> np.ndarray:
    """The samples a row's prompt hears: all of them, or up to ``audio_end_s``."""
    end = row.get("audio_end_s")
    if end is None:
        return wave
    return wave[: max(1, int(round(float(end) * rate)))]
