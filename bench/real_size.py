"""Fun-ASR-Nano at its published size, with random weights, on CPU: 3 GRPO steps through funrl's
Trainer on Ray against the same work in a plain single-process loop (issue 13; no download).

    .venv/bin/python bench/real_size.py --build-only        # build, print parameter counts, time, peak RSS
    .venv/bin/python bench/real_size.py                     # build once (cached), then funrl, then plain
    .venv/bin/python bench/real_size.py --tiny              # the same pipeline on the 32-wide test model (a smoke run)

The published configuration is transformers' ``FunAsrNanoConfig()`` defaults (its docstring names the
checkpoint "FunAudioLLM/Fun-ASR-Nano-2512-hf"): SAN-M encoder of 70 layers (the last 20 for timestamps),
hidden 512; a 2-layer adaptor of hidden 1024 with a 2048-wide projector; Qwen3-0.6B (28 layers, hidden
1024, 16 query / 8 KV heads, head_dim 128, vocabulary 151,936, head tied to the input embeddings). The
weights are drawn by transformers' own initialisation (std 0.02); float32 needs about 3.3 GB.

The folder (``~/.cache/funrl/bench/fun_asr_nano_830m``, built once) is what ``save_pretrained`` of the
model and its processor write, as :func:`funrl.models.families.testing.build_fun_asr_nano` does at 32
wide. Where we depart from the Hub checkpoint: the tokenizer is the test helpers' byte-level BPE with
the family's special tokens (no hub here), padded to the model's 151,936 ids with unreachable byte
strings (decodable, never produced by encoding), so every id the random model samples decodes; the
special tokens sit at ids 0-5 instead of 151,643+.

The job: B=2 prompts, G=4, 32 new tokens forced (a stop id outside the vocabulary; the plain loop:
``min_new_tokens``), LoRA r=16 on every linear of the text LM (funrl's default targets), β=0.04 (a
reference pass), one policy rank, the eSpeak corpus of ``funrl data synth --n 40 --seed 0``. funrl's
numbers come from its own profile (``profile/report.json``): seconds per phase per step, the
weight-sync bytes and time; peak RSS per role is ``VmHWM`` of each actor process (and the driver),
read after the last step, before the run ends. The export at the end of ``funrl train`` is skipped
(it is not a GRPO step). The plain loop runs after funrl, in its own process
(bench/_plain_grpo.py), never beside it: one copy of the model per role fits in 24 GiB, two runs
side by side might not.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

VOCAB = 151_936  # Qwen3-0.6B's embedding rows
MODEL_DIR = C.DEFAULT_WORK / "fun_asr_nano_830m"


def build_model(seed: int = 0, tok=None):
    """The published-size ``FunAsrNanoForConditionalGeneration``, random weights, float32, eval mode;
    with ``tok``, its placeholder, end-of-turn and padding ids are the tokenizer's."""
    import torch
    from transformers import FunAsrNanoConfig, FunAsrNanoForConditionalGeneration

    torch.manual_seed(seed)
    config = FunAsrNanoConfig()
    if tok is not None:
        if config.text_config.vocab_size != len(tok):
            raise ValueError(f"tokenizer has {len(tok)} ids, the published text model {config.text_config.vocab_size}")
        config.audio_token_id = tok.convert_tokens_to_ids("<|object_ref_start|>")
        config.text_config.eos_token_id = tok.convert_tokens_to_ids("<|im_end|>")
        config.text_config.pad_token_id = tok.pad_token_id
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


def padded_tokenizer(size: int = VOCAB):
    """The test helpers' Qwen2-style BPE with Fun-ASR-Nano's special tokens, its vocabulary padded
    to ``size`` ids with 2- and 3-character byte-level strings (decodable; no merge reaches them)."""
    import itertools

    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import Qwen2Tokenizer

    from funrl.models.families.testing import FUN_ASR_NANO_SPECIAL, qwen2_style_tokenizer

    small = qwen2_style_tokenizer(FUN_ASR_NANO_SPECIAL)
    bpe = json.loads(small.backend_tokenizer.to_str())["model"]
    vocab = dict(bpe["vocab"])
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in bpe["merges"]]
    for a, b, c in itertools.product(sorted(ByteLevel.alphabet()), repeat=3):
        for piece in (a + b, a + b + c):
            if len(vocab) < size and piece not in vocab:
                vocab[piece] = len(vocab)
        if len(vocab) >= size:
            break
    extra = [t for t in FUN_ASR_NANO_SPECIAL if t not in ("<|endoftext|>", "<|im_end|>")]
    return Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, eos_token="<|im_end|>",
                          pad_token="<|endoftext|>", extra_special_tokens=extra, padding_side="left")


