#!/usr/bin/env bash
# Builds the CUDA check payload for the device machine (no .NET SDK, no network there): the CLI published
# self-contained for linux-x64 without TorchSharp's libtorch natives (the ONNX verbs never load them), ORT's CUDA
# natives, a test set of exported folders with CPU reference outputs, and the check scripts; tarred, xz-compressed
# and split into chunks of at most 58 MiB (one per device call: a call carries at most 64 MiB).
# usage: scripts/device/pack.sh [OUTDIR [--rearchive]]   (default REPO/.devcarry, git-ignored through .git/info/exclude; writes OUTDIR/part1..N,
#        pkg.sha256 (whole archive), chunks.sha256, chunks.txt (sizes), check.sh (verifies + unpacks there))
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$repo/.devcarry}
work=${PACK_WORK:-/tmp/devpack-build}
chunk_mib=58
fixtures=$repo/tests/fixtures/peft-reference

pkg=$work/pkg
# --rearchive: keep the published CLI, exports and references of the last run; refresh the scripts, archive again
if [ "${2:-}" = --rearchive ]; then
  ( cd "$pkg/cli" && rm -f libSkiaSharp.so libHarfBuzzSharp.so libclrgc.so libclrgcexp.so libcoreclrtraceptprovider.so )
else
rm -rf "$work"; mkdir -p "$work/pkg"

echo "== publish (self-contained linux-x64, Release)"
dotnet publish "$repo/src/Cli" -c Release -r linux-x64 --self-contained true -o "$work/publish" -v q -nologo >/dev/null
cp -a "$work/publish" "$pkg/cli"
# TorchSharp's natives (~500 MB) serve train/forward --base only; the ONNX verbs never load them. The TensorRT
# provider and the debugger helpers are not used either.
( cd "$pkg/cli" && rm -f libtorch*.so libc10.so libgomp-*.so* libLibTorchSharp.so libshm.so libnnapi_backend.so \
    libjitbackend_test.so libbackend_with_compiler.so libaoti_custom_ops.so libonnxruntime_providers_tensorrt.so \
    createdump libmscordaccore.so libmscordbi.so && rm -rf cpu cuda )
# SkiaSharp/HarfBuzz draw the plots of compare/train/load only; without them the payload fits 4 chunks
# (and the alternative GCs and the LTTng trace provider, which the CLI never asks for)
( cd "$pkg/cli" && rm -f libSkiaSharp.so libHarfBuzzSharp.so libclrgc.so libclrgcexp.so libcoreclrtraceptprovider.so )
# ORT's natives must be the Gpu.Linux package's (the CUDA provider is only there); copy them explicitly.
ort=$(ls -d ~/.nuget/packages/microsoft.ml.onnxruntime.gpu.linux/1.31.0/runtimes/linux-x64/native)
for f in libonnxruntime.so libonnxruntime_providers_shared.so libonnxruntime_providers_cuda.so; do cp "$ort/$f" "$pkg/cli/$f"; done
cli=$pkg/cli/peft-onnx
if find "$pkg/cli" -name 'libtorch*' | grep -q .; then echo "pack: libtorch natives left in the pack"; exit 1; fi

echo "== export the test set"
mkdir -p "$pkg/tests" "$pkg/ref" "$pkg/inputs" "$pkg/data"
cases=$work/cases.tsv; : > "$cases"
export_case() { # name base adapter(-) extra-args...
  local name=$1 base=$2 adapter=$3; shift 3
  local args=(export --base "$base" --out "$pkg/tests/$name" --force)
  [ "$adapter" != - ] && args+=(--adapter "$adapter")
  "$cli" "${args[@]}" "$@" > /dev/null 2> "$work/export-$name.log" || { cat "$work/export-$name.log"; exit 1; }
}
for arch in bloom gpt2 llama opt t5 mt5; do
  f=$fixtures/$arch
  cp "$f/inputs.safetensors" "$pkg/inputs/$arch.safetensors"
  p0=$(python3 -c "import json;print(','.join(map(str,json.load(open('$f/inputs.json'))['gen_input_ids'][0])))")
  p1=$(python3 -c "import json;print(','.join(map(str,json.load(open('$f/inputs.json'))['input_ids'][0][:3])))")
  export_case "$arch-base" "$f/base_model" -
  export_case "$arch-lora-unmerged" "$f/base_model" "$f/lora/adapter" --no-merge
  export_case "$arch-prefix" "$f/base_model" "$f/prefix_proj/adapter"
  names="base lora-unmerged prefix"
  # mT5 merges and soft prompts take T5's paths; leaving them out keeps the payload at 4 chunks
  if [ "$arch" != mt5 ]; then
    export_case "$arch-lora" "$f/base_model" "$f/lora/adapter"
    export_case "$arch-ia3" "$f/base_model" "$f/ia3/adapter"
    export_case "$arch-prompt" "$f/base_model" "$f/prompt_tuning_random/adapter"
    export_case "$arch-ptuning" "$f/base_model" "$f/p_tuning_mlp/adapter"
    names="$names lora ia3 prompt ptuning"
  fi
  for name in $names; do
    printf '%s\t%s\t%s\t%s\t-\n' "$arch-$name" "inputs/$arch.safetensors" "$p0" "$p1" >> "$cases"
  done
