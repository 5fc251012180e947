"""What the training benchmarks share: a cached corpus and model, a run config, step timings.

``assets(work, model)`` synthesises a small eSpeak corpus and builds a random-weight audio LLM
from config once per work folder (both cached): ``model="demo"`` is the demo's tiny instance
(the defaults of :mod:`funrl.models.config`: 2-layer Qwen3 of hidden 192, 400-token BPE), ``"test"``
the 32-wide model of the training tests, any other value a saved model folder used as is.

Step timings come from the run's own profile (``profile/spans.jsonl``): the profiler's step
record spans ``with prof.step(n)`` (the phases), and the driver logs metrics and drains worker
spans *after* it, so the honest time per step is the interval from one step's start to the
next's. Both are returned; the benches say which they print.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_WORK = Path(os.environ.get("FUNRL_BENCH_WORK", Path.home() / ".cache" / "funrl" / "bench"))


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def assets(work: Path, model: str = "demo", n_utts: int = 48) -> tuple[Path, Path]:
    """``(corpus_dir, model_dir)``, made on first use and reused after."""
    corpus = work / f"corpus{n_utts}"
    if not (corpus / "train.jsonl").exists():
        from funrl.data.synth.corpus import synthesize_corpus

        synthesize_corpus(corpus, n_utts, seed=0, languages=("en",), noise_frac=0.0,
                          split_ratios=(1.0, 0.0, 0.0), disjoint_text=False, overwrite=True)
    if model not in ("demo", "test"):
        return corpus, Path(model)
    model_dir = work / f"model_{model}_{n_utts}"
    if not (model_dir / "funrl_model.json").exists():
        _build_model(corpus, model_dir, model)
    return corpus, model_dir


def _build_model(corpus: Path, out: Path, kind: str) -> None:
    import torch

    from funrl.data.manifest import load_manifest
    from funrl.models.audio_llm import build_model
    from funrl.models.config import AdaptorConfig, EncoderConfig, LLMConfig, ModelConfig
    from funrl.models.io import save_pretrained
    from funrl.models.prompt import template_strings
    from funrl.models.tokenizer import train_tokenizer

    torch.manual_seed(0)
    if kind == "demo":
        cfg = ModelConfig()  # the demo's tiny instance: every size at its default
    else:  # tests/train/conftest.py's model
        cfg = ModelConfig(
            encoder=EncoderConfig(d_model=32, num_layers=1, num_heads=2, ffn_dim=64),
            adaptor=AdaptorConfig(num_layers=1, num_heads=2, ffn_dim=64),
            llm=LLMConfig(hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1, head_dim=16,
                          intermediate_size=64),
            vocab_size=200,
        )
    texts = [u.text for u in load_manifest(corpus / "manifest.jsonl")]
    tok = train_tokenizer(texts, cfg.vocab_size, template_strings(cfg.prompt))
    save_pretrained(build_model(cfg, tok), tok, out)


def text_lm_dir(model: Path) -> Path:
    """The plain causal-LM folder of ``model``: ``llm/`` of a funrl-format folder; for a transformers
    family folder (Fun-ASR-Nano, Qwen2-Audio) its text LM, exported once beside it
    (``{model}.text_lm``) as ``funrl train`` exports it for the engines."""
    from funrl.models.families import is_native, load_family

    if is_native(model):
        return model / "llm"
    out = model.parent / f"{model.name}.text_lm"
    if not (out / "config.json").is_file():
        load_family(model).save_text_lm(out)
    return out


def funrl_config(run_root: Path, name: str, corpus: Path, model: Path, *, steps: int, prompts: int, group: int,
                 max_new: int, lora: bool, lr: float = 1e-5, kl: float = 0.04, threads: int = 1,
                 force_length: bool = True, extra: dict | None = None):
    """A single-rank GRPO config for benchmarking: no checkpoints, no plots, no summary table.

    ``force_length``: a stop id outside the vocabulary, so every completion has ``max_new``
    tokens (random weights would otherwise stop at random lengths and the sides would differ).
    """
    from funrl.config import load_config
    from transformers import AutoConfig

    vocab = AutoConfig.from_pretrained(text_lm_dir(model)).vocab_size if force_length else None
    ov = {
        "run.output_dir": str(run_root), "run.name": name,
        "data.train_manifest": str(corpus / "train.jsonl"), "model.path": str(model),
        "train.steps": steps, "train.prompts_per_step": prompts, "algorithm.group_size": group,
        "algorithm.kl_coef": kl, "rollout.max_new_tokens": max_new,
        "policy.world_size": 1, "policy.micro_batch_size": prompts * group,
        "policy.logprob_micro_batch_size": prompts * group,
        "policy.lora.enabled": lora, "policy.optim.lr": lr, "policy.optim.warmup_steps": 0,
        "checkpoint.every": 0, "checkpoint.save_final": False,
        "cluster.torch_threads": threads, "profile.plots": False, "profile.summary": False,
        **({"rollout.stop_token_ids": f"[{vocab}]"} if force_length else {}),
        **(extra or {}),
    }
    return load_config(None, [f"{k}={v}" for k, v in ov.items()])


def read_steps(run_dir: Path) -> list[dict]:
    """One row per finished step: ``step``, ``start``, ``span_s`` (the profiler's step record),
    ``interval_s`` (to the next step's start; None for the last step)."""
    steps = []
    for line in (run_dir / "profile" / "spans.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r.get("type") == "step":
            steps.append({"step": r["step"], "start": r["start"], "span_s": r["end"] - r["start"]})
    steps.sort(key=lambda r: r["step"])
    for a, b in zip(steps, steps[1:] + [None]):
        a["interval_s"] = b["start"] - a["start"] if b else None
    return steps


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def steady(values: list[float], skip: int) -> dict:
    """mean / median / min / n over ``values[skip:]`` (the first steps warm caches up)."""
    xs = [v for v in values[skip:] if v is not None]
    if not xs:
        raise ValueError(f"no steady-state steps: {len(values)} steps, {skip} skipped as warm-up; run more steps")
    return {"mean": statistics.fmean(xs), "median": statistics.median(xs), "min": min(xs), "n": len(xs)}


def table(headers: list[str], rows: list[list]) -> str:
    """A plain aligned text table (numbers to 4 significant digits)."""
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    cells = [[fmt(v) for v in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


def run_funrl(cfg, trainer_cls=None):
    """Run a GRPO job in this process; returns the finished trainer (``.run_dir``).

    Ray: the trainer starts (and stops) a private cluster unless one is running here already
    (see :func:`start_shared_ray`), which it then reuses and leaves running.
    """
    from funrl.train.cluster import ray_safe_env
    from funrl.train.driver import Trainer

    ray_safe_env()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    shutil.rmtree(Path(cfg.run.output_dir) / cfg.run.name, ignore_errors=True)  # a fresh run, not appended to
    trainer = (trainer_cls or Trainer)(cfg)
    trainer.fit()
    return trainer


def start_shared_ray(cfg, where: Path) -> None:
    """Start the private Ray cluster the trainer would, once, for several runs in this process."""
    from funrl.train.cluster import ray_safe_env, start_ray

    ray_safe_env()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    where.mkdir(parents=True, exist_ok=True)
    counts = {"encoder": 1, "rollout": 1, "policy": cfg.policy.world_size, "reward": cfg.rewards.num_workers}
    start_ray(cfg.cluster, where, counts)
