"""What a streaming model should have transcribed by a chunk boundary.

A manifest's word timings are ``words: [[word, start_s, end_s], …]`` (Mandarin: one entry per
word or character, as the corpus defines it). At a boundary ``b`` the partial reference is the
words spoken *entirely* before it (``end_s <= b``): a word cut in half by the boundary is not in
it, because the model has not heard all of it yet (saying it is a guess, which the hallucination
reward should be able to penalise).
"""

from __future__ import annotations

from typing import Sequence

import regex

_CJK = regex.compile(r"^[\p{Han}]+$")


def join_words(words: Sequence[str]) -> str:
    """Words as the manifest writes text: a space between two words unless both are Chinese.

    >>> join_words(["给", "Ingrid", "打", "电话"])
    '给 Ingrid 打电话'
    """
    out = ""
    for w in words:
        if out and not (_CJK.match(out[-1]) and _CJK.match(w[0])):
            out += " "
        out += w
    return out


def words_by(words: Sequence[Sequence], boundary_s: float) -> list[str]:
    """The words of ``words`` (``[word, start_s, end_s]``, in time order) that end at or before
    ``boundary_s``; nothing after a word still being spoken is complete."""
    done = []
    for w in words:
        word, start, end = str(w[0]), float(w[1]), float(w[2])
        if end < start:
            raise ValueError(f"word {word!r} ends ({end}) before it starts ({start})")
        if end > boundary_s + 1e-9:
            break
        done.append(word)
    return done


def partial_reference(words: Sequence[Sequence], boundary_s: float) -> str:
    """The text of the words of ``words`` (``[word, start_s, end_s]``) that end at or before ``boundary_s``."""
    return join_words(words_by(words, boundary_s))
