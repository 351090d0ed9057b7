#!/usr/bin/env bash
# The one command for the GPU machine: unpacks what scripts/pack-device.sh put in .device/,
# runs the whole test suite and the benchmarks on every runtime that was carried, and leaves
# logs and figures in $OUT (the device tool brings them back).
#   device run, carry [".device"]:  scripts/gpu-run.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-$PWD/.cache/gpu-out}
mkdir -p "$out"
rt=/tmp/gpuffi-runtimes
mkdir -p "$rt"
runtimes=()
for name in bun deno node; do
  if [ -f ".device/$name.xz" ]; then
    xz -dc ".device/$name.xz" > "$rt/$name" && chmod +x "$rt/$name" && runtimes+=("$name")
  fi
done
[ -d node_modules ] || tar xJf .device/node_modules.tar.xz
export GPUFFI_BUN=$rt/bun GPUFFI_DENO=$rt/deno GPUFFI_NODE=$rt/node
list=$(IFS=,; echo "${runtimes[*]}")
# The orchestrating scripts are plain JS: any carried runtime can run them.
runner="$rt/${runtimes[0]}"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "command: scripts/gpu-run.sh (runtimes: $list)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,pci.bus_id --format=csv,noheader
  nvcc --version | tail -1
  for r in "${runtimes[@]}"; do echo "$r: $("$rt/$r" --version | head -1)"; done
} > "$out/device.txt" 2>&1
cat "$out/device.txt"

"$runner" scripts/test.mjs --runtime "$list" 2>&1 | tee "$out/test.log" | grep -E "✗|skipped:|passed, " 
"$runner" scripts/bench.mjs --runtimes "$list" --label gpu-machine --out "$out" 2>&1 | tail -8
ls -la "$out"
