"""How far below the model's own transcript is the reference? (Can GRPO's samples find it?)

    funrl eval --model DIR --manifest TEST.jsonl --hypotheses HYP.jsonl
    python examples/reference_gap.py --model DIR --manifest TEST.jsonl --hypotheses HYP.jsonl [--top 15] [--ctc]

For each utterance the model gets wrong, the gap is log p(hypothesis) − log p(reference) in nats,
both teacher-forced on the model's prompt (each with the end-of-turn token). GRPO learns from a
group only when one of its samples is better than the others; a sample equals the reference with
probability about exp(−gap) relative to the greedy transcript, so a median gap of 6 nats (the
demo's warm start on the test split) means G = 8 samples almost never contain it. Printed: the
gap's quantiles over the wrong utterances, and per reference sentence the count and median gap.
``--ctc`` (a model with a CTC head): also the errors of the CTC head's greedy transcripts, the
candidates ``algorithm.guide=ctc`` puts into the groups, against the LLM's, counted as ``funrl
eval`` counts them, and the errors of the better of the two on each utterance.
A transformers family model (Fun-ASR-Nano, Qwen2-Audio) folder.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np
import torch


def main() -> None:
    from funrl.data.manifest import load_manifest
    from funrl.models.families import load_family
    from funrl.policy.teacher_forcing import completion_logprobs

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--hypotheses", required=True, help="funrl eval --hypotheses output for this model and manifest")
    ap.add_argument("--top", type=int, default=15, help="sentences to list")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--ctc", action="store_true", help="also compare the CTC head's transcripts")
    a = ap.parse_args()
    torch.set_num_threads(2)
    fam = load_family(a.model)
    hyps = {r["id"]: r["hypothesis"] for r in map(json.loads, open(a.hypotheses, encoding="utf-8"))}
    rows = [u.to_dict() for u in load_manifest(a.manifest)]
    missing = [r["id"] for r in rows if r["id"] not in hyps]
    if missing:
        raise SystemExit(f"{a.hypotheses}: no hypothesis for {len(missing)} utterances of {a.manifest} "
                         f"(first: {missing[0]}); write it with funrl eval --hypotheses on this manifest")
    wrong = [r for r in rows if r["text"] and hyps[r["id"]] != r["text"]]
    lm, tok, end = fam.text_lm(), fam.tokenizer, fam.stop_token_ids[-1]  # the end-of-turn token
    gaps: dict[str, list[float]] = defaultdict(list)
    with torch.no_grad():
        for i in range(0, len(wrong), a.batch_size):
            batch = wrong[i:i + a.batch_size]
            ids = [tok(t, add_special_tokens=False)["input_ids"] + [end] for r in batch for t in (hyps[r["id"]], r["text"])]
            lp, _, _ = completion_logprobs(lm, fam.prompt_embeds(batch), [j for j in range(len(batch)) for _ in (0, 1)],
                                           ids, shared=False)
            total = lp.sum(1).view(-1, 2)  # [b, (hypothesis, reference)]
            for r, (h, ref) in zip(batch, total.tolist()):
                gaps[r["text"]].append(h - ref)
    flat = np.array([g for v in gaps.values() for g in v])
    print(f"{len(wrong)} of {sum(1 for r in rows if r['text'])} utterances wrong; gap log p(hyp) − log p(ref), nats:")
    if len(flat):
        q = np.quantile(flat, [0.1, 0.25, 0.5, 0.75, 0.9])
        print("  quantiles 10/25/50/75/90%: " + " / ".join(f"{x:.1f}" for x in q)
              + f"; share under 3 nats: {(flat < 3).mean():.2f}")
    for text, v in sorted(gaps.items(), key=lambda kv: -len(kv[1]))[: a.top]:
        print(f"  {len(v):4d} wrong, median gap {np.median(v):6.1f}  {text}")
    if a.ctc:
        ctc_against_llm(fam, a.model, [r for r in rows if r["text"]], hyps, a.batch_size)


def ctc_against_llm(fam, model_dir: str, rows: list[dict], hyps: dict, batch_size: int) -> None:
    """Errors of the CTC head's greedy transcripts against the LLM's (``funrl eval``'s counting)."""
    from funrl.hotwords.ctc import ctc_greedy_decode
    from funrl.models.families.ctc import load_ctc_head
    from funrl.rewards.text import error_counts

    head = load_ctc_head(model_dir)
    if head is None:
        raise SystemExit(f"--ctc: {model_dir} has no CTC head (ctc.json, ctc.safetensors)")
    ctc = []
    with torch.no_grad():
        for i in range(0, len(rows), batch_size):
            _, enc, lengths = fam.encode(fam.on_model(fam.prompt_inputs(rows[i:i + batch_size])))
            ids = ctc_greedy_decode(head(enc.float()), lengths, blank=head.blank)
            ctc += [fam.tokenizer.decode(x, skip_special_tokens=True).strip() for x in ids]
    refs = [r["text"] for r in rows]
    llm_e = [c.errors for c in error_counts(refs, [hyps[r["id"]] for r in rows])]
    ctc_e = [c.errors for c in error_counts(refs, ctc)]
    wrong = [i for i, r in enumerate(rows) if hyps[r["id"]] != r["text"]]
    print(f"errors over {len(rows)} utterances: LLM {sum(llm_e)}, CTC head {sum(ctc_e)}, the better of the two "
          f"{sum(map(min, llm_e, ctc_e))}; where the LLM is wrong ({len(wrong)}), the CTC head has fewer errors on "
          f"{sum(ctc_e[i] < llm_e[i] for i in wrong)} and none on {sum(ctc_e[i] == 0 for i in wrong)}")


if __name__ == "__main__":
    main()
