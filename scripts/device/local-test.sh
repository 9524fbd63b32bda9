#!/usr/bin/env bash
# Rehearses the device flow here (no GPU): join the chunks, verify, unpack, run the check on the CPU (must pass)
# and on CUDA (must stop early with the "cannot start" line and exit non-zero).
# usage: scripts/device/local-test.sh [CARRYDIR]   (default REPO/.devcarry)
set -u
carry=${1:-$(cd "$(dirname "$0")/../.." && pwd)/.devcarry}
scratch=${SCRATCH_ROOT:-/tmp/devcheck-local}
rm -rf "$scratch"; mkdir -p "$scratch/stage"
cp "$carry"/part[0-9]* "$scratch/stage/"
( cd "$scratch/stage" && sha256sum -c "$carry/chunks.sha256" ) || { echo "local-test: a chunk differs from chunks.sha256"; exit 1; }
cat "$scratch"/stage/part[0-9]* > "$scratch/pkg.tar.xz"
PKGROOT=$scratch/root OUT=$scratch/out-cpu DEVICE=cpu BUDGET_S=${BUDGET_S:-150} bash "$carry/check.sh" "$scratch/pkg.tar.xz" "$carry/pkg.sha256"
cpu=$?
OUT=$scratch/out-cuda DEVICE=cuda bash "$scratch/root/pkg/check.sh"
cuda=$?
echo "local-test: cpu exit $cpu (want 0), cuda exit $cuda (want non-zero here without a GPU)"
python3 -c "import json,sys; print('cuda verdict:', json.load(open(sys.argv[1]))['verdict'])" "$scratch/out-cuda/check.json"
[ $cpu -eq 0 ] && [ $cuda -ne 0 ]
