"""GPU check of funrl's torch paths in one process: HF rollout engine, FSDP2 policy worker, weight
sync, sleep/wake and engine-vs-trainer log-probs, on a random Qwen3 of Qwen3-0.6B's shape.

Written to be run once on a lent GPU (issues 16 and 20 want these numbers): needs torch,
transformers, peft, safetensors and numpy only (no Ray, SGLang, omegaconf, audio packages), and
no ``pip install``: run from the repository root and the script maps ``funrl.policy`` /
``funrl.rollout`` / ``funrl.rewards`` (setup.cfg's package_dir) itself when funrl is not installed.

Device command (the ``run`` tool with timeout_s=490; expected 2-4 minutes on an H200; phases not
started within --time-limit seconds are skipped, and ``timeout`` kills a hung run)::

    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; PY=$(python -c 'import torch' 2>/dev/null && echo python || echo python3); PYTHONUNBUFFERED=1 OMP_NUM_THREADS=8 timeout 470 $PY bench/gpu_torch_check.py --time-limit 400

``pip install --no-deps --no-build-isolation -e .`` is not needed (and fails offline where the
environment lacks setuptools' ``wheel``: "invalid command 'bdist_wheel'" on this machine's base
Python); an installed funrl is used when present. CPU smoke test (what the CI machine can do)::

    OMP_NUM_THREADS=2 .venv/bin/python bench/gpu_torch_check.py --tiny

Phases (``--phases 1,2,...``; a later phase builds what it needs if an earlier one was skipped):

1. build: write a random bf16 Qwen3 (hidden 1024, 28 layers, 16/8 heads, head_dim 128,
   intermediate 3072, vocab 151936, tied embeddings) to a temp folder. ``--tiny``: 2 layers,
   hidden 64, vocab 1000. (``funrl.rollout.tiny_llm.make_tiny_qwen3`` fixes the vocabulary to its
   tokenizer's and the MLP/head shapes to the hidden size, so it cannot make this shape.)
2. rollout: ``HFEngine`` in bf16, B prompts x G samples of ``--max-new`` tokens with no stop token
   (every row runs to the end), warm-up then timed; tokens/s.
3. policy: ``PolicyWorker`` (world size 1: NCCL on GPU, gloo on CPU, file:// rendezvous) for LoRA
   r16 / full fine-tuning x param_dtype bf16 / fp32: build, old and reference log-prob passes, a
   warm-up update and a timed update on the rollout's completions.
4. sync: ``export_weights`` buckets into ``HFEngine.update_weights`` on the same device, LoRA-merged
   and full FT: fp32 buckets copied straight in (the in-process lower bound), bf16 buckets, and
   through ``PackedTensors`` (the trainer's path minus Ray's object store); bytes and GB/s. Then
   the engine's log-probs of the batch's completion tokens (teacher-forced on its weights) against
   the bf16 policy's ``compute_logprobs('old')``: max and mean |Δ log p|.
5. sleep/wake: ``HFEngine`` and ``PolicyWorker`` sleep()/wake() times, with
   ``torch.cuda.memory_allocated`` after each (what issue 16's ownership check would read).
6. mismatch: the bf16 engine's rollout log-probs against the policy's ``compute_logprobs('old')``
   on the same (pre-update) weights, param_dtype fp32 and bf16: mean and max |Δ log p|.

Each phase's timings are bracketed by ``torch.cuda.synchronize()``; the peak column is
``torch.cuda.max_memory_allocated`` since a reset at the row's start (blank on CPU). A failing
phase records its error in the table and the next phase runs. The table is printed at the end and,
when ``$OUT`` is set, written to ``$OUT/gpu_torch_check.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from pathlib import Path



import _standalone  # noqa: E402,F401  (funrl from this checkout where it is not installed)

import torch  # noqa: E402

GIB = 2**30


class TimeUp(Exception):
    pass


# ----------------------------------------------------------------------------- the table
class Table:
    """Rows of (phase, seconds, peak GiB, note); each row timed with device synchronisation."""

    def __init__(self, device: torch.device, limit_s: float):
        self.device, self.limit_s, self.t0, self.rows = device, limit_s, time.perf_counter(), []
        self.cuda = device.type == "cuda"

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def check_time(self) -> None:
        if self.elapsed() > self.limit_s:
            raise TimeUp(f"--time-limit {self.limit_s:g} s reached")

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def allocated(self) -> float | None:
        return torch.cuda.memory_allocated(self.device) / GIB if self.cuda else None

    @contextmanager
    def measure(self, phase: str):
        """``with t.measure("2 generate") as row: ...; row["note"] = ...`` (a callable note gets the seconds)."""
        self.check_time()
        self.sync()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        row = {"phase": phase, "seconds": None, "peak_gib": None, "note": ""}
        start = time.perf_counter()
        yield row
        self.sync()
        row["seconds"] = time.perf_counter() - start
        if self.cuda:
            row["peak_gib"] = torch.cuda.max_memory_allocated(self.device) / GIB
        if callable(row["note"]):
            row["note"] = row["note"](row["seconds"])
        self.add(row)

    def add(self, row: dict) -> None:
        self.rows.append(row)
        peak = "" if row["peak_gib"] is None else f" peak {row['peak_gib']:.2f} GiB"
        secs = "" if row["seconds"] is None else f" {row['seconds']:.3f} s"
        print(f"[{self.elapsed():6.1f} s] {row['phase']}:{secs}{peak} {row['note']}", flush=True)

    def error(self, phase: str, exc: BaseException) -> None:
        if isinstance(exc, TimeUp):
            self.add({"phase": phase, "seconds": None, "peak_gib": None, "note": f"SKIPPED: {exc}"})
            return
        traceback.print_exc(limit=-6)
        sys.stderr.flush()
        text = " ".join(f"{type(exc).__name__}: {exc}".split())
        self.add({"phase": phase, "seconds": None, "peak_gib": None, "note": f"ERROR: {text[:300]}"})

    def render(self) -> str:
        w = max(len(r["phase"]) for r in self.rows) if self.rows else 10
        lines = [f"{'phase':<{w}}  {'seconds':>9}  {'peak GiB':>8}  note", "-" * (w + 40)]
        for r in self.rows:
            s = "" if r["seconds"] is None else f"{r['seconds']:.3f}"
            p = "" if r["peak_gib"] is None else f"{r['peak_gib']:.2f}"
            lines.append(f"{r['phase']:<{w}}  {s:>9}  {p:>8}  {r['note']}")
        return "\n".join(lines)


# ----------------------------------------------------------------------------- shared state
SIZES = {  # Qwen3-0.6B's shape (the real model's llm/), and the --tiny smoke-test shape
    "full": dict(vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
                 num_attention_heads=16, num_key_value_heads=8, head_dim=128, initializer_range=0.02),
    "tiny": dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, head_dim=16, initializer_range=0.02),
}
SETTINGS = [(True, "bfloat16"), (True, "float32"), (False, "bfloat16"), (False, "float32")]  # (lora, param_dtype)


def _label(lora: bool, dtype: str) -> str:
    return f"{'lora r16' if lora else 'full FT'} {'bf16' if dtype == 'bfloat16' else 'fp32'}"


class Ctx:
    """What the phases share; each piece is built on first use (so any phase can run alone)."""

    def __init__(self, args, table: Table):
        self.args, self.t, self.dev = args, table, table.device
        self.tmp = Path(tempfile.mkdtemp(prefix="funrl-gpu-torch-"))
        self.model_dir = None
        self.engine = None
        self.prompts = None  # [B] each [L, H] fp32 (bf16-representable: engine and policy see the same)
        self.rollout = None  # RolloutBatch from the engine's base weights
        self.workers: dict = {}  # (lora, dtype) -> PolicyWorker
        self.updated: set = set()  # keys of workers that took an update
        self.base_old: dict = {}  # dtype -> old log-probs on the base (pre-update) weights
        self.group = False
        self.synced = False  # the engine holds pushed weights (a rollout now would not be the base's)

    # ---- model and engine
    def build_model(self) -> int:
        from transformers import Qwen3Config, Qwen3ForCausalLM

        size = SIZES["tiny" if self.args.tiny else "full"]
        cfg = Qwen3Config(**size, tie_word_embeddings=True, max_position_embeddings=4096, rms_norm_eps=1e-6,
                          eos_token_id=size["vocab_size"] - 1, pad_token_id=size["vocab_size"] - 2,
                          bos_token_id=None)
        torch.manual_seed(0)
        try:
            with torch.device(self.dev):  # random init on the device: seconds instead of a minute on CPU
                model = Qwen3ForCausalLM(cfg)
        except Exception as exc:  # noqa: BLE001  (slower but safe: build on the host)
            print(f"random init on {self.dev} failed ({type(exc).__name__}: {exc}); building on the CPU", flush=True)
            model = Qwen3ForCausalLM(cfg)
        model = model.to(torch.bfloat16)
        folder = self.tmp / "llm"
        model.save_pretrained(str(folder))
        n = sum(p.numel() for p in model.parameters())
        del model
        self._free()
        self.model_dir = folder
        return n

    def model(self) -> Path:
        if self.model_dir is None:
            with self.t.measure("1 build random Qwen3 (dependency)") as row:
                n = self.build_model()
                row["note"] = f"{n / 1e6:.2f}M params"
        return self.model_dir

    def get_engine(self):
        if self.engine is None:
            from funrl.rollout.hf_engine import HFEngine

            path = self.model()
            before = self.t.allocated()
            with self.t.measure("2 HFEngine load (bf16)") as row:
                self.engine = HFEngine(path, device=str(self.dev), dtype=torch.bfloat16)
                row["note"] = lambda s: f"holds {self._mem(before)}"
        return self.engine

    def make_prompts(self):
        if self.prompts is None:
            g = torch.Generator().manual_seed(1)
            h = SIZES["tiny" if self.args.tiny else "full"]["hidden_size"]
            self.prompts = [(0.02 * torch.randn(self.args.prompt_len, h, generator=g)).to(torch.bfloat16).float()
                            for _ in range(self.args.prompts)]
        return self.prompts

    def sampling(self):
        from funrl.rollout.protocol import SamplingParams

        # stop id -1 never matches a sampled token: every row has max_new tokens
        return SamplingParams(temperature=1.0, max_new_tokens=self.args.max_new, stop_token_ids=[-1], seed=0)

    def generate(self, label: str):
        eng, prompts = self.get_engine(), self.make_prompts()
        with self.t.measure(label) as row:
            batch = eng.generate(prompts, self.args.group, self.sampling())
            row["note"] = lambda s: f"{batch.num_tokens} tokens, {batch.num_tokens / s:.0f} tok/s ({len(batch)} rows)"
        return batch

    def get_rollout(self):
        if self.rollout is None:
            if self.synced:
                raise RuntimeError("the engine holds synced weights; the rollout must come from the base weights")
            self.rollout = self.generate("2 generate (dependency)")
        return self.rollout

    def policy_batch(self):
        from funrl.policy.batch import PolicyBatch

        r = self.get_rollout()
        g = torch.Generator().manual_seed(2)
        return PolicyBatch(self.make_prompts(), list(r.prompt_index), [torch.tensor(t, dtype=torch.long) for t in r.token_ids],
                           advantages=torch.randn(len(r), generator=g))

    # ---- policy workers
    def init_group(self) -> None:
        import torch.distributed as dist

        if not dist.is_initialized():
            backend = "nccl" if self.dev.type == "cuda" else "gloo"
            dist.init_process_group(backend, init_method=f"file://{self.tmp}/rendezvous", rank=0, world_size=1)
        self.group = True

    def worker(self, lora: bool, dtype: str):
        key = (lora, dtype)
        if key not in self.workers:
            from funrl.policy.config import AlgorithmConfig, LoraSettings, PolicyConfig
            from funrl.policy.fsdp_worker import PolicyWorker

            path = self.model()
            self.init_group()
            cfg = PolicyConfig(world_size=1, param_dtype=dtype, micro_batch_size=self.args.micro_batch,
                               logprob_micro_batch_size=2 * self.args.micro_batch, lora=LoraSettings(enabled=lora, r=16, alpha=32.0))
            before = self.t.allocated()
            with self.t.measure(f"3 build worker {_label(lora, dtype)}") as row:
                self.workers[key] = PolicyWorker(cfg, AlgorithmConfig(), str(path), device=str(self.dev), temperature=1.0)
                row["note"] = lambda s: f"holds {self._mem(before)} (fp32 masters{'' if lora else ' + frozen ref copy'})"
        return self.workers[key]

    def drop(self, key) -> None:
        self.workers.pop(key, None)
        self.updated.discard(key)
        self._free()

    def _free(self) -> None:
        gc.collect()
        if self.dev.type == "cuda":
            torch.cuda.empty_cache()

    def _mem(self, before: float | None) -> str:
        a = self.t.allocated()
        return "n/a on CPU" if a is None else f"{a - before:+.2f} GiB (allocated now {a:.2f} GiB)"

    def close(self) -> None:
        import torch.distributed as dist

        self.workers.clear()
        if self.group and dist.is_initialized():
            dist.destroy_process_group()


def _diff(a: list, b: list) -> tuple[float, float, int]:
    """(mean, max) |a - b| over all tokens of ragged rows, and the token count."""
    d = torch.cat([(torch.as_tensor(x, dtype=torch.float32) - torch.as_tensor(y, dtype=torch.float32)).abs()
                   for x, y in zip(a, b)])
    return float(d.mean()), float(d.max()), d.numel()


# ----------------------------------------------------------------------------- phases
def phase_build(c: Ctx) -> None:
    with c.t.measure("1 build random Qwen3 + save") as row:
        n = c.build_model()
        row["note"] = f"{n / 1e6:.2f}M params, bf16 safetensors in {c.model_dir}"


def phase_rollout(c: Ctx) -> None:
    c.get_engine()
    a = c.args
    c.generate(f"2 generate warm-up B={a.prompts} G={a.group} L={a.prompt_len} T={a.max_new}")
    c.rollout = c.generate("2 generate timed")


def phase_policy(c: Ctx) -> None:
    for lora, dtype in SETTINGS:
        label = _label(lora, dtype)
        try:
            _policy_setting(c, lora, dtype, label)
        except TimeUp:
            raise
        except Exception as exc:  # noqa: BLE001  (record and go on with the next setting)
            c.t.error(f"3 {label}", exc)
        if dtype == "float32":  # keep the bf16 workers (after their update) for phases 4 and 5
            c.drop((lora, dtype))


def _policy_setting(c: Ctx, lora: bool, dtype: str, label: str) -> None:
    batch = c.policy_batch()
    w = c.worker(lora, dtype)
    with c.t.measure(f"3 old log-probs {label}") as row:
        old = w.compute_logprobs(batch, "old")
        row["note"] = f"{sum(x.numel() for x in old)} tokens (base weights)"
    if (lora, dtype) not in c.updated:
        c.base_old.setdefault(dtype, old)
    with c.t.measure(f"3 ref log-probs {label}") as row:
        batch.ref_logprobs = w.compute_logprobs(batch, "ref")
        row["note"] = "adapter disabled" if lora else "frozen sharded copy"
    for name in ("warm-up", "timed"):
        with c.t.measure(f"3 update {name} {label}") as row:
            m = w.update(batch, max_response_length=c.args.max_new)
            row["note"] = f"loss {m.get('loss', float('nan')):.4g}, grad_norm {m['grad_norm']:.3g}, {m['num_tokens']:.0f} tokens"
        c.updated.add((lora, dtype))


def phase_sync(c: Ctx) -> None:
    from funrl.train.transport import PackedTensors

    eng, batch = c.get_engine(), c.policy_batch()
    bucket = int(c.args.bucket_mb * 2**20)
    for lora in (True, False):
        label = _label(lora, "bfloat16")
        w = c.worker(lora, "bfloat16")
        note = "" if (lora, "bfloat16") in c.updated else " (no update before it: phase 3 skipped)"

        def direct(dtype):
            sent = 0
            for b in w.export_weights(bucket, dtype=dtype):
                eng.update_weights(b)
                sent += sum(t.numel() * t.element_size() for _, t in b)
            return sent

        def packed():
            sent = 0
            for b in w.export_weights(bucket):
                p = PackedTensors.pack(b)
                eng.update_weights(p.tensors())
                sent += p.nbytes
            return sent

        for name, fn in (("fp32 buckets, direct copy", lambda: direct(None)),
                         ("bf16 buckets, direct copy", lambda: direct(torch.bfloat16)),
                         ("PackedTensors via host (trainer path minus Ray)", packed)):
            with c.t.measure(f"4 sync {label}: {name}") as row:
                sent = fn()
                c.synced = True
                row["note"] = lambda s, sent=sent: f"{sent / 1e6:.1f} MB, {sent / s / 1e9:.3g} GB/s, bucket {c.args.bucket_mb:g} MiB{note}"
        _check_after_sync(c, w, eng, batch, label)


def _check_after_sync(c: Ctx, w, eng, batch, label: str) -> None:
    from funrl.policy.teacher_forcing import completion_logprobs

    with c.t.measure(f"4 check {label}: engine vs policy log p") as row:
        pol = w.compute_logprobs(batch, "old")
        weight = eng.model.get_input_embeddings().weight
        prompts = [e.to(weight.device, weight.dtype) for e in batch.prompt_embeds]
        with torch.inference_mode():
            lp, _, mask = completion_logprobs(eng.model, prompts, batch.prompt_index, batch.completion_ids,
                                              temperature=1.0, shared=True)
        engine = [lp[i][mask[i]].float().cpu() for i in range(len(batch))]
        mean, mx, n = _diff(engine, pol)
        row["note"] = f"max |Δ log p| {mx:.3g}, mean {mean:.3g} over {n} tokens (bf16 engine vs bf16 policy)"


def phase_sleep(c: Ctx) -> None:
    eng = c.get_engine()
    for name, fn in (("HFEngine sleep", eng.sleep), ("HFEngine wake", eng.wake)):
        _timed_memory(c, f"5 {name}", fn)
    keys = [k for k in c.workers] or [(True, "bfloat16")]
    for lora, dtype in keys:
        w = c.worker(lora, dtype)
        for name in ("sleep", "wake"):
            _timed_memory(c, f"5 worker {_label(lora, dtype)} {name}", getattr(w, name))


def _timed_memory(c: Ctx, phase: str, fn) -> None:
    before = c.t.allocated()
    with c.t.measure(phase) as row:
        fn()
        row["note"] = lambda s: "CPU: no device memory (no-op by design)" if before is None else \
            f"allocated after {c.t.allocated():.2f} GiB ({c.t.allocated() - before:+.2f} GiB)"


def phase_mismatch(c: Ctx) -> None:
    r = c.get_rollout()
    batch = c.policy_batch()
    for dtype in ("float32", "bfloat16"):
        label = "fp32" if dtype == "float32" else "bf16"
        try:
            old, src = c.base_old.get(dtype), "phase 3's pre-update pass"
            if old is None:
                w = _base_worker(c, dtype)
                with c.t.measure(f"6 old log-probs, param {label}") as row:
                    old = w.compute_logprobs(batch, "old")
                src = "LoRA worker before any update (B=0: the base weights)"
            mean, mx, n = _diff(r.logprobs, old)
            c.t.add({"phase": f"6 rollout vs policy log p, param {label}", "seconds": None, "peak_gib": None,
                     "note": f"mean |Δ| {mean:.3g}, max {mx:.3g} over {n} tokens (bf16 engine's sampling log p; {src})"})
        except TimeUp:
            raise
        except Exception as exc:  # noqa: BLE001
            c.t.error(f"6 param {label}", exc)


def _base_worker(c: Ctx, dtype: str):
    """A LoRA worker still on the base weights (rebuilt if the cached one took an update)."""
    if (True, dtype) in c.updated:
        c.drop((True, dtype))
    return c.worker(True, dtype)


PHASES = {1: ("build", phase_build), 2: ("rollout", phase_rollout), 3: ("policy", phase_policy),
          4: ("weight sync", phase_sync), 5: ("sleep/wake", phase_sleep), 6: ("engine vs trainer log p", phase_mismatch)}


# ----------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="2 layers, hidden 64, vocab 1000 (CPU smoke test)")
    p.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    p.add_argument("--phases", default="1,2,3,4,5,6", help="comma-separated phase numbers")
    p.add_argument("--time-limit", type=float, default=400.0, help="seconds after which remaining phases are skipped")
    p.add_argument("--prompts", type=int, default=None, help="B (default 8; --tiny 4)")
    p.add_argument("--group", type=int, default=None, help="G samples per prompt (default 8; --tiny 4)")
    p.add_argument("--prompt-len", type=int, default=None, help="prompt embeddings (default 80; --tiny 12)")
    p.add_argument("--max-new", type=int, default=None, help="new tokens per row (default 64; --tiny 16)")
    p.add_argument("--micro-batch", type=int, default=4, help="policy.micro_batch_size (log-prob passes use twice it)")
    p.add_argument("--bucket-mb", type=float, default=None, help="weight-sync bucket MiB (default 512; --tiny 0.05)")
    a = p.parse_args(argv)
    big = dict(prompts=8, group=8, prompt_len=80, max_new=64, bucket_mb=512.0)
    small = dict(prompts=4, group=4, prompt_len=12, max_new=16, bucket_mb=0.05)
    for k, v in (small if a.tiny else big).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.phases = sorted({int(x) for x in a.phases.split(",") if x.strip()})
    bad = [x for x in a.phases if x not in PHASES]
    if bad:
        p.error(f"--phases: unknown phase(s) {bad}; choose from {sorted(PHASES)}")
    return a


def environment(device: torch.device) -> dict:
    import transformers

    env = {"torch": torch.__version__, "transformers": transformers.__version__, "device": str(device)}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.cuda.set_device(device.index or 0)
    table = Table(device, args.time_limit)
    env = environment(device)
    print(f"gpu_torch_check: {env}, phases {args.phases}, {'tiny' if args.tiny else 'Qwen3-0.6B shape'}", flush=True)
    ctx = Ctx(args, table)
    try:
        for i in args.phases:
            name, fn = PHASES[i]
            try:
                table.check_time()
                fn(ctx)
            except Exception as exc:  # noqa: BLE001  (one phase's failure must not lose the others)
                table.error(f"{i} {name}", exc)
    finally:
        ctx.close()
    print("\n" + table.render(), flush=True)
    failed = [r for r in table.rows if r["note"].startswith("ERROR")]
    print(f"\ntotal {table.elapsed():.1f} s; {len(failed)} error row(s)", flush=True)
    out = os.environ.get("OUT")
    if out:
        path = Path(out) / "gpu_torch_check.json"
        path.write_text(json.dumps({"env": env, "args": vars(args), "total_s": table.elapsed(), "rows": table.rows}, indent=1))
        print(f"wrote {path}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
