#!/usr/bin/env bash
# The one script to run when an NVIDIA GPU is at hand: every GPU check of funrl, one table.
#
#   bash bench/gpu_check.sh [--only demo,bf16,sync,sglang,real] [--dry-run] [--time-limit S] [...]
#
# Runs bench/gpu_check_all.py (its --help lists the checks and columns): the demo GRPO run
# (s/step by phase, wake/sleep costs, device grants), the same in bf16, the weight sync of the
# Qwen3-0.6B body, SGLang release/resume (under the SGLang env's python: $SGLANG_PY, else
# rollout/sglang_env.sh's), and Fun-ASR-Nano at its published size (random weights) for 3 steps.
# Each check runs in its own process with a timeout; a failing one shows FAIL and its first error
# line, and the table still prints. Exit status: 0 all passed, 1 some failed, 2 no GPU.
#
# Python: $PYTHON, else the first of .venv/bin/python, python3, python whose torch sees CUDA
# (else the first that has torch, which then says that it needs a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  for c in .venv/bin/python python3 python; do
    command -v "$c" >/dev/null 2>&1 || continue
    ok="$("$c" -c 'import torch; print(torch.cuda.is_available())' 2>/dev/null || true)"
    if [ "$ok" = "True" ]; then PY="$c"; break; fi
    if [ -n "$ok" ] && [ -z "${first:-}" ]; then first="$c"; fi
  done
  PY="${PY:-${first:-}}"
fi
if [ -z "$PY" ]; then
  echo "gpu_check: no python with torch found (set PYTHON=/path/to/python)" >&2
  exit 2
fi
exec "$PY" bench/gpu_check_all.py "$@"
