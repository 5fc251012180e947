"""GPU check of the SGLang rollout engine: sleep/wake (release/resume_memory_occupation), weight-sync
time, and memory per phase, printed as one table (``bash bench/gpu_check.sh`` runs it among the
other GPU checks, as its ``sglang`` row).

    $SGLANG_PY bench/gpu_check.py [LLM_DIR] [BUCKET_MB]

LLM_DIR: a Hugging Face causal-LM folder (e.g. a funrl model's llm/); empty: a random Qwen3 of
Qwen3-0.6B's shape built on the fly (no download). Columns per phase: seconds; this process's peak
allocated CUDA memory in the phase (torch.cuda.max_memory_allocated, reset before each phase: it
sees the weights the trainer side holds, not SGLang's scheduler process); and device memory in use
after the phase (torch.cuda.mem_get_info, all processes: shows what release/resume free). With
``$OUT`` set the rows also go to ``$OUT/gpu_check.json``. GPU install: the SGLang env must also hold
torch_memory_saver and the kernels SGLang's GPU path imports (flashinfer-python etc.: see the README).
"""

import json
import os
import sys
import tempfile
import time

import _standalone  # noqa: F401  (funrl from this checkout where the SGLang env lacks it)
import torch

from funrl.rollout.config import SGLangConfig
from funrl.rollout.protocol import SamplingParams
from funrl.rollout.sglang_engine import SGLangEngine


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else ""
    bucket_mb = float(sys.argv[2]) if len(sys.argv) > 2 else 512.0
    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device visible; this check needs an NVIDIA GPU")
    if not model_dir:
        from funrl.rollout.tiny_llm import make_tiny_qwen3
        model_dir = make_tiny_qwen3(tempfile.mkdtemp(prefix="funrl-gpu-check-"), layers=28, hidden=1024,
                                    init_range=0.02)
    from transformers import AutoModelForCausalLM
    policy = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).cuda()  # the trainer side
    hidden = policy.config.hidden_size
    prompts = [0.02 * torch.randn(128, hidden) for _ in range(16)]
    sp = SamplingParams(temperature=1.0, max_new_tokens=256)
    rows, eng = [], None

    def phase(name, fn):
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter(); extra = fn() or ""
        torch.cuda.synchronize()
        free, total = torch.cuda.mem_get_info()
        rows.append((name, time.perf_counter() - t0, torch.cuda.max_memory_allocated() / 2**30,
                     (total - free) / 2**30, extra))

    def start():
        nonlocal eng
        eng = SGLangEngine(model_dir, SGLangConfig(device="cuda", mem_fraction=0.4), bucket_bytes=int(bucket_mb * 2**20))

    def gen():
        b = eng.generate(prompts, 4, sp)
        return f"{b.num_tokens} tokens, {b.num_tokens / b.meta['generate_s']:.0f} tok/s"

    def sync():
        eng.update_weights(policy.state_dict().items())  # CUDA tensors: SGLang maps them by IPC handle
        n = sum(t.numel() * t.element_size() for t in policy.state_dict().values())
        return f"{n / 2**20:.0f} MiB in {bucket_mb:g} MiB buckets"

    try:
        phase("start", start)
        phase("generate", gen)
        phase("sleep (release)", eng.sleep)
        phase("wake (resume)", eng.wake)
        phase("weight sync", sync)
        phase("generate after sync", gen)
        eng.cfg.weight_sync = "disk"
        phase("weight sync (disk)", sync)
        eng.cfg.weight_sync = "tensor"
        phase("sleep again", eng.sleep)
        phase("wake again", eng.wake)
        phase("generate after wake", gen)
    finally:
        if eng is not None:
            eng.shutdown()
    print(f"GPU: {torch.cuda.get_device_name()}  model: {model_dir}")
    print(f"{'phase':<22}{'seconds':>9}{'peak alloc GiB':>16}{'device used GiB':>17}  note")
    for name, s, peak, used, note in rows:
        print(f"{name:<22}{s:>9.2f}{peak:>16.2f}{used:>17.2f}  {note}")
    if os.environ.get("OUT"):
        keys = ("phase", "seconds", "peak_alloc_gib", "device_used_gib", "note")
        with open(os.path.join(os.environ["OUT"], "gpu_check.json"), "w") as f:
            json.dump([dict(zip(keys, r)) for r in rows], f, indent=1)


if __name__ == "__main__":
    main()
