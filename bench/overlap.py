"""Step time with rewards scored after the whole rollout vs overlapped with it (issue 17).

A reward that takes about as long as the rollout (``bench/_sleepy_reward.py``: a sleep per group,
set from a measured rollout) runs in ``--chunks`` 1 (no overlap) and K (each chunk scored while the
next generates); the runs alternate for ``--rounds`` rounds on the bench's demo model and corpus;
printed: mean steady step time of each and their ratio, and the rollout and reward phases.

    python bench/overlap.py [--chunks 2] [--rounds 2] [--steps 6] [--prompts 4] [--group 4] [--max-new 32]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

PLUGIN = Path(__file__).with_name("_sleepy_reward.py")


def run(a, corpus, model, chunks: int, sleep: float, tag: str) -> dict:
    import json

    extra = {"rollout.reward_overlap_chunks": chunks, "rewards.num_workers": 1,
             "rewards.components": f"[{{name: '{PLUGIN}:sleepy', kwargs: {{seconds_per_group: {sleep}}}}}]"}
    cfg = C.funrl_config(a.work / "runs", f"overlap_{tag}", corpus, model, steps=a.steps, prompts=a.prompts,
                         group=a.group, max_new=a.max_new, lora=True, extra=extra)
    run_dir = C.run_funrl(cfg).run_dir
    steps = C.steady([s["interval_s"] for s in C.read_steps(run_dir)], a.warmup)
    report = json.loads((run_dir / "profile" / "report.json").read_text())
    phases = {k: v["mean"] for k, v in report["phases"].items()}
    return {"step": steps["mean"], "rollout": phases.get("rollout", 0.0), "reward": phases.get("reward", 0.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--max-new", type=int, default=32)
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    a = ap.parse_args()
    corpus, model = C.assets(a.work, "demo")
    probe = run(a, corpus, model, 1, 0.0, "probe")  # the rollout's own time sets the reward's sleep
    sleep = probe["rollout"] / a.prompts
    print(f"rollout {probe['rollout']:.3f} s a step: the reward sleeps {sleep:.3f} s a group "
          f"({probe['rollout']:.3f} s a step in all) ({C.uptime()})", flush=True)
    res: dict[int, list[dict]] = {1: [], a.chunks: []}
    for r in range(a.rounds):
        for k in (1, a.chunks):
            res[k].append(run(a, corpus, model, k, sleep, f"k{k}_r{r}"))
            print(f"round {r + 1} chunks={k}: {res[k][-1]['step']:.3f} s/step", flush=True)
    mean = {k: {f: sum(x[f] for x in v) / len(v) for f in ("step", "rollout", "reward")} for k, v in res.items()}
    print(C.table(["chunks", "s/step", "rollout phase", "reward phase"],
                  [[k, m["step"], m["rollout"], m["reward"]] for k, m in mean.items()]))
    print(f"overlapped / not: {mean[a.chunks]['step'] / mean[1]['step']:.3f}  "
          f"(B={a.prompts} G={a.group} max_new={a.max_new}, {a.rounds} alternating rounds; {C.uptime()})")


if __name__ == "__main__":
    main()
