"""The streaming decode loop with rollback, over any model.

Policy (as Fun-ASR's streaming decodes, in our words): the audio grows by ``chunk_s`` at a time.
At each chunk the model gets the audio so far and the committed text minus its last
``rollback`` tokens, which it continues; the result becomes the new committed text. So the last
``rollback`` tokens may be revised at every chunk, everything before them is fixed; the final
chunk (the whole audio) gives the final transcript.

Figures a user of streaming ASR expects: the first-token latency (the audio seconds heard when the
first token appeared), the number of revisions (tokens of an earlier chunk's output that a later
chunk changed), and the real-time factor (decode wall time / audio seconds).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence


@dataclass
class StreamResult:
    tokens: list  # the final transcript's tokens
    partials: list = field(default_factory=list)  # (audio seconds heard, tokens shown) per chunk
    first_token_s: float | None = None  # audio seconds heard when the first token appeared
    revisions: int = 0  # tokens shown at one chunk and changed at a later one
    rtf: float = 0.0  # decode wall seconds / audio seconds


class StreamingDecoder:
    """``continue_fn(audio_s, prefix) -> continuation``: the model on the first ``audio_s`` seconds
    of the audio, prompted to continue the token list ``prefix``; returns the tokens after it."""

    def __init__(self, continue_fn: Callable[[float, list], Sequence], chunk_s: float = 0.72, rollback: int = 5):
        if chunk_s <= 0 or rollback < 0:
            raise ValueError(f"chunk_s must be > 0 and rollback >= 0, got {chunk_s} and {rollback}")
        self.continue_fn, self.chunk_s, self.rollback = continue_fn, chunk_s, rollback

    def boundaries(self, duration_s: float) -> list[float]:
        """Chunk ends: ``chunk_s``, ``2·chunk_s``, …, and the end of the audio."""
        n = max(1, math.ceil(duration_s / self.chunk_s - 1e-9))
        return [min(duration_s, (i + 1) * self.chunk_s) for i in range(n)]

    def run(self, duration_s: float) -> StreamResult:
        t0 = time.perf_counter()
        shown: list = []
        res = StreamResult(tokens=[])
        for b in self.boundaries(duration_s):
            keep = shown[: max(0, len(shown) - self.rollback)]
            new = keep + list(self.continue_fn(b, list(keep)))
            res.revisions += sum(1 for i in range(len(keep), len(shown)) if i >= len(new) or new[i] != shown[i])
            if new and res.first_token_s is None:
                res.first_token_s = b
            shown = new
            res.partials.append((b, list(shown)))
        res.tokens = shown
        res.rtf = (time.perf_counter() - t0) / duration_s if duration_s > 0 else 0.0
        return res
