#!/usr/bin/env bash
# The main job on the embedded default (`make demo`), on 2 CPU cores:
#   1. synthesise the warm start's corpus (eSpeak NG; English, Mandarin, code-switched, noise),
#   2. evaluate the shipped SFT warm start (a tiny transformers Fun-ASR-Nano,
#      examples/checkpoints/tiny_fun_asr_nano: the same code path as a Hub checkpoint)
#      on the held-out test split,
#   3. GRPO on Ray from that warm start (examples/tiny_asr_grpo.yaml),
#   4. evaluate the GRPO policy on the same test split and print both side by side.
# Environment: DEMO_STEPS overrides train.steps (e.g. DEMO_STEPS=3 for a smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT=${DEMO_OUT:-runs/demo}
DATA=$OUT/data
WARM=examples/checkpoints/tiny_fun_asr_nano
STEPS=${DEMO_STEPS:-}
export TOKENIZERS_PARALLELISM=false

if [ ! -f "$DATA/test.jsonl" ]; then
  echo "== 1/4 synthesising the corpus into $DATA (the warm start's: --n 6000 --seed 0)"
  $BIN/funrl data synth --out "$DATA" --n 6000 --seed 0 --overwrite
else
  echo "== 1/4 corpus already in $DATA"
fi

echo "== 2/4 evaluating the SFT warm start on $DATA/test.jsonl"
$BIN/funrl eval --model "$WARM" --manifest "$DATA/test.jsonl" --output "$OUT/eval_warmstart.json" --bootstrap 1000

echo "== 3/4 GRPO from the warm start (funrl train examples/tiny_asr_grpo.yaml)"
$BIN/funrl train examples/tiny_asr_grpo.yaml run.output_dir="$OUT" run.name=grpo \
  data.train_manifest="$DATA/dev.jsonl" model.path="$WARM" ${STEPS:+train.steps=$STEPS}

echo "== 4/4 evaluating the GRPO policy on the same test split"
$BIN/funrl eval --model "$OUT/grpo/model" --manifest "$DATA/test.jsonl" --output "$OUT/eval_grpo.json" --bootstrap 1000
$BIN/python examples/compare_evals.py "$OUT/eval_warmstart.json" "$OUT/eval_grpo.json"
echo
echo "run directory: $OUT/grpo   (funrl profile $OUT/grpo  prints the time breakdown again)"
