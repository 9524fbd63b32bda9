#!/usr/bin/env bash
# Serve throughput in one run: starts `peft-onnx serve --batching per-request` and `--batching continuous` over the
# same export on free ports, drives each with `peft-onnx load` over HTTP for the same time and number of clients
# (per-request first), and prints both tokens/s, their ratio, time to first token p50/p95 and the servers' RSS growth.
# Exits non-zero when any answer differs from its sequential one, any request fails, a cancel is slow or RSS grows.
#
#   scripts/serve-throughput.sh [MODEL_DIR] [DURATION_S] [CLIENTS] [extra load options, e.g. --json]
#
# MODEL_DIR defaults to the demo model (models/tiny-bloom-fin exported to $OUT/tiny-bloom-fin-onnx on first use).
# PEFT_ONNX names the CLI to run (e.g. "dotnet path/peft-onnx.dll"); unset, the CLI is published to $OUT/bin first.
# DEVICE (cpu) and MAX_BATCH (32) go to both servers.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}
MODEL=${1:-}
DURATION=${2:-120}
CLIENTS=${3:-64}
DEVICE=${DEVICE:-cpu}
MAX_BATCH=${MAX_BATCH:-32}
if [ -z "${PEFT_ONNX:-}" ]; then
  echo "== build peft-onnx" >&2
  dotnet publish src/Cli -c Release -o "$OUT/bin" --nologo -v quiet >&2
  PEFT_ONNX="$OUT/bin/peft-onnx"
fi
read -r -a CLI <<< "$PEFT_ONNX"
if [ -z "$MODEL" ]; then
  MODEL="$OUT/tiny-bloom-fin-onnx"
  if [ ! -d "$MODEL" ]; then
    echo "== export the demo model to $MODEL" >&2
    "${CLI[@]}" export --base models/tiny-bloom-fin --out "$MODEL" --force >&2
  fi
fi

LOGS=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$LOGS"
}
trap cleanup EXIT

# Starts a server in MODE; its address (read from the line it prints on stderr once listening) lands in URL.
serve() {
  local mode=$1 log="$LOGS/$1.log"
  "${CLI[@]}" serve --onnx "$MODEL" --port 0 --batching "$mode" --max-batch-size "$MAX_BATCH" --device "$DEVICE" 2>"$log" &
  local pid=$!
  PIDS+=("$pid")
  URL=""
  for _ in $(seq 1 1200); do
    URL=$(grep -o 'listening on http://[^ ]*' "$log" 2>/dev/null | head -n 1 | cut -d' ' -f3 || true)
    [ -n "$URL" ] && { echo "serve ($mode): $URL" >&2; return 0; }
    if ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; echo "serve ($mode) exited before listening" >&2; return 1; fi
    sleep 0.1
  done
  echo "serve ($mode) did not listen within 120 s" >&2
  return 1
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores" >&2
serve per-request
PER_REQUEST=$URL
serve continuous
CONTINUOUS=$URL
rc=0
"${CLI[@]}" load --onnx "$MODEL" --compare-url "$PER_REQUEST" --url "$CONTINUOUS" --concurrency "$CLIENTS" --duration "$DURATION" \
  --device "$DEVICE" "${@:4}" || rc=$?
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exit $rc