def build_folder(path: Path = MODEL_DIR) -> Path:
    """The published-size model, processor and tokenizer saved in ``path`` (once: reused when its
    ``.built`` stamp is there)."""
    if (path / ".built").is_file():
        return path
    from transformers import FunAsrNanoProcessor

    from funrl.models.families.fun_asr_nano import KnfFunAsrNanoFeatureExtractor
    from funrl.models.families.testing import _save

    start = time.perf_counter()
    tok = padded_tokenizer()
    model = build_model(tok=tok)
    for part, n in parameter_counts(model).items():
        print(f"{part:32s} {n / 1e6:9.2f} M")
    _save(model, FunAsrNanoProcessor(KnfFunAsrNanoFeatureExtractor(), tok), tok, path)
    (path / ".built").write_text(f"{time.perf_counter() - start:.1f} s\n")
    print(f"saved {path} in {time.perf_counter() - start:.1f} s", flush=True)
    return path


def vmhwm_gb(pid: int) -> float:
    """Peak resident memory (``VmHWM``) of a live process, in GiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 2**20
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def measured_trainer():
    """funrl's Trainer, reading each role's peak RSS after the last step and skipping the export."""
    import ray

    from funrl.train.driver import Trainer

    class MeasuredTrainer(Trainer):
        def __init__(self, cfg):
            super().__init__(cfg)
            names = self.roles.names
            self.pids = {"driver": os.getpid(), **dict(zip(names.values(), ray.get([a.pid.remote() for a in names])))}

        def finish(self):
            self.peaks = {n: vmhwm_gb(p) for n, p in self.pids.items()}
            self.roles.export_model = lambda folder: None  # the export is not a GRPO step
            return super().finish()

    return MeasuredTrainer


def job_config(a, model: Path, corpus: Path, vocab: int):
    from funrl.config import load_config

    ov = {
        "run.output_dir": str(a.work / "runs"), "run.name": "real_size" + ("_tiny" if a.tiny else ""),
        "data.train_manifest": str(corpus / "train.jsonl"), "model.path": str(model),
        "train.steps": a.steps, "train.prompts_per_step": a.prompts, "algorithm.group_size": a.group,
        "rollout.max_new_tokens": a.max_new, "rollout.stop_token_ids": f"[{vocab}]",  # outside: never stops
        "policy.world_size": 1, "policy.micro_batch_size": a.prompts * a.group,
        "policy.logprob_micro_batch_size": a.prompts * a.group, "policy.lora.enabled": True,
        "policy.lora.r": a.lora_r, "policy.optim.warmup_steps": 0,
        "checkpoint.every": 0, "checkpoint.save_final": False, "cluster.torch_threads": a.threads,
        "profile.plots": False, "profile.summary": False,
    }
    return load_config(None, [f"{k}={v}" for k, v in ov.items()])


def run_funrl(a, model: Path, corpus: Path, vocab: int) -> dict:
    cfg = job_config(a, model, corpus, vocab)
    trainer = C.run_funrl(cfg, measured_trainer())
    report = json.loads((trainer.run_dir / "profile" / "report.json").read_text())
    steps = [{"step": r["step"], "wall_s": r["wall_s"], "phases": {**r["phases"], "orchestration": r["orchestration"]}}
             for r in report["per_step"]]
    return {"steps": steps, "weight_sync": report["weight_sync"], "peak_rss_gb": trainer.peaks,
            "lora_targets": list(cfg.policy.lora.target_modules), "run_dir": str(trainer.run_dir)}


def run_plain(a, model: Path, corpus: Path, lora_targets: list[str]) -> dict:
    spec = {"model": str(model), "manifest": str(corpus / "train.jsonl"), "steps": a.steps, "prompts": a.prompts,
            "group": a.group, "max_new": a.max_new, "lora_r": a.lora_r, "lora_targets": lora_targets,
            "threads": a.threads}
    env = {**os.environ, "OMP_NUM_THREADS": str(a.threads), "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run([sys.executable, str(Path(__file__).with_name("_plain_grpo.py")), json.dumps(spec)],
                         stdout=subprocess.PIPE, text=True, env=env, check=True).stdout
    return json.loads(next(x for x in out.splitlines() if x.startswith("PLAIN_RESULT "))[len("PLAIN_RESULT "):])


def mean_phases(steps: list[dict], skip: int) -> dict[str, float]:
    rows = steps[skip:] or steps
    names = list(dict.fromkeys(k for r in rows for k in r["phases"]))
    out = {n: sum(r["phases"].get(n, 0.0) for r in rows) / len(rows) for n in names}
    return {"step (wall)": sum(r["wall_s"] for r in rows) / len(rows), **out}


def summary(a, funrl: dict, plain: dict) -> str:
    skip = 1 if a.steps > 1 else 0
    f, p = mean_phases(funrl["steps"], skip), mean_phases(plain["steps"], skip)
    rows = [[n, f.get(n, "-"), p.get(n, "-")] for n in dict.fromkeys([*f, *p])]
    lines = [f"s/step by phase, mean of steps {skip}..{a.steps - 1} (step 0 warms up)", C.table(["phase", "funrl", "plain"], rows),
             f"funrl/plain (step wall): {f['step (wall)'] / p['step (wall)']:.3f}",
             "per-step wall s: funrl " + ", ".join(f"{r['wall_s']:.1f}" for r in funrl["steps"])
             + "; plain " + ", ".join(f"{r['wall_s']:.1f}" for r in plain["steps"])]
    ws = funrl["weight_sync"] or {}
    if ws:
        lines.append(f"weight sync: {ws['bytes_per_step'] / 2**20:.2f} MiB/step in {ws['seconds_per_step']:.3f} s/step "
                     f"({ws['transport']}; LoRA: the adapter only)")
    lines.append("peak RSS (VmHWM, GiB): " + ", ".join(f"{n} {v:.2f}" for n, v in funrl["peak_rss_gb"].items())
                 + f"; plain (one process) {plain['peak_rss_gb']:.2f}")
    return "\n".join(lines)


def load_ok(max_load: float) -> bool:
    load1 = os.getloadavg()[0]
    print(f"{C.uptime()}\n" + subprocess.run(["free", "-g"], capture_output=True, text=True).stdout, flush=True)
    if load1 >= max_load:
        print(f"load average {load1:.2f} >= {max_load}: not running (--max-load to change)", flush=True)
    return load1 < max_load


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-only", action="store_true", help="build the model and print its size, then stop")
    ap.add_argument("--tiny", action="store_true", help="the 32-wide test model instead (a smoke run)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads: per funrl actor, and the plain process")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--prompts", type=int, default=2)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--max-new", type=int, default=32)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--max-load", type=float, default=3.0, help="refuse to run at this 1-minute load average or above")
    ap.add_argument("--work", type=Path, default=C.DEFAULT_WORK)
    ap.add_argument("--out", type=Path, default=None, help="also write the summary (and the JSON beside it) here")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.build_only:
        start = time.perf_counter()
        model = build_model()
        built = time.perf_counter() - start
        for part, n in parameter_counts(model).items():
            print(f"{part:32s} {n / 1e6:9.2f} M")
        tied = model.lm_head.weight is model.get_input_embeddings().weight
        print(f"head tied to embeddings: {tied}; built in {built:.1f} s with {args.threads} thread(s); "
              f"peak RSS {peak_rss_gb():.2f} GB")
        return 0
    if args.tiny:
        from funrl.models.families.testing import build_fun_asr_nano

        model_dir = build_fun_asr_nano(args.work / "tiny_fun_asr_nano")
    else:
        model_dir = build_folder(args.work / MODEL_DIR.name)
    if not load_ok(args.max_load):
        return 1
    corpus, _ = C.assets(args.work, str(model_dir), n_utts=40)
    vocab = json.loads((model_dir / "config.json").read_text())["text_config"]["vocab_size"]
    t0 = time.perf_counter()
    funrl = run_funrl(args, model_dir, corpus, vocab)
    print(f"funrl done in {time.perf_counter() - t0:.0f} s ({C.uptime()})", flush=True)
    t0 = time.perf_counter()
    plain = run_plain(args, model_dir, corpus, funrl["lora_targets"])
    print(f"plain done in {time.perf_counter() - t0:.0f} s ({C.uptime()})", flush=True)
    text = summary(args, funrl, plain)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
        args.out.with_suffix(".json").write_text(json.dumps({"funrl": funrl, "plain": plain}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
