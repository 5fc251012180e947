"""The report's hotword RAG for one model: CTC first pass → phoneme retrieval → the prompt's hotwords.

:class:`RagContext` takes manifest rows and returns them with ``hotwords`` replaced by the terms
retrieved for each utterance; the family's prompt builder then writes them into its context
preamble (Fun-ASR-Nano's 热词列表), the same builder ``funrl eval`` and GRPO's encoder role use.
Needs a model folder with a CTC head (``ctc.json`` + ``ctc.safetensors``, trained by
``funrl sft``; :mod:`funrl.models.families.ctc`): a transformers family folder (Fun-ASR-Nano,
Qwen2-Audio).

Where we depart from the report: ``check="ctc"`` (``funrl eval --rag-check ctc``). A context list
can pull a small LLM off the audio: on the demo's held-out sentences the context-trained tiny model
stopped after a hotword it had only seen sentence-final in training ("在 Netflix 上播放音乐" →
"在 Netflix") or ran on into a memorised sentence. With the check, an utterance that got context is
also decoded without it, and keeps whichever transcript the CTC head (the first pass's own
log-probs, no second encoder pass) gives the higher likelihood of the audio: the acoustic model
vetoes a context-driven transcript the audio does not support. It costs a second LLM decode of
the rows that got context. The report does not describe such a check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from funrl.errors import UserError
from funrl.hotwords.ctc import ctc_greedy_decode, ctc_nll
from funrl.hotwords.retrieval import HotwordIndex


CHECKS = ("none", "ctc")


@dataclass
class _FirstPass:
    hypotheses: list[str]  # the CTC head's greedy transcripts
    audio: list[torch.Tensor]  # [B] of [n_i, H]: the LLM's audio features
    log_probs: torch.Tensor  # [B, T, V+1]: the CTC head's
    lengths: torch.Tensor  # [B] valid frames
    plain: list[torch.Tensor]  # [B] of [L_i, H]: the prompt embeddings without context


class RagContext:
    def __init__(self, audio_llm, model_dir: str | Path, hotword_list: str | Path, k: int = 10,
                 check: str = "none"):
        from funrl.models.families.ctc import load_ctc_head

        if check not in CHECKS:
            raise UserError(f"hotword RAG check {check!r}: one of {', '.join(CHECKS)}")

        head = load_ctc_head(model_dir)
        if head is None or getattr(audio_llm, "ctc_input_size", None) is None:
            raise UserError(f"{model_dir}: hotword RAG needs the model's CTC head (ctc.json and ctc.safetensors "
                            "beside a transformers family folder); train one with funrl sft sft.trainable=[ctc]")
        if not Path(hotword_list).is_file():
            raise UserError(f"{hotword_list}: hotword list not found (one term per line)")
        self.audio_llm, self.k, self.check = audio_llm, k, check
        self.head = head.to(audio_llm.model.device).eval()
        self.index = HotwordIndex.from_file(hotword_list)
        if not len(self.index):
            raise UserError(f"{hotword_list}: no terms (one term per line; # starts a comment)")

    @torch.inference_mode()
    def first_pass(self, rows: Sequence[Mapping[str, Any]]) -> list[str]:
        """The CTC head's greedy transcript of each row's audio (one encoder pass for the batch)."""
        return self._first_pass(rows).hypotheses

    def _first_pass(self, rows: Sequence[Mapping[str, Any]]) -> "_FirstPass":
        """One encoder pass on the rows' prompts without context (the encoder reads only the audio;
        that batch's ids give the prompts without context, which the check decodes)."""
        a = self.audio_llm
        inputs = a.on_model(a.prompt_inputs([{**dict(r), "hotwords": []} for r in rows]))
        audio, enc, lengths = a.encode(inputs)
        logp = self.head(enc.float())
        ids = ctc_greedy_decode(logp, lengths, blank=self.head.blank)
        return _FirstPass([a.tokenizer.decode(x, skip_special_tokens=True) for x in ids], audio, logp, lengths,
                          a.merge_audio(inputs, audio))

    def _with_context(self, rows: Sequence[Mapping[str, Any]]) -> tuple["_FirstPass", list[dict], list[torch.Tensor], list[int]]:
        """``(first pass, rows with the retrieved hotwords, their prompt embeddings, indices of the rows
        that got terms)``: the first pass's audio features fill every prompt; only the rows that got
        terms need a prompt of their own, the rest keep the one without context."""
        a = self.audio_llm
        fp = self._first_pass(rows)
        out = [{**dict(r), "hotwords": t} for r, t in zip(rows, self.retrieve(fp.hypotheses))]
        embeds = list(fp.plain)
        got = [i for i, r in enumerate(out) if r["hotwords"]]
        if got:
            ctx = a.merge_audio(a.on_model(a.prompt_inputs([out[i] for i in got])), [fp.audio[i] for i in got])
            for i, e in zip(got, ctx):
                embeds[i] = e
        return fp, out, embeds, got

    @torch.inference_mode()
    def prompt_embeds(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[dict], list[torch.Tensor]]:
        """``(rows with the retrieved hotwords, their prompt embeddings)`` with one encoder pass: the
        audio features the first pass computed fill the placeholders of the prompts with context
        (equal to ``audio_llm.prompt_embeds(self(rows))``, tested), rather than encoding the audio again."""
        _, out, embeds, _ = self._with_context(rows)
        return out, embeds

    @torch.inference_mode()
    def transcribe(self, rows: Sequence[Mapping[str, Any]], max_new_tokens: int = 64) -> tuple[list[dict], list[str]]:
        """``(rows with the retrieved hotwords, greedy transcripts)``, one encoder pass. With
        ``check="ctc"`` each row that got context also carries ``rag_kept``: ``"context"``, or
        ``"plain"`` when its transcript without context has the higher CTC likelihood (ties keep
        the context one)."""
        from funrl.models.prompt import target_ids

        a = self.audio_llm
        fp, out, embeds, got = self._with_context(rows)
        texts = a.transcribe_embeds(embeds, max_new_tokens)
        if self.check != "ctc" or not got:
            return out, texts
        plain = a.transcribe_embeds([fp.plain[i] for i in got], max_new_tokens)
        sel = torch.tensor(got, device=fp.log_probs.device)
        lp, n = fp.log_probs.index_select(0, sel), fp.lengths.index_select(0, sel.to(fp.lengths.device))
        cands = [texts[i] for i in got] + plain
        nll = ctc_nll(torch.cat([lp, lp]), torch.cat([n, n]), [target_ids(a.tokenizer, t)[:-1] for t in cands],
                      self.head.blank)
        for j, i in enumerate(got):
            keep_plain = bool(nll[len(got) + j] < nll[j])
            out[i]["rag_kept"] = "plain" if keep_plain else "context"
            if keep_plain:
                texts[i] = plain[j]
        return out, texts

    def retrieve(self, hypotheses: Sequence[str]) -> list[list[str]]:
        return [[c.term for c in self.index.search(h, self.k)] for h in hypotheses]

    def __call__(self, rows: Sequence[Mapping[str, Any]]) -> list[dict]:
        """``rows`` with ``hotwords`` = the terms retrieved for each (the manifest's are not used)."""
        terms = self.retrieve(self.first_pass(rows))
        return [{**dict(r), "hotwords": t} for r, t in zip(rows, terms)]


def retrieval_stats(utts: Sequence[Any], retrieved: Sequence[Sequence[str]]) -> dict:
    """Recall of the spoken keywords among the retrieved terms and false candidates per utterance."""
    spoken = found = false = 0
    for u, terms in zip(utts, retrieved):
        kws = set(getattr(u, "keywords", None) or [])
        spoken += len(kws)
        found += len(kws & set(terms))
        false += len(set(terms) - kws)
    return {"keyword_recall": found / spoken if spoken else None, "false_candidates_per_utterance":
            false / len(utts) if utts else 0.0, "keywords": spoken}
