#!/usr/bin/env bash
# Build (or reuse) the separate Python environment bench/vs_trl.py runs TRL's GRPOTrainer in.
#
# Why a separate env: TRL brings accelerate, datasets, pandas and pyarrow, none of which funrl
# needs; keeping them out of .venv keeps funrl's own environment lean and its tests honest.
# torch is pinned to the CPU wheel the main env uses (2.13.0, on disk under pip's find-links); a
# bare `torch` would pull a multi-GB CUDA build. transformers and peft are pinned to the main
# env's versions, so both sides of the benchmark run the same model code.
#
# Usage:  bash bench/trl_env.sh             # prints the env's python path on its last line
#         TRL_PY=$(bash bench/trl_env.sh | tail -1)
# Where:  ${FUNRL_TRL_ENV:-$HOME/.cache/funrl/venv-trl}  (cached between runs)
# Idempotent: a stamp file holds this script's hash; a changed script rebuilds the env.
set -euo pipefail

ENV_DIR="${FUNRL_TRL_ENV:-$HOME/.cache/funrl/venv-trl}"
PYTHON="${PYTHON:-python3}"
STAMP="$ENV_DIR/.funrl-trl-stamp"
HASH="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
log() { echo "[trl-env] $*" >&2; }

PINS=(torch==2.13.0 trl==1.16.0 transformers==5.24.0 peft==0.21.2 accelerate==1.15.0)

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$HASH" ]]; then
  log "up to date: $ENV_DIR (script hash $HASH)"
  echo "$ENV_DIR/bin/python"
  exit 0
fi

log "building $ENV_DIR (script hash $HASH); about 1.5 GB and 2 minutes on a fresh machine"
rm -rf "$ENV_DIR"
mkdir -p "$(dirname "$ENV_DIR")"
"$PYTHON" -m venv "$ENV_DIR"
PY="$ENV_DIR/bin/python"
printf '%s\n' "${PINS[@]}" > "$ENV_DIR/constraints.txt"
log "torch 2.13.0 (CPU wheel) first, so nothing else can pick another build"
"$PY" -m pip install -q -c "$ENV_DIR/constraints.txt" torch==2.13.0
log "${PINS[*]:1}"
"$PY" -m pip install -q -c "$ENV_DIR/constraints.txt" "${PINS[@]:1}"
"$PY" - <<'EOF'
import torch, transformers, trl, peft
assert torch.__version__.startswith("2.13.0"), f"expected torch 2.13.0, got {torch.__version__}"
print(f"[trl-env] torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, peft {peft.__version__}")
EOF
echo "$HASH" > "$STAMP"
log "ready: $ENV_DIR"
echo "$PY"
