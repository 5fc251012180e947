"""Weight-sync time against LLM size: the old path (LoRA-merged full weights, packed through Ray's
object store, one bucket at a time) vs the new one (only what trains — the LoRA adapter, or the
parameters that train — through shared memory, pipelined), LoRA and full fine-tuning, on CPU.

Two Ray actors, as in training: a sender holding a real :class:`funrl.policy.fsdp_worker.PolicyWorker`
(1 gloo rank) and a real :class:`funrl.train.workers.rollout.RolloutWorker` with the HF engine.
Each row times the whole push as the policy's ``weight_sync`` span does (gather, send, the engine
loading it), over ``--repeats`` alternating rounds after one warm-up pair, and checks that both
paths leave the engine with the same weights (a bit-level digest). The trainable parameters are
perturbed first, so the adapter is not zero and full fine-tuning has something to send.

Sizes: ``demo`` (the demo's 2-layer Qwen3, hidden 192) and ``0.6b`` (the Qwen3-0.6B body: hidden
1024, 28 layers, 16/8 heads, head_dim 128, intermediate 3072, tied embeddings, 400-token
vocabulary), random weights, cached under ``~/.cache/funrl/bench/sync_*``. ``--engines
hf,sglang`` adds the SGLang engine (CPU): run the bench with the SGLang env's python then
(``$(bash rollout/sglang_env.sh | tail -1) bench/sync.py --engines hf,sglang``); its weights live
in SGLang's processes, so its rows are not digest-checked.

    python bench/sync.py [--sizes demo,0.6b] [--modes lora,full] [--engines hf] [--repeats 2] [--bucket-mb 512]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._common import DEFAULT_WORK, uptime  # noqa: E402

SIZES = {
    "demo": dict(hidden_size=192, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 head_dim=48, intermediate_size=512),
    "0.6b": dict(hidden_size=1024, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                 head_dim=128, intermediate_size=3072),
}


def llm_folder(work: Path, size: str) -> Path:
    """``{work}/sync_{size}/llm``: a random-weight Qwen3 of that size with funrl's tiny tokenizer."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from funrl.rollout.tiny_llm import make_tokenizer

    root = work / f"sync_{size}"
    llm = root / "llm"
    if not (llm / "config.json").exists():
        tok = make_tokenizer(llm)
        cfg = Qwen3Config(vocab_size=400, tie_word_embeddings=True, max_position_embeddings=1024,
                          eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"), **SIZES[size])
        torch.manual_seed(0)
        Qwen3ForCausalLM(cfg).to(torch.bfloat16).save_pretrained(llm)  # half the disk; both sides load float32
    return root


def make_actors(root: Path, lora: bool, bucket_bytes: int, engine: str):
    import ray
    import torch

    from funrl.train.workers.rollout import RolloutWorker

    class BenchRollout(RolloutWorker):
        def digest(self) -> int | None:
            """Bit-level digest of the engine's parameters (sum of their int32 views); None for SGLang."""
            if not hasattr(self.engine, "model"):
                return None
            return sum(int(p.detach().view(torch.int32).sum()) for p in self.engine.model.parameters())

    @ray.remote(num_cpus=0)
    class Sender:
        def __init__(self):
            from funrl.policy.config import AlgorithmConfig, LoraSettings, PolicyConfig
            from funrl.policy.fsdp_worker import PolicyWorker

            torch.set_num_threads(1)
            cfg = PolicyConfig(world_size=1, lora=LoraSettings(enabled=lora))
            rdv = tempfile.mkdtemp(prefix="funrl-sync-bench-")
            self.w = PolicyWorker(cfg, AlgorithmConfig(kl_coef=0.0), str(root / "llm"),
                                  init_method=f"file://{rdv}/rendezvous", device="cpu")
            g = torch.Generator().manual_seed(1)
            with torch.no_grad():
                for p in self.w.params:  # as if trained: a nonzero adapter, changed weights
                    local = p.to_local() if hasattr(p, "to_local") else p
                    local.add_(torch.randn(local.shape, generator=g) * 1e-3)
            self.chan = None

        def push(self, rollout, path: str) -> tuple[float, int]:
            from funrl.train.transport import PackedTensors, ShmChannel
            from funrl.train.workers.policy import send_buckets

            t0 = time.perf_counter()
            sent = 0
            if path == "old":  # funrl before issue 20: merged full weights, packed, one bucket at a time
                for bucket in self.w.export_weights(bucket_bytes):
                    packed = PackedTensors.pack(bucket)
                    ray.get(rollout.update_weights.remote(packed, 0))
                    sent += packed.nbytes
            else:
                self.chan = self.chan or ShmChannel("bench")
                sent = send_buckets(self.w.export_update(bucket_bytes), rollout, 0, self.chan)
            return time.perf_counter() - t0, sent

    from funrl.rollout.config import RolloutConfig, SGLangConfig

    cfg = RolloutConfig(engine=engine, sglang=SGLangConfig(device="cpu", max_total_tokens=2048, context_length=256))

    # a plain causal-LM folder is its own text LM (funrl.models.families.text_lm_folder)
    rollout = ray.remote(num_cpus=0)(BenchRollout).remote("rollout0", cfg, str(root / "llm"), device="cpu", torch_threads=1,
                                                          profile=False)
    return Sender.remote(), rollout


def measure(root: Path, lora: bool, repeats: int, bucket_bytes: int, engine: str) -> dict:
    import ray

    sender, rollout = make_actors(root, lora, bucket_bytes, engine)
    times: dict[str, list[float]] = {"new": [], "old": []}
    sent, digest = {}, {}
    try:
        for k in range(repeats + 1):  # "new" first: the engine's W0 must be the base it loaded
            for path in ("new", "old"):
                s, sent[path] = ray.get(sender.push.remote(rollout, path))
                digest[path] = ray.get(rollout.digest.remote())
                if k:
                    times[path].append(s)
    finally:
        for a in (sender, rollout):
            ray.kill(a)
    return {"old_s": statistics.mean(times["old"]), "new_s": statistics.mean(times["new"]),
            "old_b": sent["old"], "new_b": sent["new"],
            "same": None if digest["old"] is None else digest["old"] == digest["new"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="demo,0.6b")
    ap.add_argument("--modes", default="lora,full")
    ap.add_argument("--engines", default="hf")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--bucket-mb", type=float, default=512.0)
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import ray

    from funrl.train.cluster import ray_safe_env

    print(f"# {uptime()}")
    ray_safe_env()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    rows = []
    try:
        for size in args.sizes.split(","):
            root = llm_folder(args.work, size)
            for engine in args.engines.split(","):
                for mode in args.modes.split(","):
                    t0 = time.perf_counter()
                    r = measure(root, mode == "lora", args.repeats, int(args.bucket_mb * (1 << 20)), engine)
                    rows.append((size, engine, mode, r))
                    print(f"# {size} {engine} {mode}: measured in {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        ray.shutdown()
    print(f"\nweight sync, CPU, 1 thread a side; mean of {args.repeats} rounds after a warm-up "
          f"(old: merged full weights packed through the object store; new: what trains, through /dev/shm)\n")
    print("| LLM | engine | mode | old s | new s | old/new time | old MB | new MB | old/new bytes | same weights |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for size, engine, mode, r in rows:
        same = "-" if r["same"] is None else "yes" if r["same"] else "NO"
        print(f"| {size} | {engine} | {mode} | {r['old_s']:.3f} | {r['new_s']:.3f} | {r['old_s'] / r['new_s']:.1f}x | "
              f"{r['old_b'] / 1e6:.1f} | {r['new_b'] / 1e6:.2f} | {r['old_b'] / r['new_b']:.0f}x | "
              f"{same} |")
    print(f"# {uptime()}")


if __name__ == "__main__":
    main()
