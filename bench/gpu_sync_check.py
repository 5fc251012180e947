"""GPU check of the weight sync (issue 20), in one process: FSDP2 policy (1 NCCL rank) → HF engine.

On a random Qwen3 with the Qwen3-0.6B body (hidden 1024, 28 layers, 16/8 heads, head_dim 128,
intermediate 3072, tied embeddings, 400-token vocabulary), LoRA r16 and full fine-tuning, float32
engine on the GPU, seconds (median of 3 after a warm-up, bracketed by ``torch.cuda.synchronize``):

- ``old``: LoRA-merged full weights (``export_weights``) copied into the engine (no Ray: the
  in-process lower bound of the old path);
- ``new, direct``: what trains (``export_update``) handed to the engine as device tensors (what a
  CUDA-IPC transport would approach; not built);
- ``new, shm``: the same through :class:`funrl.train.transport.ShmChannel` (device → host shared
  memory → device), the transport funrl uses between actors on one host;
- then that the new and old paths leave bit-identical engine weights, and that they still do after
  the engine's sleep/wake (``W0`` moves with the model).

No Ray, SGLang or pip install needed (funrl is imported from this checkout when not installed). Device command (the ``run`` tool, timeout_s=420)::

    PYTHONUNBUFFERED=1 OMP_NUM_THREADS=8 timeout 400 python3 bench/gpu_sync_check.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path



import _standalone  # noqa: E402,F401  (funrl from this checkout where it is not installed)
import torch  # noqa: E402

SHAPE = dict(hidden_size=1024, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
             head_dim=128, intermediate_size=3072)


def build(folder: Path, tiny: bool) -> Path:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    shape = dict(SHAPE, num_hidden_layers=2, hidden_size=64, head_dim=16, intermediate_size=128) if tiny else SHAPE
    torch.manual_seed(0)
    Qwen3ForCausalLM(Qwen3Config(vocab_size=400, tie_word_embeddings=True, **shape)).to(torch.bfloat16).save_pretrained(folder)
    return folder


def timed(fn, dev) -> float:
    def once():
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    once()  # warm-up
    return statistics.median(once() for _ in range(3))


def check(mode: str, llm: Path, dev: torch.device, chan, bucket: int) -> list[dict]:
    from funrl.policy.config import AlgorithmConfig, LoraSettings, PolicyConfig
    from funrl.policy.fsdp_worker import PolicyWorker
    from funrl.rollout.hf_engine import HFEngine

    rdv = tempfile.mkdtemp()
    w = PolicyWorker(PolicyConfig(world_size=1, lora=LoraSettings(enabled=mode == "lora")), AlgorithmConfig(kl_coef=0.0),
                     str(llm), init_method=f"file://{rdv}/rdv", device=dev.type)
    with torch.no_grad():
        for p in w.params:  # as if trained
            local = p.to_local() if hasattr(p, "to_local") else p
            local.add_(torch.randn_like(local) * 1e-3)
    new_eng, old_eng = HFEngine(llm, device=str(dev)), HFEngine(llm, device=str(dev))
    sizes = {}

    def old():
        sizes["old"] = 0
        for b in w.export_weights(bucket):
            old_eng.update_weights(b)
            sizes["old"] += sum(t.numel() * t.element_size() for _, t in b)

    def push(named_kind):
        kind, named = named_kind
        (new_eng.update_adapter if kind == "adapter" else new_eng.update_weights)(named)

    def direct():
        sizes["new"] = 0
        for kind, b in w.export_update(bucket):
            push((kind, b))
            sizes["new"] += sum(t.numel() * t.element_size() for _, t in b)

    def shm():
        for k, (kind, b) in enumerate(w.export_update(bucket)):
            push((kind, chan.write(k % 2, b).tensors()))

    rows = [{"mode": mode, "path": name, "s": timed(fn, dev)} for name, fn in (("old", old), ("new, direct", direct), ("new, shm", shm))]
    rows[0]["MB"], rows[1]["MB"] = sizes["old"] / 1e6, sizes["new"] / 1e6
    same = lambda: all(torch.equal(a, b) for a, b in zip(new_eng.model.parameters(), old_eng.model.parameters()))  # noqa: E731
    rows[2]["same_weights"] = same()
    if dev.type == "cuda":
        new_eng.sleep()
        asleep = torch.cuda.memory_allocated()
        new_eng.wake()
        shm()
        rows[2]["same_after_sleep_wake"] = same()
        rows[2]["allocated_MB_engine_asleep"] = asleep / 1e6
    w.close()
    return rows


def main() -> None:
    tiny = "--tiny" in sys.argv
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    from funrl.train.transport import ShmChannel, shm_available

    print(f"device: {torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}, torch {torch.__version__}")
    folder = Path(tempfile.mkdtemp(prefix="funrl-sync-llm-"))
    chan = ShmChannel("gpucheck", folder="/dev/shm" if shm_available() else tempfile.mkdtemp())
    rows = []
    build(folder, tiny)
    for mode in ("lora", "full"):
        try:
            rows += check(mode, folder, dev, chan, 512 << 20)
        except Exception as e:  # noqa: BLE001 - report and go on with the next mode
            rows.append({"mode": mode, "error": repr(e)[:300]})
        print(json.dumps(rows[-3:] if "error" not in rows[-1] else rows[-1:]), flush=True)
    from funrl.train import transport

    pins = {"sender": len(chan.pinned), "receiver": sum(p for _, _, p in transport._MAPS.values()), "regions": len(chan.regions)}
    print(f"regions page-locked for CUDA: {pins}")
    rows.append({"mode": "pinned", **pins})
    chan.close()
    print("\n| mode | path | s | MB | same weights | after sleep/wake |\n|---|---|---|---|---|---|")
    for r in rows[:-1]:
        print(f"| {r['mode']} | {r.get('path', r.get('error'))} | {r.get('s', float('nan')):.4f} | {r.get('MB', '')} | "
              f"{r.get('same_weights', '')} | {r.get('same_after_sleep_wake', '')} |")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_sync_check.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