done
# A real checkpoint with a real tokenizer: text prompts and batched, padded generation (--data).
export_case bloomfin-base "$repo/models/tiny-bloom-fin" -
python3 - "$repo/data/financial_phrasebank/split_hf_seed42/validation.jsonl" "$pkg/data/fin16.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()][:16]
with open(sys.argv[2], "w") as f:
    for r in rows: f.write(json.dumps({"text": r["text"]}) + "\n")
PY
# "The company said" and "Net sales increased by" in its tokenizer
printf '%s\t%s\t%s\t%s\t%s\n' bloomfin-base "-" "368,464,552" "1370,542,966,440" "data/fin16.jsonl" >> "$cases"

echo "== CPU references"
cp "$repo/scripts/device/check.sh" "$repo/scripts/device/check.py" "$repo/scripts/device/make_gpt2_124m.py" "$pkg/"
cp "$cases" "$pkg/cases.tsv"
( cd "$pkg" && DEVICE=cpu python3 check.py --make-reference )
fi
cp "$repo/scripts/device/check.sh" "$repo/scripts/device/check.py" "$repo/scripts/device/make_gpt2_124m.py" "$pkg/"
rm -rf "$pkg/out"

echo "== archive"
# Two xz streams back to back, each a tar archive (unpack with tar -i / tarfile ignore_zeros): ORT's natives
# (~316 MB, minutes of xz -9) are compressed once and cached by their checksum; the rest is compressed every time.
natives=(pkg/cli/libonnxruntime.so pkg/cli/libonnxruntime_providers_shared.so pkg/cli/libonnxruntime_providers_cuda.so)
key=$(cd "$work" && sha256sum "${natives[@]}" | sha256sum | cut -c1-16)
cache=${PACK_CACHE:-/tmp/devpack-cache}/natives-$key.tar.xz
if [ ! -s "$cache" ]; then
  mkdir -p "$(dirname "$cache")"
  tar -C "$work" -cf - "${natives[@]}" | xz -9 -T2 > "$cache.tmp" && mv "$cache.tmp" "$cache"
fi
# sorted and in one xz block: the exports of one architecture share their base weights, which xz's 64 MiB
# window then stores once (halves the exports)
tar -C "$work" --sort=name -cf - --exclude="${natives[0]}" --exclude="${natives[1]}" --exclude="${natives[2]}" pkg | xz -9 -T1 > "$work/rest.tar.xz"
cat "$cache" "$work/rest.tar.xz" > "$work/pkg.tar.xz"
mkdir -p "$out"; rm -f "$out"/part[0-9]* "$out/pkg.sha256" "$out/chunks.txt" "$out/chunks.sha256"
( cd "$work" && sha256sum pkg.tar.xz > "$out/pkg.sha256" )
split -b ${chunk_mib}m -d -a 1 --numeric-suffixes=1 "$work/pkg.tar.xz" "$out/part"
( cd "$out" && ls -l part[0-9]* | awk '{print $NF, $5}' && echo "total $(stat -c %s "$work/pkg.tar.xz") bytes (xz), unpacked $(du -sb "$pkg" | cut -f1) bytes" ) | tee "$out/chunks.txt"
( cd "$out" && sha256sum part[0-9]* > chunks.sha256 && cat chunks.sha256 >> chunks.txt )
# the device needs check.sh before the archive is unpacked (it verifies and unpacks it): it travels beside the chunks
cp "$repo/scripts/device/check.sh" "$out/check.sh"
main=$(git -C "$repo" rev-parse --git-common-dir)
grep -qx '/.devcarry/' "$main/info/exclude" 2>/dev/null || echo '/.devcarry/' >> "$main/info/exclude"
echo "wrote $(ls "$out" | tr '\n' ' ') to $out"
