"""Step time with prompt embeddings off the critical path (issue 17): the per-row cache
(``model.embed_cache_mib``) and the next step's prompts encoded during this step
(``train.prefetch_prompts``), against neither, side by side.

The runs alternate for ``--rounds`` rounds on the bench's demo model and corpus (48 utterances:
with ``--prompts 4`` an epoch is 12 steps, so ``--steps 36`` gives the cache two epochs of hits);
printed: mean steady step time and encode phase of each mode, and the ratios to "neither".

    python bench/embed_cache.py [--rounds 2] [--steps 36] [--prompts 4] [--group 4] [--max-new 32]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

MODES = {
    "neither": {},
    "cache": {"model.embed_cache_mib": 256},
    "prefetch": {"train.prefetch_prompts": True},
    "both": {"model.embed_cache_mib": 256, "train.prefetch_prompts": True},
}


def run(a, corpus, model, mode: str, tag: str) -> dict:
    cfg = C.funrl_config(a.work / "runs", f"embed_{mode}_{tag}", corpus, model, steps=a.steps, prompts=a.prompts,
                         group=a.group, max_new=a.max_new, lora=True, extra=MODES[mode])
    run_dir = C.run_funrl(cfg).run_dir
    steps = C.steady([s["interval_s"] for s in C.read_steps(run_dir)], a.warmup)
    report = json.loads((run_dir / "profile" / "report.json").read_text())
    return {"step": steps["mean"], "encode": report["phases"].get("encode", {}).get("mean", 0.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=36)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--max-new", type=int, default=32)
    ap.add_argument("--modes", default="neither,cache,prefetch,both")
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    a = ap.parse_args()
    modes = a.modes.split(",")
    corpus, model = C.assets(a.work, "demo")
    res: dict[str, list[dict]] = {m: [] for m in modes}
    for r in range(a.rounds):
        for m in modes:
            res[m].append(run(a, corpus, model, m, f"r{r}"))
            print(f"round {r + 1} {m}: {res[m][-1]['step']:.3f} s/step, encode {res[m][-1]['encode']:.3f} s",
                  flush=True)
    mean = {m: {f: sum(x[f] for x in v) / len(v) for f in ("step", "encode")} for m, v in res.items()}
    base = mean[modes[0]]["step"]
    print(C.table(["mode", "s/step", "encode phase s", f"s/step / {modes[0]}"],
                  [[m, v["step"], v["encode"], v["step"] / base] for m, v in mean.items()]))
    print(f"(B={a.prompts} G={a.group} max_new={a.max_new}, {a.steps} steps, {a.rounds} alternating rounds; "
          f"{C.uptime()})")


if __name__ == "__main__":
    main()
