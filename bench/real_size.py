"""Fun-ASR-Nano at its published size, with random weights, on CPU (issue 13; no download).

    .venv/bin/python bench/real_size.py --build-only        # build, print parameter counts, time, peak RSS

The published configuration is transformers' ``FunAsrNanoConfig()`` defaults (its docstring names the
checkpoint "FunAudioLLM/Fun-ASR-Nano-2512-hf"): SAN-M encoder of 70 layers (the last 20 for timestamps),
hidden 512; a 2-layer adaptor of hidden 1024 with a 2048-wide projector; Qwen3-0.6B (28 layers, hidden
1024, 16 query / 8 KV heads, head_dim 128, vocabulary 151,936, head tied to the input embeddings). The
weights are drawn by transformers' own initialisation (std 0.02); float32 needs about 3.3 GB.

Still to come (issue 13): 3 GRPO steps through ``funrl train`` and the plain single-process loop.
"""

from __future__ import annotations

import argparse
import resource
import time


def build_model(seed: int = 0):
    """The published-size ``FunAsrNanoForConditionalGeneration``, random weights, float32, eval mode."""
    import torch
    from transformers import FunAsrNanoConfig, FunAsrNanoForConditionalGeneration

    torch.manual_seed(seed)
    config = FunAsrNanoConfig()
    config._attn_implementation = "sdpa"
    return FunAsrNanoForConditionalGeneration(config).eval()


def parameter_counts(model) -> dict[str, int]:
    """Parameters per part (the tied head counted once, in the embeddings)."""
    def count(module) -> int:
        return sum(p.numel() for p in module.parameters())

    inner = model.model
    return {
        "audio encoder": count(inner.audio_tower),
        "adaptor + projector": count(inner.multi_modal_projector),
        "LLM (Qwen3, with embeddings)": count(inner.language_model),
        "  of which embeddings": inner.language_model.embed_tokens.weight.numel(),
        "total": count(model),
    }


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: kB


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-only", action="store_true", help="build the model and print its size, then stop")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = build_model()
    built = time.perf_counter() - start
    for part, n in parameter_counts(model).items():
        print(f"{part:32s} {n / 1e6:9.2f} M")
    tied = model.lm_head.weight is model.get_input_embeddings().weight
    print(f"head tied to embeddings: {tied}; built in {built:.1f} s with {args.threads} thread(s); "
          f"peak RSS {peak_rss_gb():.2f} GB")
    if not args.build_only:
        raise SystemExit("only --build-only is implemented so far (issue 13: GRPO steps to come)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
