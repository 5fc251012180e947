"""Rollout throughput: funrl's SGLang engine vs bare SGLang vs the HF engine, on one batch.

Runs under the SGLang env's python (``bash rollout/sglang_env.sh`` prints it) on a tiny random
Qwen3 (``funrl.rollout.tiny_llm``, sizes from the flags). The same ``B`` prompt embeddings, ``n``
samples each, same sampling parameters, go through:

- ``funrl-sglang``: :meth:`SGLangEngine.generate` (tensor → list conversion, one request per row,
  result parsing into a ``RolloutBatch``);
- ``bare-sglang``: one ``GenerateReqInput(input_embeds=..., sampling_params={..., "n": n})`` sent
  to the same engine's tokenizer manager, SGLang's own parallel sampling, no parsing;
- ``hf``: :class:`funrl.rollout.hf_engine.HFEngine` (transformers, KV-cached, float32).

Tokens/s counts generated tokens (stop tokens included), median of ``--repeats`` timed runs after
one warm-up each, the two SGLang paths interleaved. Goal (issue 8): funrl-sglang ≥ 0.95× bare-sglang.

    $(bash rollout/sglang_env.sh | tail -1) bench/rollout.py [--prompts 4] [--n 4] [--max-new-tokens 32]
"""

from __future__ import annotations

import argparse
import statistics
import time

from funrl.rollout.tiny_llm import add_tiny_batch_args, tiny_batch


def _timed(fns: dict, repeats: int) -> dict[str, tuple[float, int]]:
    """Median seconds and the token count per function; runs interleaved (a, b, a, b, ...) so that
    load from other processes on the machine hits each alike. One warm-up run each first."""
    for fn in fns.values():
        fn()
    runs: dict[str, list[tuple[float, int]]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            tokens = fn()
            runs[name].append((time.perf_counter() - t0, tokens))
            print(f"  {name}: {tokens} tokens in {runs[name][-1][0]:.2f} s", flush=True)
    return {k: (statistics.median(s for s, _ in r), r[0][1]) for k, r in runs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_tiny_batch_args(ap)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--skip-hf", action="store_true")
    args = ap.parse_args()

    import torch

    from funrl.rollout.config import SGLangConfig
    from funrl.rollout.protocol import SamplingParams
    from funrl.rollout.sglang_engine import SGLangEngine

    torch.set_num_threads(1)
    folder, embeds = tiny_batch(args)
    # No stop_token_ids: both SGLang paths stop on the model's EOS only, and count tokens alike.
    sp = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=args.max_new_tokens, seed=None)

    eng = SGLangEngine(folder, SGLangConfig(device=args.device, max_total_tokens=16384, context_length=512))
    print(f"engine: sglang on {eng.device}, started in {eng.start_s:.1f} s; model {args.layers} layers x "
          f"{args.hidden}; batch {args.prompts} prompts x n={args.n}, {args.prompt_len} prompt tokens, "
          f"{args.max_new_tokens} new tokens")

    def funrl_sglang() -> int:
        return eng.generate(embeds, args.n, sp).num_tokens

    def bare_sglang() -> int:
        from sglang.srt.managers.io_struct import GenerateReqInput

        params = {"temperature": sp.temperature, "top_p": sp.top_p, "max_new_tokens": sp.max_new_tokens, "n": args.n}
        obj = GenerateReqInput(input_embeds=[e.tolist() for e in embeds], sampling_params=params, return_logprob=True)
        outs = eng.engine.loop.run_until_complete(eng.engine.tokenizer_manager.generate_request(obj, None).__anext__())
        return sum(len(o["output_ids"]) for o in outs)

    try:
        results = _timed({"bare-sglang": bare_sglang, "funrl-sglang": funrl_sglang}, args.repeats)
    finally:
        eng.shutdown()
    if not args.skip_hf:
        from funrl.rollout.hf_engine import HFEngine

        hf = HFEngine(folder)
        results.update(_timed({"hf": lambda: hf.generate(embeds, args.n, sp).num_tokens}, args.repeats))

    rate = {k: tok / s for k, (s, tok) in results.items()}
    print(f"{'engine':<14}{'tokens':>8}{'seconds':>10}{'tokens/s':>11}{'vs bare':>9}")
    for k, (s, tok) in results.items():
        print(f"{k:<14}{tok:>8}{s:>10.3f}{rate[k]:>11.1f}{rate[k] / rate['bare-sglang']:>8.2f}x")
    print(f"funrl-sglang / bare-sglang = {rate['funrl-sglang'] / rate['bare-sglang']:.3f} (goal >= 0.95)")
    if "hf" in rate:
        print(f"funrl-sglang / hf          = {rate['funrl-sglang'] / rate['hf']:.3f}")


if __name__ == "__main__":  # SGLang spawns its scheduler: the guard is required
    main()
