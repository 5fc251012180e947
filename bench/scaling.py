"""funrl's GRPO step time against batch size and G, and memory (RSS) over a long run.

    .venv/bin/python bench/scaling.py                          # grid + 200-step RSS run
    .venv/bin/python bench/scaling.py --batches 1,2 --groups 2 --steps 4 --rss-steps 20   # smoke

Part 1, step time: one short run per (B = ``train.prompts_per_step``, G = ``algorithm.group_size``);
the mean time per step (one step's start to the next's, from the run's profile) over the steps
after ``--warmup``, and per generated token. Completions are forced to ``--max-new`` tokens so
every cell generates B·G·max_new tokens. All runs share one private Ray cluster (started here
like the trainer does) so only the first pays Ray's start-up.

Part 2, memory: one run of ``--rss-steps`` steps; after each step the resident set size of the
driver and of every role actor (by the actor's ``pid()``, read with psutil) is recorded. Flat is
the goal: the table gives first vs last RSS and the least-squares slope in MiB per 100 steps
(after the warm-up steps). Writes ``scaling.png`` (step time vs B, one line per G) and
``rss.png`` (RSS vs step per process) and ``scaling.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

from funrl.train.driver import Trainer  # noqa: E402

MiB = float(1 << 20)


def rss(pid: int) -> float:
    """Resident set size in MiB (psutil; /proc/PID/status VmRSS where psutil is missing)."""
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / MiB
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
        raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


class RSSTrainer(Trainer):
    """The trainer, recording the RSS of the driver and each actor after every step's log."""

    def __init__(self, cfg):
        super().__init__(cfg)
        import ray

        self.pids = {"driver": os.getpid()}
        names = self.roles.names
        self.pids.update(zip(names.values(), ray.get([a.pid.remote() for a in names])))
        self.rss: list[dict] = []

    def log(self, step, *args):
        super().log(step, *args)
        self.rss.append({"step": step, **{n: rss(p) for n, p in self.pids.items()}})


def slope_per_100(ys: list[float]) -> float:
    """Least-squares slope of ``ys`` against their index, times 100."""
    n = len(ys)
    if n < 2:
        return float("nan")
    mx, my = (n - 1) / 2, sum(ys) / n
    num = sum((i - mx) * (y - my) for i, y in enumerate(ys))
    return 100 * num / sum((i - mx) ** 2 for i in range(n))


def grid(a, corpus: Path, model: Path) -> list[dict]:
    out = []
    for b in a.batches:
        for g in a.groups:
            cfg = C.funrl_config(a.out / "runs", f"scale_b{b}_g{g}", corpus, model, steps=a.steps, prompts=b,
                                 group=g, max_new=a.max_new, lora=not a.full, threads=a.threads)
            run_dir = C.run_funrl(cfg).run_dir
            st = C.steady([s["interval_s"] for s in C.read_steps(run_dir)], a.warmup)
            tok = C.steady([float(m["rollout/tokens"]) for m in C.read_metrics(run_dir)], a.warmup)
            out.append({"B": b, "G": g, "rows": b * g, "s_per_step": st["mean"], "p50": st["median"],
                        "tokens": tok["mean"], "ms_per_token": 1000 * st["mean"] / tok["mean"]})
            print(f"  B={b} G={g}: {st['mean']:.3f} s/step ({C.uptime()})", flush=True)
            save(a, out, [])  # partial results survive an interrupted run
    return out


def save(a, cells: list[dict], samples: list[dict]) -> None:
    (a.out / "scaling.json").write_text(json.dumps({"grid": cells, "rss": samples}, indent=1))


def memory(a, corpus: Path, model: Path) -> list[dict]:
    corpus = a.rss_corpus or corpus
    cfg = C.funrl_config(a.out / "runs", "scale_rss", corpus, model, steps=a.rss_steps, prompts=a.rss_batch,
                         group=a.rss_group, max_new=a.max_new, lora=not a.full, threads=a.threads)
    return C.run_funrl(cfg, RSSTrainer).rss


