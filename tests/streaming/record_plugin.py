"""A reward plugin for the streaming GRPO test: writes every sample it is given to ``out`` (one
JSON line each, with its completion and reference) and scores the built-in hallucination penalty,
so the run's rewards still differ. Loaded by file path."""

from __future__ import annotations

import json

from funrl.rewards.hallucination import Hallucination


def record(completions, *, references, samples, step, out="", **kwargs):
    with open(out, "a", encoding="utf-8") as f:
        for c, r, s in zip(completions, references, samples):
            f.write(json.dumps({"step": step, "completion": c, "reference": r,
                                **{k: v for k, v in s.items() if k != "audio_bytes"}}, ensure_ascii=False) + "\n")
    return Hallucination()(completions, references=references, samples=samples)
