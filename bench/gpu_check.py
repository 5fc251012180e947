"""The Python half of bench/gpu_check.sh (run that script: it picks the SGLang env's python)."""

import sys
import tempfile
import time

import torch

from funrl.rollout.config import SGLangConfig
from funrl.rollout.protocol import SamplingParams
from funrl.rollout.sglang_engine import SGLangEngine


def main():
    model_dir, bucket_mb = sys.argv[1], float(sys.argv[2])
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


if __name__ == "__main__":
    main()
