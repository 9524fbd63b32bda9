#!/usr/bin/env bash
# The README's main job, as the PEFT causal-LM guide does it but in one tool: train a LoRA adapter on the
# bundled pretrained BLOOM-style model with the financial_phrasebank data, print its accuracy, compile
# base + adapter into ONNX, generate labels for a few sentences with the ONNX Runtime, and compare the
# adapted (TorchSharp) and compiled (ONNX) models side by side.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out}
EPOCHS=${EPOCHS:-2}
mkdir -p "$OUT"
echo "== build peft-onnx"
dotnet publish src/Cli -c Release -o "$OUT/bin" --nologo -v quiet
CLI="$OUT/bin/peft-onnx"
DATA=data/financial_phrasebank/split_hf_seed42

echo "== inspect"
"$CLI" inspect --base models/tiny-bloom-fin

echo "== train LoRA (r 8, alpha 16, lr 5e-3, batch 8, $EPOCHS epoch(s)) on $DATA"
"$CLI" train --device cpu --base models/tiny-bloom-fin --data "$DATA/train.jsonl" --validation "$DATA/validation.jsonl" \
  --text-column text --label-column label --template "{text} Label : " --seed 42 \
  --method lora --r 8 --lora-alpha 16 --lr 5e-3 --epochs "$EPOCHS" --batch-size 8 --out "$OUT/fin-lora"
echo "metrics: $OUT/fin-lora/metrics.jsonl, curves: $OUT/fin-lora/loss.png"

echo "== export base + adapter (LoRA merged) to ONNX"
"$CLI" export --base models/tiny-bloom-fin --adapter "$OUT/fin-lora" --out "$OUT/fin-lora-onnx" --force

echo "== generate labels with ONNX Runtime"
for s in "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period in 2007 ." \
         "The company 's net sales fell by 5 % from the previous year ." \
         "The annual general meeting will be held in Helsinki on 18 March ."; do
  "$CLI" generate --device cpu --onnx "$OUT/fin-lora-onnx" --prompt "$s Label : " --max-new-tokens 4 --greedy 2>/dev/null
done

echo "== adapted (TorchSharp) vs compiled (ONNX) on 16 validation sentences"
"$CLI" compare --device cpu --base models/tiny-bloom-fin --adapter "$OUT/fin-lora" --onnx "$OUT/fin-lora-onnx" \
  --data "$DATA/validation.jsonl" --limit 16 --text-column text --label-column label --template "{text} Label : " \
  --plot "$OUT/fin-lora-diff.png"
