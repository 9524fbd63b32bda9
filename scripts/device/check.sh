#!/usr/bin/env bash
# CUDA check on the device machine. usage:
#   check.sh ARCHIVE.tar.xz SHA256FILE   verify, unpack to $PKGROOT (default /root/pkg), then run the check from there
#   check.sh                             (inside an unpacked pkg folder) run the check
# DEVICE=cuda (default) or cpu; OUT: where check.json and check.log go (default pkg/out).
# Exits 0 only when every generation on $DEVICE matches the CPU reference token for token.
set -u
if [ $# -ge 2 ]; then
  archive=$1; sums=$2; root=${PKGROOT:-/root/pkg}
  want=$(awk '{print $1}' "$sums"); got=$(sha256sum "$archive" | awk '{print $1}')
  if [ "$want" != "$got" ]; then echo "check: sha256 of $archive is $got, expected $want (a chunk is missing or damaged)"; exit 3; fi
  echo "check: sha256 ok ($got)"
  rm -rf "$root"; mkdir -p "$root"
  # two xz streams, each a tar archive: tar -i reads on past the first archive's end
  if command -v xz >/dev/null 2>&1; then xz -dc "$archive" | tar -C "$root" -xif -
  else python3 -c "import sys,tarfile; tarfile.open(sys.argv[1],'r:xz',ignore_zeros=True).extractall(sys.argv[2],filter='tar')" "$archive" "$root"; fi
  rc=$?; [ $rc -ne 0 ] && { echo "check: unpacking failed (rc $rc)"; exit 3; }
  exec "$root/pkg/check.sh"
fi
pkg=$(cd "$(dirname "$0")" && pwd)
export OUT=${OUT:-$pkg/out}; mkdir -p "$OUT"
export DEVICE=${DEVICE:-cuda}
exec > >(tee -a "$OUT/check.log") 2>&1
echo "== check of $pkg on $DEVICE ($(date -u +%FT%TZ))"
if [ "$DEVICE" != cpu ]; then
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv || echo "nvidia-smi: not found"
  # CUDA 13 + cuDNN 9 are the pip nvidia-* packages of the device's Python; the driver may sit outside ldconfig
  libdirs=$(find /opt /usr/local /usr/lib /usr/lib64 /root/.local \( -name 'libcudnn.so.9*' -o -name 'libcublas.so.13*' -o -name 'libcublasLt.so.13*' \
            -o -name 'libcudart.so.13*' -o -name 'libcurand.so.10*' -o -name 'libcuda.so.1' \) 2>/dev/null \
            | grep -v -e /compat/ -e /stubs/ | xargs -r -n1 dirname | awk '{print (index($0,"site-packages/nvidia")?0:1) "\t" $0}' | sort -u | sort -s -k1,1 | cut -f2 | awk '!seen[$0]++')
  echo "CUDA libraries found:"
  for d in $libdirs; do echo "  $d: $(cd "$d" && ls libcudnn.so.9* libcublas.so.13* libcublasLt.so.13* libcudart.so.13* libcurand.so.10* libcuda.so.1 2>/dev/null | tr '\n' ' ')"; done
  ldconfig -p 2>/dev/null | grep -q 'libcuda.so.1 ' && echo "  libcuda.so.1 in ldconfig: $(ldconfig -p | grep 'libcuda.so.1 ' | head -1 | awk '{print $NF}')"
  LD_LIBRARY_PATH=$(echo $libdirs | tr ' ' ':')${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
export LD_LIBRARY_PATH="$pkg/cli${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_gcServer=0 CHECK_SH=1
py=$(command -v python3 || echo /opt/torch/.venv/bin/python3)
"$py" "$pkg/check.py"
rc=$?
echo "== check exit $rc ($(date -u +%FT%TZ)); summary in $OUT/check.json"
exit $rc
