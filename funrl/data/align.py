"""``funrl data align``: word timings for a manifest without them, by CTC forced alignment with the
model's own CTC head (issue 19; the streaming training data needs ``words``).

The audio goes through the model's encoder and CTC head (transformers family folders with
``ctc.json`` + ``ctc.safetensors``, :mod:`funrl.models.families.ctc`); the transcript is tokenised
as the head was trained (the tokenizer's ids of ``text``), and a Viterbi pass over the CTC
trellis finds the frames where each token is emitted (:func:`forced_align`). Written here because
the library for it is gone: ``torchaudio.functional.forced_align`` left torchaudio in 2.9 and no
torchaudio release matches our torch 2.13; the ``ctc-segmentation`` package finds utterances in
long audio and lets its path skip frames for free, which on a short clip puts tokens where their
emission is improbable (checked: a clean three-spike matrix came back with the first token 3
frames late). The recursion is tested against every path enumerated by brute force.

From token times to our timing units (English words, Mandarin characters, as ``funrl data synth``
defines them): a CTC head emits each token on a frame or two somewhere inside its sound (the
spike), so two neighbouring tokens are taken to meet halfway between their spikes (see
:func:`token_times`). A token spanning several characters shares its time
among them equally, and byte-level pieces of one character add up. A unit starts where its first
character starts and ends where the next unit starts (the last one where its characters end).

Accuracy: CTC emits a token once, at a frame somewhere in its sound, so the times are as good as
the head's spikes; measured against the synthetic timings in the README (``funrl data align``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import regex
import torch

from funrl.errors import UserError

_UNIT = regex.compile(r"\p{Han}|[^\s\p{Han}]+")


def timing_units(text: str) -> list[tuple[str, int, int]]:
    """``(unit, first char, end char)``: each Han character, and each run of other non-space characters.

    >>> timing_units("给 Ingrid 打电话")
    [('给', 0, 1), ('Ingrid', 2, 8), ('打', 9, 10), ('电', 10, 11), ('话', 11, 12)]
    """
    return [(m.group(), m.start(), m.end()) for m in _UNIT.finditer(text)]


def forced_align(logp: np.ndarray, ids: Sequence[int], blank: int) -> np.ndarray | None:
    """The most likely CTC path of ``ids`` through ``logp [T, V]`` (Viterbi over the label
    sequence with blanks around and between, a blank required between repeats: the recursion of
    ``torchaudio.functional.forced_align``); ``[T]`` the token index (0..len-1) each frame emits, or
    -1 for a blank frame. None when the frames cannot hold the tokens."""
    L, T = len(ids), logp.shape[0]
    repeats = sum(1 for a, b in zip(ids, ids[1:]) if a == b)
    if not L or L + repeats > T:
        return None
    labels = np.full(2 * L + 1, blank, dtype=np.int64)
    labels[1::2] = ids
    S = len(labels)
    skip = np.zeros(S, dtype=bool)  # s may come from s-2: a token whose predecessor token differs
    skip[3::2] = labels[3::2] != labels[1:-2:2]
    emit = logp[:, labels]  # [T, S]
    score = np.full(S, -np.inf)
    score[:2] = emit[0, :2]
    back = np.zeros((T, S), dtype=np.int8)  # 0: stay, 1: from s-1, 2: from s-2
    for t in range(1, T):
        stay, one = score, np.concatenate([[-np.inf], score[:-1]])
        two = np.where(skip, np.concatenate([[-np.inf, -np.inf], score[:-2]]), -np.inf)
        cand = np.stack([stay, one, two])  # [3, S]
        back[t] = cand.argmax(0)
        score = cand.max(0) + emit[t]
    s = S - 1 if score[S - 1] >= score[S - 2] else S - 2
    if not np.isfinite(score[s]):
        return None
    path = np.empty(T, dtype=np.int64)
    for t in range(T - 1, -1, -1):
        path[t] = s
        s -= int(back[t, s])
    return np.where(path % 2 == 1, path // 2, -1)


def token_times(logp: np.ndarray, ids: Sequence[int], blank: int, frame_s: float) -> np.ndarray | None:
    """``[len(ids) + 1]`` token boundaries (s): token ``j`` lasts from ``[j]`` to ``[j + 1]``. A
    CTC head emits a token on one or a few frames inside its sound (the spike, from
    :func:`forced_align`): the first token starts at its first frame, two tokens meet halfway
    between their spikes' centres, the last ends after its last frame. None when the frames
    cannot hold the tokens."""
    path = forced_align(logp, ids, blank)
    if path is None:
        return None
    frames = [np.nonzero(path == j)[0] for j in range(len(ids))]
    centres = np.array([(f[0] + f[-1] + 1) / 2 for f in frames]) * frame_s
    bounds = np.empty(len(ids) + 1)
    bounds[0] = frames[0][0] * frame_s
    bounds[1:-1] = (centres[:-1] + centres[1:]) / 2
    bounds[-1] = (frames[-1][-1] + 1) * frame_s
    return bounds


def unit_timings(text: str, offsets: Sequence[tuple[int, int]], times: np.ndarray, duration: float) -> list[list]:
    """``[[unit, start_s, end_s], …]`` from token char ``offsets`` and their :func:`token_times`."""
    starts: dict[int, float] = {}
    ends: dict[int, float] = {}
    for j, (a, b) in enumerate(offsets):
        chars = [c for c in range(a, b) if not text[c].isspace()]
        if not chars:
            continue
        t0, t1 = float(times[j]), float(max(times[j + 1], times[j]))  # the token's [start, end)
        step = (t1 - t0) / len(chars)
        for k, c in enumerate(chars):
            starts[c] = min(starts.get(c, np.inf), t0 + k * step)
            ends[c] = max(ends.get(c, -np.inf), t0 + (k + 1) * step)
    units = timing_units(text)
    out = []
    for unit, a, b in units:
        s = [starts[c] for c in range(a, b) if c in starts]
        e = [ends[c] for c in range(a, b) if c in ends]
        out.append([unit, min(s) if s else None, max(e) if e else None])
    for i, w in enumerate(out):  # a unit no token reached (rare) starts where the one before ended
        if w[1] is None:
            w[1] = out[i - 1][2] if i else 0.0
            w[2] = w[1]
    for i in range(len(out) - 1):
        out[i][2] = max(out[i][1], out[i + 1][1])
    out[-1][2] = max(out[-1][1], min(float(duration), out[-1][2]))
    return [[u, round(float(s), 3), round(float(e), 3)] for u, s, e in out]


class Aligner:
    """The model's encoder + CTC head and tokenizer, aligning manifest rows in batches."""

    def __init__(self, model_dir: str, device: str = "cpu"):
        from funrl.models.families import is_native, load_audio_llm
        from funrl.models.families.ctc import load_ctc_head

        if is_native(model_dir):
            raise UserError(f"{model_dir}: funrl data align needs a transformers family folder with a CTC head "
                            "(ctc.json, ctc.safetensors); this is a funrl-format model")
        self.model = load_audio_llm(model_dir, device=torch.device(device))
        head = load_ctc_head(model_dir)
        if head is None or getattr(self.model, "ctc_input_size", None) is None:
            raise UserError(f"{model_dir}: no CTC head (ctc.json and ctc.safetensors beside the model); train one "
                            "with funrl sft sft.trainable=[ctc]")
        self.head = head.to(self.model.model.device).eval()

    @torch.inference_mode()
    def align(self, rows: Sequence[Mapping[str, Any]]) -> list[list | None]:
        """``words`` per row: ``[]`` for a noise row or an empty text, None where it cannot be aligned."""
        m = self.model
        speech = [i for i, r in enumerate(rows) if (r.get("text") or "").strip()]
        out: list[list | None] = [[] for _ in rows]
        if not speech:
            return out
        batch = [rows[i] for i in speech]
        _, enc, lengths = m.encode(m.on_model(m.prompt_inputs(batch)))
        logp = torch.log_softmax(self.head(enc.float()), dim=-1).cpu().numpy()  # [B, T, V+1]
        for b, (i, row) in enumerate(zip(speech, batch)):
            n = int(lengths[b])
            enc_ids = m.tokenizer(row["text"], add_special_tokens=False, return_offsets_mapping=True)
            duration = float(row.get("duration") or 0.0) or self._seconds(row)
            times = token_times(logp[b, :n], enc_ids["input_ids"], self.head.blank, duration / n)
            out[i] = None if times is None else unit_timings(row["text"], enc_ids["offset_mapping"], times, duration)
        return out

    @staticmethod
    def _seconds(row: Mapping[str, Any]) -> float:
        from funrl.data.audio import audio_info

        return float(audio_info(row["audio"]).duration)


def boundary_agreement(aligned: Sequence[Sequence], reference: Sequence[Sequence], duration: float, chunk_s: float
                       ) -> tuple[int, int]:
    """``(boundaries where the words heard agree, boundaries)`` over a clip's inner chunk
    boundaries: what streaming training needs of timings."""
    from funrl.streaming.reference import words_by
    from funrl.streaming.training import n_chunks

    n = n_chunks(duration, chunk_s)
    same = sum(words_by(aligned, k * chunk_s) == words_by(reference, k * chunk_s) for k in range(1, n))
    return same, n - 1
