"""Step time with rewards scored after the whole rollout vs overlapped with it (issue 17).

A reward that takes about as long as the rollout (``bench/_sleepy_reward.py``: a sleep per group,
set from a measured rollout) runs three ways: no overlap, ``rollout.reward_overlap_groups`` (one
generate call hands each group back as it finishes, scored at once) and
``rollout.reward_overlap_chunks=--chunks`` (each chunk scored while the next generates); the runs
alternate for ``--rounds`` rounds on the bench corpus; printed: mean steady step time of each, its
ratio to no overlap, and the rollout and reward phases. The model is the shipped warm start
(``--model``): its samples end where the speech does, at different steps for different prompts,
as a real model's do (a random model's all run to ``--max-new``, and then every group is handed
back at the last step).

    python bench/overlap.py [--chunks 2] [--rounds 2] [--steps 6] [--prompts 4] [--group 4] [--max-new 32]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

PLUGIN = Path(__file__).with_name("_sleepy_reward.py")
WARM_START = Path(__file__).resolve().parents[1] / "examples" / "checkpoints" / "tiny_fun_asr_nano"


def run(a, corpus, model, overlap: dict, sleep: float, tag: str) -> dict:
    import json

    extra = {**overlap, "rewards.num_workers": 1,
             "rewards.components": f"[{{name: '{PLUGIN}:sleepy', kwargs: {{seconds_per_group: {sleep}}}}}]"}
    cfg = C.funrl_config(a.work / "runs", f"overlap_{tag}", corpus, model, steps=a.steps, prompts=a.prompts,
                         group=a.group, max_new=a.max_new, lora=True, force_length=False, extra=extra)
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
    ap.add_argument("--model", default=str(WARM_START), help="model folder (default: the shipped warm start)")
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    a = ap.parse_args()
    corpus, model = C.assets(a.work, a.model)
    ways = {"none": {}, "groups": {"rollout.reward_overlap_groups": True},
            f"chunks={a.chunks}": {"rollout.reward_overlap_chunks": a.chunks}}
    probe = run(a, corpus, model, {}, 0.0, "probe")  # the rollout's own time sets the reward's sleep
    sleep = probe["rollout"] / a.prompts
    print(f"rollout {probe['rollout']:.3f} s a step: the reward sleeps {sleep:.3f} s a group "
          f"({probe['rollout']:.3f} s a step in all) ({C.uptime()})", flush=True)
    res: dict[str, list[dict]] = {w: [] for w in ways}
    for r in range(a.rounds):
        for w, overrides in ways.items():
            res[w].append(run(a, corpus, model, overrides, sleep, f"{w.replace('=', '')}_r{r}"))
            print(f"round {r + 1} {w}: {res[w][-1]['step']:.3f} s/step", flush=True)
    mean = {w: {f: sum(x[f] for x in v) / len(v) for f in ("step", "rollout", "reward")} for w, v in res.items()}
    print(C.table(["overlap", "s/step", "/ none", "rollout phase", "reward phase"],
                  [[w, m["step"], m["step"] / mean["none"]["step"], m["rollout"], m["reward"]] for w, m in mean.items()]))
    print(f"(B={a.prompts} G={a.group} max_new={a.max_new}, {a.rounds} alternating rounds; {C.uptime()})")


if __name__ == "__main__":
    main()
