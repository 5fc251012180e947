#!/usr/bin/env bash
# GPU check of the SGLang rollout engine: sleep/wake (release/resume_memory_occupation), weight-sync
# time, and memory per phase, printed as one table. Needs a machine with an NVIDIA GPU; it cannot
# run on the CPU-only development machines (there sleep/wake are no-ops by design).
#
#   bash bench/gpu_check.sh [MODEL_DIR] [BUCKET_MB]
#
# MODEL_DIR: a Hugging Face causal-LM folder (e.g. a funrl model's llm/); default: a random Qwen3
# of Qwen3-0.6B's shape built on the fly (no download). Columns per phase: seconds; this process's
# peak allocated CUDA memory in the phase (torch.cuda.max_memory_allocated, reset before each phase:
# it sees the weights the trainer side holds, not SGLang's scheduler process); and device memory
# in use after the phase (torch.cuda.mem_get_info, all processes: shows what release/resume free).
# GPU install: the SGLang env must also hold torch_memory_saver (pip install torch_memory_saver)
# and the kernels SGLang's GPU path imports (flashinfer-python etc.: see the README).
set -euo pipefail
cd "$(dirname "$0")/.."
SGLANG_PY="$(bash rollout/sglang_env.sh | tail -1)"
exec "$SGLANG_PY" bench/gpu_check.py "${1:-}" "${2:-512}"
