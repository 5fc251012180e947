#!/usr/bin/env bash
# Build (or reuse) the separate Python environment the SGLang rollout engine runs in.
#
# Why a separate env: SGLang 0.5.23 pins torch 2.14.1 (a CUDA build that also runs on CPU) and
# transformers 5.19.0, while funrl's main env uses torch 2.13.0 CPU. The env is lean: sglang and
# sglang-kernel are installed with --no-deps (their full dependency list pulls GPU-only kernels,
# flash-attn, tilelang, ... several more GB), plus the pure-Python modules SGLang imports on the
# offline-Engine path (found by trial), plus funrl itself (editable, --no-deps) and funrl's own
# install_requires read from setup.cfg, so `import funrl` works in this env.
#
# Usage:  bash rollout/sglang_env.sh          # prints the env's python path on its last line
#         SGLANG_PY=$(bash rollout/sglang_env.sh | tail -1)
# Where:  ${FUNRL_SGLANG_ENV:-$HOME/.cache/funrl/venv-sglang-0.5.23}  (cached between runs)
# Idempotent: a stamp file holds this script's hash; a changed script rebuilds the env, a new
# checkout location or setup.cfg only re-links the editable funrl install (seconds).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="${FUNRL_SGLANG_ENV:-$HOME/.cache/funrl/venv-sglang-0.5.23}"
PYTHON="${PYTHON:-python3}"
STAMP="$ENV_DIR/.funrl-sglang-stamp"
LINK_STAMP="$ENV_DIR/.funrl-sglang-repo"
HASH="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"
log() { echo "[sglang-env] $*" >&2; }

# Pins SGLang 0.5.23 needs; passed to every pip call as constraints so nothing moves them.
PINS=(torch==2.14.1 torchvision==0.29.1 transformers==5.19.0 tokenizers==0.23.2
      sglang==0.5.23 sglang-kernel==0.4.10 xgrammar==0.2.7 compressed-tensors==0.18.0
      soundfile==0.13.1 sentencepiece==0.2.1 openai==2.8.0 apache-tvm-ffi==0.1.11
      blobfile==3.0.0 'python-dateutil<3')
# Pure-Python (or small binary) modules imported on the offline Engine path, found by trial:
# each was the ModuleNotFoundError of a CPU engine start without it.
SGLANG_NEEDS=(aiohttp fastapi uvicorn uvloop orjson msgspec pybase64 pydantic pyzmq psutil
      requests tqdm numpy packaging setproctitle prometheus-client python-multipart
      partial_json_parser interegular einops xxhash zstandard sentencepiece tiktoken
      transformers tokenizers safetensors huggingface_hub pillow scipy distro blobfile
      llguidance xgrammar compressed-tensors nvidia-ml-py watchfiles python-dateutil msgpack
      gguf openai anthropic IPython apache-tvm-ffi dill pytest)

install_funrl() {
  # Editable, no deps: the code is the checkout's; funrl's deps come from setup.cfg minus torch.
  local py="$ENV_DIR/bin/python"
  mapfile -t FUNRL_DEPS < <("$py" - "$REPO/setup.cfg" <<'EOF'
import configparser, re, sys
cfg = configparser.ConfigParser(); cfg.read(sys.argv[1])
for line in cfg["options"]["install_requires"].split("\n"):
    name = re.split(r"[<>=!~\[; ]", line.strip())[0]
    if name and name.lower() != "torch":
        print(line.strip())
EOF
  )
  log "installing funrl's own deps: ${FUNRL_DEPS[*]}"
  "$py" -m pip install -q -c "$ENV_DIR/constraints.txt" "${FUNRL_DEPS[@]}"
  log "linking funrl (editable, --no-deps) to $REPO"
  "$py" -m pip install -q --no-deps --no-build-isolation -e "$REPO"
  link_key > "$LINK_STAMP"
}
# The editable link and funrl's deps depend on where the checkout is and on its setup.cfg.
link_key() { echo "$REPO $(sha256sum "$REPO/setup.cfg" | cut -c1-16)"; }

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$HASH" ]]; then
  log "up to date: $ENV_DIR (script hash $HASH)"
  if [[ "$(cat "$LINK_STAMP" 2>/dev/null)" != "$(link_key)" ]]; then install_funrl; fi
  echo "$ENV_DIR/bin/python"
  exit 0
fi

log "building $ENV_DIR (script hash $HASH); about 7 GB and 6 minutes on a fresh machine"
rm -rf "$ENV_DIR"
mkdir -p "$(dirname "$ENV_DIR")"
"$PYTHON" -m venv "$ENV_DIR"
PY="$ENV_DIR/bin/python"
printf '%s\n' "${PINS[@]}" > "$ENV_DIR/constraints.txt"
"$PY" -m pip install -q --upgrade pip setuptools wheel
log "torch 2.14.1 + torchvision 0.29.1"
"$PY" -m pip install -q -c "$ENV_DIR/constraints.txt" torch==2.14.1 torchvision==0.29.1
log "sglang 0.5.23 + sglang-kernel 0.4.10 (--no-deps)"
"$PY" -m pip install -q --no-deps sglang==0.5.23 sglang-kernel==0.4.10
log "SGLang's pure-Python needs: ${SGLANG_NEEDS[*]}"
"$PY" -m pip install -q -c "$ENV_DIR/constraints.txt" "${SGLANG_NEEDS[@]}"
install_funrl
log "checking imports"
"$PY" -c "import torch, sglang, funrl; print('[sglang-env] torch', torch.__version__, 'sglang', sglang.__version__)" >&2
echo "$HASH" > "$STAMP"
log "done: $(du -sh "$ENV_DIR" | cut -f1) in $ENV_DIR"
echo "$PY"
