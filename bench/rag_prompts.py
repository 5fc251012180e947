"""Hotword RAG's costs (issue 18), each pair side by side in one run:

- ``passes``: the prompt embeddings of a manifest with retrieved context, built with one encoder pass
  against two. Two passes: the CTC first pass encodes the audio, then the prompts with the retrieved
  terms are encoded again (``audio_llm.prompt_embeds(rag(rows))``). One pass: the first pass's audio
  features fill the context prompts (``RagContext.prompt_embeds``, what the encoder role and
  ``funrl eval --hotwords rag`` use).
- ``check``: greedy transcription with RAG context, without and with ``--rag-check ctc``
  (``RagContext.transcribe``): with it the rows that got context are decoded again without it and both
  transcripts scored by the CTC head. What the model transcribes does not change the cost: every row
  with context is decoded twice.

The corpus is synthesised (eSpeak NG) into a temporary folder; the model is the shipped warm start.

    python bench/rag_prompts.py [--what passes|check|both] [--n 200] [--batch 32] [--rounds 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WARM = Path(__file__).resolve().parents[1] / "examples" / "checkpoints" / "tiny_fun_asr_nano"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--what", choices=["passes", "check", "both"], default="both")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from funrl.data.manifest import load_manifest
    from funrl.data.synth.corpus import synthesize_corpus
    from funrl.hotwords.rag import RagContext
    from funrl.models.families import load_audio_llm

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        synthesize_corpus(tmp, args.n, seed=0, noise_frac=0.0, split_ratios=(1.0, 0.0, 0.0), disjoint_text=False)
        rows = [u.to_dict() for u in load_manifest(Path(tmp) / "train.jsonl")]
        model = load_audio_llm(WARM)
        model.prompt = dataclasses.replace(model.prompt, use_hotwords=True)
        rag = RagContext(model, WARM, Path(tmp) / "hotwords.txt")
        checked = RagContext(model, WARM, Path(tmp) / "hotwords.txt", check="ctc")
        batches = [rows[i:i + args.batch] for i in range(0, len(rows), args.batch)]
        print(f"{len(rows)} utterances, batches of {args.batch}, {args.threads} threads, model {WARM.name}")
        for r in range(args.rounds):
            if args.what in ("passes", "both"):
                t0 = time.perf_counter()
                with torch.inference_mode():
                    for b in batches:
                        model.prompt_embeds(rag(b))
                t1 = time.perf_counter()
                for b in batches:
                    rag.prompt_embeds(b)
                t2 = time.perf_counter()
                print(f"round {r}: prompts with two encoder passes {t1 - t0:.2f} s, one pass {t2 - t1:.2f} s, "
                      f"one/two = {(t2 - t1) / (t1 - t0):.2f}")
            if args.what in ("check", "both"):
                t0 = time.perf_counter()
                for b in batches:
                    rag.transcribe(b)
                t1 = time.perf_counter()
                got = sum(1 for b in batches for row in checked.transcribe(b)[0] if "rag_kept" in row)
                t2 = time.perf_counter()
                print(f"round {r}: transcripts with RAG {t1 - t0:.2f} s, with RAG + CTC check {t2 - t1:.2f} s "
                      f"({got} of {len(rows)} rows got context), with/without = {(t2 - t1) / (t1 - t0):.2f}")


if __name__ == "__main__":
    main()