def plots(a, cells: list[dict], samples: list[dict]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    if cells:
        fig, ax = plt.subplots(figsize=(6, 4))
        for g in sorted({c["G"] for c in cells}):
            pts = sorted((c["B"], c["s_per_step"]) for c in cells if c["G"] == g)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"G = {g}")
        ax.set(xlabel="prompts per step (B)", ylabel="seconds per step",
               title=f"funrl GRPO step time ({a.max_new} new tokens per sample)")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        paths.append(a.out / "scaling.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    if samples:
        fig, ax = plt.subplots(figsize=(7, 4))
        steps = [s["step"] for s in samples]
        for name in [k for k in samples[0] if k != "step"]:
            ax.plot(steps, [s[name] for s in samples], label=name)
        ax.set(xlabel="step", ylabel="RSS (MiB)", title=f"funrl RSS over {len(samples)} steps (flat is the goal)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=2)
        fig.tight_layout()
        paths.append(a.out / "rss.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    p.add_argument("--batches", type=ints, default=[1, 2, 4, 8], help="B values, comma list")
    p.add_argument("--groups", type=ints, default=[2, 4, 8], help="G values, comma list")
    p.add_argument("--steps", type=int, default=6, help="steps per grid cell")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--max-new", type=int, default=16)
    p.add_argument("--rss-steps", type=int, default=200, help="0 skips the memory run")
    p.add_argument("--rss-batch", type=int, default=2)
    p.add_argument("--rss-group", type=int, default=4)
    p.add_argument("--rss-corpus", type=Path, default=None,
                   help="a folder with train.jsonl for the memory run (e.g. long clips of many lengths, "
                        "where the encoder's heap grew before heap.pin_mmap_threshold); default the bench corpus")
    p.add_argument("--full", action="store_true", help="full fine-tuning (default LoRA)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model", default="demo", help="demo | test | a saved funrl model folder")
    p.add_argument("--work", type=Path, default=C.DEFAULT_WORK, help="cache of the corpus and model")
    p.add_argument("--out", type=Path, default=None, help="default: WORK/scaling")
    a = p.parse_args()
    a.out = a.out or a.work / "scaling"
    a.out.mkdir(parents=True, exist_ok=True)
    corpus, model = C.assets(a.work, a.model)
    print(f"start: {C.uptime()}", flush=True)
    import ray

    C.start_shared_ray(C.funrl_config(a.out / "runs", "ray", corpus, model, steps=1, prompts=1, group=1,
                                      max_new=1, lora=True, threads=a.threads), a.out / "runs" / "ray")
    try:
        cells = grid(a, corpus, model) if a.batches and a.groups and a.steps else []
        samples = memory(a, corpus, model) if a.rss_steps else []
    finally:
        ray.shutdown()
    save(a, cells, samples)
    report(a, cells, samples)
    for path in plots(a, cells, samples):
        print(f"wrote {path}")


def report(a, cells: list[dict], samples: list[dict]) -> None:
    print(f"\n{'LoRA' if not a.full else 'full FT'}, {a.max_new} new tokens per sample, threads={a.threads}, "
          f"first {a.warmup} steps of each run left out   load: {C.uptime()}")
    if cells:
        base = cells[0]["s_per_step"]
        print(C.table(["B", "G", "rows", "s/step", "p50", "tokens/step", "ms/token", f"× (B={cells[0]['B']},G={cells[0]['G']})"],
                      [[c["B"], c["G"], c["rows"], c["s_per_step"], c["p50"], c["tokens"], c["ms_per_token"],
                        c["s_per_step"] / base] for c in cells]))
    if samples:
        w = min(a.warmup, len(samples) - 1)
        rows = []
        for name in [k for k in samples[0] if k != "step"]:
            ys = [s[name] for s in samples]
            rows.append([name, ys[0], ys[w], ys[-1], ys[-1] - ys[w], slope_per_100(ys[w:])])
        print(f"\nRSS (MiB) over {len(samples)} steps (B={a.rss_batch}, G={a.rss_group}); slope after step {w}")
        print(C.table(["process", "step 0", f"step {w}", "last", "last - warm", "MiB/100 steps"], rows))


if __name__ == "__main__":
    main()
