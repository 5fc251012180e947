"""funrl's GRPO step time against TRL's GRPOTrainer, side by side, on the same tiny LLM.

    .venv/bin/python bench/vs_trl.py                      # LoRA and full fine-tuning, 2 alternating rounds
    .venv/bin/python bench/vs_trl.py --modes lora --steps 8 --prompts 2 --group 4 --max-new 16

What is the same on both sides: the LLM (the ``llm/`` folder of one random-weight funrl model:
the demo's 2-layer Qwen3 of hidden 192 by default), its weights and tokenizer; the prompt lengths
(TRL gets text prompts with as many tokens as funrl's prompt embeddings, utterance by
utterance); B prompts × G samples per step; every completion forced to ``--max-new`` tokens
(funrl: a stop id outside the vocabulary; TRL: ``min_new_tokens``), and the tokens generated
are counted and printed for both; AdamW at a constant lr, grad-norm clip 1; β = ``--kl`` with the
reference = adapter disabled under LoRA, a frozen copy under full fine-tuning; one policy rank;
all B·G rows in one micro-batch; ``--threads`` torch threads (funrl: per actor, and its roles
take turns; TRL: its one process); fp32 on CPU.

What differs, by design of each tool (and is part of what is measured): funrl encodes audio into
prompt embeddings each step (TRL tokenizes text); funrl runs on Ray, every phase is an actor call
with the device granted to one role at a time (wake/sleep, which on CPU only record the grant),
it shares each prompt across its G samples (one prefill in the rollout, one segment per prompt
in the policy's passes), then pushes merged weights to the rollout engine; TRL generates with the policy module
itself (HF ``generate``, vLLM off), and skips the old-log-prob pass when on-policy
(``num_iterations=1``). funrl runs with ``train.prefetch_prompts`` and ``model.embed_cache_mib=256``
(the next step's prompts encoded during this step; embeddings reused once the corpus wraps);
``--no-prefetch`` turns both off. Rewards: funrl's built-in reward actors vs a character-similarity
function in TRL (milliseconds on both sides).

Time per step: funrl, from one step's start to the next in its profile (the phases plus the
logging between steps); TRL, from one ``on_step_end`` to the next. The first ``--warmup`` steps
of each are left out. The ratio printed is funrl / TRL (the goal in issue 9 is ≤ 0.7): the mean step
of each side over ``--rounds`` alternating runs, because this machine's speed drifts by ±15% over
minutes; each round's own ratio is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def prompt_lengths(corpus: Path, model: Path) -> list[dict]:
    """funrl's prompt-embedding length of every training utterance, with its transcript."""
    import torch

    from funrl.data.manifest import load_manifest
    from funrl.train.workers.base import prompt_tensors
    from funrl.train.workers.encoder import EncoderWorker

    rows = [u.to_dict() for u in load_manifest(corpus / "train.jsonl")]
    enc = EncoderWorker("bench", str(model), torch_threads=torch.get_num_threads(), profile=False)
    embeds = prompt_tensors(enc.encode(rows, 0))
    return [{"prompt_len": int(e.shape[0]), "text": r["text"]} for e, r in zip(embeds, rows)]


