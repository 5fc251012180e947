"""Hotword RAG prompts with one encoder pass against two (issue 18's leftover): the time to build the
prompt embeddings of a manifest with retrieved context, side by side in one run.

Two passes: the CTC first pass encodes the audio, then the prompts with the retrieved terms are encoded
again (``audio_llm.prompt_embeds(rag(rows))``). One pass: the first pass's audio features fill the
context prompts (``RagContext.prompt_embeds``, what the encoder role and ``funrl eval --hotwords rag``
use). The corpus is synthesised (eSpeak NG) into a temporary folder; the model is the shipped warm start.

    python bench/rag_prompts.py [--n 200] [--batch 32] [--rounds 2]
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
        batches = [rows[i:i + args.batch] for i in range(0, len(rows), args.batch)]
        print(f"{len(rows)} utterances, batches of {args.batch}, {args.threads} threads, model {WARM.name}")
        for r in range(args.rounds):
            t0 = time.perf_counter()
            with torch.inference_mode():
                for b in batches:
                    model.prompt_embeds(rag(b))
            t1 = time.perf_counter()
            for b in batches:
                rag.prompt_embeds(b)
            t2 = time.perf_counter()
            print(f"round {r}: two encoder passes {t1 - t0:.2f} s, one pass {t2 - t1:.2f} s, "
                  f"one/two = {(t2 - t1) / (t1 - t0):.2f}")


if __name__ == "__main__":
    main()
