"""How far each rollout engine's log-probs of its own samples are from the trainer's (issue 17).

The same tiny random Qwen3 (``funrl.rollout.tiny_llm``) and prompt embeddings go through each
engine at temperature 1; the trainer's log-probs of the sampled tokens come from
:func:`funrl.policy.teacher_forcing.completion_logprobs` in float32 (what the policy computes), and
:func:`funrl.policy.rollout_correction.rollout_correction` gives the figures the trainer logs:
mean and max |log π_trainer − log π_engine| per token, the k3 KL(π_engine ‖ π_trainer), and the
share of tokens whose importance weight exceeds 2 (``algorithm.rollout_is_cap``'s default).

Engines: ``hf-fp32`` and ``hf-bf16`` (funrl's HF engine with float32 / bfloat16 weights), and
``sglang-bf16`` when SGLang imports (run under the SGLang env's python:
``$(bash rollout/sglang_env.sh | tail -1) bench/mismatch.py``; SGLang on CPU here). ``sglang-fp32``
can be asked for; on CPU with SGLang 0.5.23 it stops inside SGLang's linear layer ("expected m1 and
m2 to have the same dtype, but got: c10::BFloat16 != float"), not yet looked into.

Measured on this 2-core CPU (2026-12-06, defaults: 4 layers x 256, 4 prompts x 4 samples x 32
tokens), mean / max |Δ log p| per token: hf-fp32 3.2e-6 / 1.8e-5, hf-bf16 5.0e-2 / 0.31,
sglang-bf16 4.8e-2 / 0.31 (KL 2.5e-3; no weight above 2).

    python bench/mismatch.py [--prompts 4] [--n 4] [--max-new-tokens 32] [--engines hf-fp32,hf-bf16,sglang-bf16]
"""

from __future__ import annotations

import argparse
import importlib.util

from funrl.rollout.tiny_llm import add_tiny_batch_args, tiny_batch


def trainer_logprobs(folder, embeds, batch):
    """float32 log π of each sampled token under the model at ``folder`` (the policy's computation)."""
    import torch
    from transformers import AutoModelForCausalLM

    from funrl.policy.teacher_forcing import completion_logprobs

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        logp, _, mask = completion_logprobs(model, embeds, batch.prompt_index, batch.token_ids, temperature=1.0)
    return [row[m] for row, m in zip(logp, mask)]  # [N] each [T_i]


def figures(trainer, engine_lps):
    import torch

    from funrl.policy.batch import pad_right
    from funrl.policy.rollout_correction import rollout_correction

    width = max(len(t) for t in trainer)
    old = pad_right([t.float() for t in trainer], width)  # [N, T]
    eng = pad_right([torch.tensor(e, dtype=torch.float32) for e in engine_lps], width)  # [N, T]
    mask = pad_right([torch.ones(len(t), dtype=torch.bool) for t in trainer], width, False)  # [N, T]
    _, m = rollout_correction(old, eng, mask, mode="tis", cap=2.0)
    return {k: float(v) for k, v in m.items()}


def make_engine(name: str, folder: str):
    import torch

    if name.startswith("hf"):
        from funrl.rollout.hf_engine import HFEngine

        return HFEngine(folder, dtype=torch.bfloat16 if name.endswith("bf16") else torch.float32)
    from funrl.rollout.config import SGLangConfig
    from funrl.rollout.sglang_engine import SGLangEngine

    dtype = "bfloat16" if name.endswith("bf16") else "float32"
    return SGLangEngine(folder, SGLangConfig(device="auto", dtype=dtype, max_total_tokens=16384, context_length=512))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_tiny_batch_args(ap)
    ap.add_argument("--engines", default=None, help="default: hf-fp32,hf-bf16 and, where SGLang imports, sglang-bf16")
    args = ap.parse_args()

    import torch

    from funrl.rollout.protocol import SamplingParams

    torch.set_num_threads(2)
    names = args.engines.split(",") if args.engines else (
        ["hf-fp32", "hf-bf16"] + (["sglang-bf16"] if importlib.util.find_spec("sglang") else []))
    folder, embeds = tiny_batch(args, prefix="funrl-mismatch-")
    folder = str(folder)
    sp = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=args.max_new_tokens, seed=0)
    rows = []
    for name in names:
        eng = make_engine(name, folder)
        try:
            batch = eng.generate(embeds, args.n, sp)
        finally:
            if hasattr(eng, "shutdown"):
                eng.shutdown()
        f = figures(trainer_logprobs(folder, embeds, batch), batch.logprobs)
        rows.append((name, batch.num_tokens, f))
    print(f"tiny Qwen3 {args.layers} layers x {args.hidden}; {args.prompts} prompts x n={args.n}, "
          f"{args.max_new_tokens} new tokens, temperature 1; trainer: float32 teacher forcing")
    print(f"{'engine':<13}{'tokens':>7}{'mean |dlogp|':>14}{'max |dlogp|':>13}{'KL (k3)':>11}{'w > 2':>8}")
    for name, tokens, f in rows:
        print(f"{name:<13}{tokens:>7}{f['rollout_logp_diff_mean']:>14.2e}{f['rollout_logp_diff_max']:>13.2e}"
              f"{f['rollout_kl']:>11.2e}{f['rollout_is_capped_frac']:>8.3f}")


if __name__ == "__main__":  # SGLang spawns its scheduler: the guard is required
    main()