def trl_python(given: str | None) -> str:
    if given:
        return given
    out = subprocess.run(["bash", str(C.REPO / "bench" / "trl_env.sh")], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def run_trl(py: str, spec: dict) -> dict:
    proc = subprocess.run([py, str(C.REPO / "bench" / "_trl_side.py"), json.dumps(spec)],
                          capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("TRL_RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the TRL side failed (exit {proc.returncode}); its stderr ends with:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("TRL_RESULT "):])


def run_side_funrl(a, mode: str, corpus: Path, model: Path, run_root: Path) -> dict:
    cfg = C.funrl_config(run_root, f"vs_trl_{mode}", corpus, model, steps=a.steps, prompts=a.prompts,
                         group=a.group, max_new=a.max_new, lora=(mode == "lora"), lr=a.lr, kl=a.kl,
                         threads=a.threads, force_length=not a.no_force_length,
                         extra={} if a.no_prefetch else {"train.prefetch_prompts": True, "model.embed_cache_mib": 256})
    run_dir = C.run_funrl(cfg).run_dir
    steps, metrics = C.read_steps(run_dir), C.read_metrics(run_dir)
    report = json.loads((run_dir / "profile" / "report.json").read_text())
    phases: dict[str, list[float]] = {}
    for row in report["per_step"][a.warmup:]:
        for name, v in {**row["phases"], "orchestration": row["orchestration"]}.items():
            phases.setdefault(name, []).append(v)
    gaps = [s["interval_s"] - s["span_s"] for s in steps[a.warmup:] if s["interval_s"] is not None]
    phases["between steps (log, drain spans)"] = gaps
    return {
        "run_dir": str(run_dir),
        "interval": C.steady([s["interval_s"] for s in steps], a.warmup),
        "span": C.steady([s["span_s"] for s in steps], a.warmup),
        "tokens": C.steady([float(m["rollout/tokens"]) for m in metrics], a.warmup),
        "phases": {k: sum(v) / len(v) for k, v in phases.items() if v},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--modes", default="lora,full", help="comma list of lora, full")
    p.add_argument("--prompts", type=int, default=4, help="B: prompts per step")
    p.add_argument("--group", type=int, default=4, help="G: samples per prompt")
    p.add_argument("--max-new", type=int, default=32, help="completion length (forced)")
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--warmup", type=int, default=3, help="first steps left out of the means")
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--kl", type=float, default=0.04, help="β on both sides (0: no reference pass)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model", default="demo",
                   help="demo | test | a saved funrl model folder | a transformers family folder (e.g. "
                        "bench/real_size.py's published-size Fun-ASR-Nano: TRL gets its text LM)")
    p.add_argument("--work", type=Path, default=C.DEFAULT_WORK, help="cache of the corpus and model")
    p.add_argument("--trl-python", default=None, help="python of the TRL env (default: build it with bench/trl_env.sh)")
    p.add_argument("--no-force-length", action="store_true", help="let completions stop at EOS")
    p.add_argument("--no-prefetch", action="store_true",
                   help="funrl without train.prefetch_prompts and model.embed_cache_mib (on by default here)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=2,
                   help="funrl and TRL alternate this many times per mode (the machine's speed drifts)")
    a = p.parse_args()
    if a.steps <= a.warmup + 1:
        p.error(f"--steps ({a.steps}) must exceed --warmup + 1 ({a.warmup + 1}) to leave steady-state intervals")

    corpus, model = C.assets(a.work, a.model)
    prompts = prompt_lengths(corpus, model)
    py = trl_python(a.trl_python)
    results: dict[str, list] = {}
    for r in range(a.rounds):
        for mode in a.modes.split(","):
            print(f"== round {r + 1}/{a.rounds} {mode}: funrl ({C.uptime()})", flush=True)
            f = run_side_funrl(a, mode, corpus, model, a.work / "runs")
            print(f"== round {r + 1}/{a.rounds} {mode}: TRL ({C.uptime()})", flush=True)
            spec = {"llm": str(C.text_lm_dir(model)), "prompts": prompts, "prompts_per_step": a.prompts, "group": a.group,
                    "max_new": a.max_new, "steps": a.steps, "lora": mode == "lora", "lr": a.lr, "kl": a.kl,
                    "threads": a.threads, "seed": a.seed, "force_length": not a.no_force_length}
            results.setdefault(mode, []).append((f, run_trl(py, spec)))
    report(a, prompts, results)


def report(a, prompts: list[dict], results: dict) -> None:
    """Per mode: the mean steady step of each side over the rounds, their ratio, and each round's
    ratio (funrl and TRL of a round ran one after the other); then phase tables (mean over rounds)."""
    funrl_len = sum(p["prompt_len"] for p in prompts) / len(prompts)
    print(f"\nB={a.prompts} G={a.group} max_new={a.max_new} kl={a.kl} lr={a.lr} threads={a.threads} "
          f"steps={a.steps} (first {a.warmup} left out) rounds={a.rounds}   load: {C.uptime()}")
    rows = []
    for mode, rounds in results.items():
        f_steps = [f["interval"]["mean"] for f, _ in rounds]
        t_steps = [C.steady(t["interval_s"], max(a.warmup - 1, 0))["mean"] for _, t in rounds]  # intervals start after step 1
        f_mean, t_mean = sum(f_steps) / len(f_steps), sum(t_steps) / len(t_steps)
        trl_tok = C.steady(rounds[0][1]["tokens_per_step"], a.warmup)
        per_round = " ".join(f"{x / y:.3f}" for x, y in zip(f_steps, t_steps))
        rows.append([mode, f_mean, t_mean, f_mean / t_mean, per_round, rounds[0][0]["tokens"]["mean"], trl_tok["mean"],
                     funrl_len, rounds[0][1]["prompt_len_mean"]])
    print(C.table(["mode", "funrl s/step", "TRL s/step", "funrl/TRL", "per round", "funrl tok/step",
                   "TRL tok/step", "funrl prompt", "TRL prompt"], rows))
    for mode, rounds in results.items():
        step = sum(f["interval"]["mean"] for f, _ in rounds) / len(rounds)
        phases: dict[str, list[float]] = {}
        for f, _ in rounds:
            for k, v in f["phases"].items():
                phases.setdefault(k, []).append(v)
        print(f"\nfunrl {mode}: mean seconds per steady step by phase ({rounds[-1][0]['run_dir']}, last round)")
        print(C.table(["phase", "s/step", "share"], [[k, sum(v) / len(v), sum(v) / len(v) / step] for k, v in phases.items()]))
        t_step = sum(C.steady(t["interval_s"], max(a.warmup - 1, 0))["mean"] for _, t in rounds) / len(rounds)
        methods: dict[str, list[float]] = {}
        for _, t in rounds:
            for row in t["phases"][a.warmup:]:
                for k, v in row.items():
                    methods.setdefault(k, []).append(v)
        print(f"TRL {rounds[0][1]['trl_version']} {mode}: mean seconds per steady step in timed methods (nested, so they overlap)")
        print(C.table(["method", "s/step", "share"],
                      [[k, sum(v) / len(v), sum(v) / len(v) / t_step] for k, v in methods.items()]))


if __name__ == "__main__":
    main()
