#!/usr/bin/env bash
# The main job on the embedded default. It grows as the pieces land; it never pretends.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
echo "== funrl demo: resolved config of examples/rewards.yaml"
$BIN/funrl config show examples/rewards.yaml
echo "== Training is not implemented yet: this demo only validated the example configs."
$BIN/funrl config validate
