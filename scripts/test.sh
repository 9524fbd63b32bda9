#!/usr/bin/env bash
# The README's test command: restore, build and run every test (CPU only; no ../shared needed).
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet test Peft.Onnx.sln -c Release --nologo "$@"
