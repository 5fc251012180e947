"""Guided exploration (``algorithm.guide``): one sample of each group is a transcript the policy did
not sample.

GRPO learns from a group only when its samples differ in reward. A warm start that is sure of a
wrong transcript samples it G times (the demo's: on the test split the reference is a median 6
nats less likely than its greedy transcript, ``examples/reference_gap.py``), so the group is
silent exactly where the model is wrong. Here the last of the G rows is replaced by a guide:

- ``ctc``: the greedy transcript of the model's own CTC head (the Fun-ASR report's CTC branch on
  the audio encoder), computed by the encoder role in the same encoder pass as the prompt
  embeddings. It is acoustic evidence the LLM's prior can override: on the demo's test split the
  CTC head alone makes fewer errors than the LLM (259 against 401) and the better of the two per
  utterance 193 (``examples/reference_gap.py --ctc``). The reward decides whether it beats the
  samples. (On the demo it did not beat the equal-time SFT control: README, "What else was tried".)
- ``reference``: the manifest text (off-policy guidance from the answer, as LUFFY's).

The guide row goes through the reward and the loss like any other row: its advantage is its
reward against the group's, its ratio is taken against π_old as the policy computes it, and it has
no engine log-probs (NaN: the mismatch metrics count it as zero difference and ``rollout_is``
gives it weight 1). A guide longer than ``rollout.max_new_tokens`` is cut there (finish reason
``length``), as a sample would be. This departs from the report, whose RL samples every completion
from the policy.

The guides travel inside the encoder's packed embeddings as extra tensors named ``guide:i`` (token
ids, the end-of-turn token included) and ``guide_text:i`` (UTF-8 bytes);
:func:`funrl.train.workers.base.prompt_tensors` skips them.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

PREFIX = "guide"  # names "guide:i" and "guide_text:i" in a PackedTensors


def is_guide(name: str) -> bool:
    return name.startswith(PREFIX)


def guide_tensors(ids: Sequence[Sequence[int]], texts: Sequence[str], end_id: int) -> list[tuple[str, torch.Tensor]]:
    """The named tensors that carry each row's guide ids and text in a pack, and the end-of-turn id."""
    out = [(f"{PREFIX}_end", torch.tensor([end_id], dtype=torch.long))]
    for i, (t, s) in enumerate(zip(ids, texts)):
        out.append((f"{PREFIX}:{i}", torch.tensor(list(t), dtype=torch.long)))
        out.append((f"{PREFIX}_text:{i}", torch.tensor(list(s.encode("utf-8")), dtype=torch.uint8)))
    return out


def read_guides(packs: Sequence[Any]) -> list[tuple[list[int], str, str]]:
    """``(ids, text, finish reason)`` per row from the encoder's pack(s), in row order (several
    packs: one per encoder worker, each with its own rows)."""
    out = []
    for pack in packs:
        named = {n: t for n, t in pack.tensors() if is_guide(n)}
        end = int(named[f"{PREFIX}_end"][0])
        n = sum(1 for k in named if k.startswith(f"{PREFIX}:"))
        for i in range(n):
            ids = named[f"{PREFIX}:{i}"].tolist()
            text = bytes(named[f"{PREFIX}_text:{i}"].tolist()).decode("utf-8")
            out.append((ids, text, "stop" if ids and ids[-1] == end else "length"))
    return out


def make_guides(tokenizer, rows: Sequence[dict], kind: str, ctc_ids: Sequence[Sequence[int]] | None,
                max_new_tokens: int) -> tuple[list[list[int]], list[str]]:
    """Each row's guide: its token ids ending in ``<|im_end|>`` (cut at ``max_new_tokens``) and text."""
    from funrl.models.prompt import target_ids

    ids, texts = [], []
    for i, row in enumerate(rows):
        if kind == "reference":
            text = row.get("text") or ""
        else:
            text = tokenizer.decode(list(ctc_ids[i]), skip_special_tokens=True).strip()
        full = target_ids(tokenizer, text)
        t = full[:max_new_tokens]
        ids.append(t)
        texts.append(text if len(t) == len(full) else tokenizer.decode(t, skip_special_tokens=True).strip())
    return ids, texts


def apply_guides(prompts: Sequence[int], batch, texts: list[str], guides: Sequence[tuple[list[int], str, str]],
                 G: int) -> list[int]:
    """Replace the last row of each prompt's group in ``batch`` / ``texts`` (a hand-back holding the
    groups of ``prompts``, prompt-major) by that prompt's guide, in place; returns the rows replaced."""
    rows = []
    for k, p in enumerate(prompts):
        r = (k + 1) * G - 1
        ids, text, reason = guides[p]
        batch.token_ids[r] = list(ids)
        batch.logprobs[r] = [float("nan")] * len(ids)  # not sampled by the engine
        batch.finish_reasons[r] = reason
        texts[r] = text
        rows.append(r)
    return rows
