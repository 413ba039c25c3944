#!/usr/bin/env bash
# Guided decoding's GPU figures in one command, on a GPU machine with the CUDA
# backend built: a random Llama-3-8B-shaped checkpoint (cl100k tokenizer, the
# Llama 3 chat template), the server started as a user would (default flags but
# the model, device and dtype), then bench/guided.ts through HTTP.
#   MAKE_CHECKPOINT=path/to/make_random_checkpoint.py TEMPLATE=path/to/llama3.jinja bash bench/run-guided.sh
set -euo pipefail
cd "$(dirname "$0")/.."
model=${MODEL_DIR:-/tmp/l3}
port=${PORT:-8000}
[ -f "$model/config.json" ] || python3 "${MAKE_CHECKPOINT:-../shared/tools/make_random_checkpoint.py}" "$model" test/fixtures/tokenizers/cl100k "${TEMPLATE:-../shared/data/chat-templates/llama3.jinja}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
node dist/app/main.js --model "$model" --device cuda --dtype fp8 --port "$port" > "${SERVER_LOG:-/tmp/guided-server.log}" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
  node -e "fetch('http://127.0.0.1:$port/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))" && break
  kill -0 $server 2>/dev/null || { cat "${SERVER_LOG:-/tmp/guided-server.log}"; exit 1; }
  sleep 1
done
node dist/bench/guided.js --url "http://127.0.0.1:$port" "$@"
