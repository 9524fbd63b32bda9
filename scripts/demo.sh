#!/usr/bin/env bash
# The README's main job: build peft-onnx, then run it on the bundled models.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}
dotnet publish src/Cli -c Release -o "$OUT/bin" --nologo -v quiet
CLI="$OUT/bin/peft-onnx"
mkdir -p "$OUT"
for m in tiny-bloom-fin tiny-t5-fin; do
  echo "== $m"
  "$CLI" inspect --base "models/$m"
done
"$CLI" forward --device cpu --base models/tiny-bloom-fin --inputs models/examples/causal-inputs.safetensors --out "$OUT/bloom-logits.safetensors"
"$CLI" forward --device cpu --base models/tiny-t5-fin --inputs models/examples/seq2seq-inputs.safetensors --out "$OUT/t5-logits.safetensors"
