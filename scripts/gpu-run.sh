#!/usr/bin/env bash
# The one command for the GPU machine: unpacks what scripts/pack-device.sh put in .device/,
# runs the whole test suite and the benchmarks on every runtime that was carried, and leaves
# logs and figures in $OUT (the device tool brings them back).
#   device run, carry [".device"]:  scripts/gpu-run.sh [stage ...]
# Stages (default: all but llama-bench, train, train-cpu, train-multi, abi and notebook): tests ffi-bench cuda-bench pool-bench gemm-bench upload-bench kernels-bench llama llama-bench train train-cpu train-multi abi notebook
# `abi` runs the ABI check (scripts/check-abi.ts) against this machine's CUDA, cuBLAS, NCCL, NVML
# and NVRTC headers; carry .cache/llama-headers-* for llama.cpp's (the machine has no network).
# `train-cpu` compares CPU training with PyTorch+PEFT on the machine's cores, on node-llama-cpp's
# prebuilt CPU libraries (packed with --cpu-libs): no llama.cpp build.
# `train-multi` (a machine with several GPUs) trains data-parallel, one process per GPU over NCCL,
# on the TinyLlama-shaped model: throughput for N = 1, 2, 4, 8 and every GPU of the machine at
# 4 sequences per GPU, and 20 steps of one global batch (8) on N GPUs against 1 GPU (1e-4
# relative); the data-parallel GPU tests run first. It needs the CUDA llama.cpp build (--llama).
# (GPUFFI_TEST_FILTER="pool cublas" limits the tests stage to those files)
# `llama` builds llama.cpp for CUDA from .device/llama-src.tar.xz (packed with --llama), runs the
# llama tests against that build (GPUFFI_LLAMA_TESTS="llama/generate" narrows them; default
# "ggml/ llama/ lora/") and the llama.cpp benchmark (pp512, tg128, generate()) against native
# llama-bench on every packed runtime (and node-llama-cpp on the same build, from Bun or Node, when
# .device/node-llama-cpp.tar.xz was packed). `llama-bench` is the same without the tests.
# GPUFFI_LLAMA_BENCH_ARGS="--turns 2 --reps 10" shortens the benchmark (default 6 turns of 10, in one fixed order, each side after a 1 s pause);
# GPUFFI_LLAMA_RUNTIMES="node" runs the llama tests and benchmark on those packed runtimes only.
# ffi-bench, cuda-bench, pool-bench, upload-bench and the llama benchmark write a result file per
# runtime (…-<label>-<runtime>.*), each with its C or native anchor measured in the same run.
# The device tool brings back at most 8 files: when there are more, they travel as one archive,
# gpu-run-<label>.tgz, beside device-<label>.txt.
# `notebook` runs docs/notebooks/gpu.ipynb on Deno (packed: deno --llama) against that CUDA build
# and leaves it with its outputs as notebook-gpu-<label>.ipynb: copy it over the committed one.
# Every file it leaves in $OUT is named after the machine it ran on: a label such as h200, from
# the first GPU's name (nvidia-smi), or "gpu" when there is none to ask.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-$PWD/.cache/gpu-out}
mkdir -p "$out"
stages=${*:-tests ffi-bench cuda-bench pool-bench gemm-bench upload-bench llama}
want() { [[ " $stages " == *" $1 "* ]]; }

# "NVIDIA H200" → h200, "NVIDIA H100 80GB HBM3" → h100, "NVIDIA A100-SXM4-80GB" → a100,
# "NVIDIA GeForce RTX 4090" → rtx4090.
gpu_label() {
  nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr '[:upper:]' '[:lower:]' |
    sed -E 's/(nvidia|geforce|tesla|quadro)//g; s/(rtx|gtx) +/\1/g' | grep -oE '[a-z]*[0-9]+[a-z]*' | head -1
}
label=$(gpu_label)
label=${label:-gpu}
export GPUFFI_BENCH_LABEL=$label

rt=/tmp/gpuffi-runtimes
mkdir -p "$rt"
runtimes=()
for name in bun deno node; do
  if [ -f ".device/$name.xz" ]; then
    xz -dc ".device/$name.xz" > "$rt/$name" && chmod +x "$rt/$name" && runtimes+=("$name")
  fi
done
# Every call: a warm machine may keep node_modules from a call that packed other runtimes.
tar xJf .device/node_modules.tar.xz
export GPUFFI_BUN=$rt/bun GPUFFI_DENO=$rt/deno GPUFFI_NODE=$rt/node
list=$(IFS=,; echo "${runtimes[*]}")
# Runs a script on one runtime (TypeScript on Node goes through tsx).
run_ts() {
  local name=$1; shift
  case "$name" in
    bun) "$rt/bun" "$@" ;;
    deno) "$rt/deno" run --allow-all "$@" ;;
    node) "$rt/node" --import tsx "$@" ;;
  esac
}
# The orchestrating scripts are plain JS: any carried runtime can run them.
runner() { run_ts "${runtimes[0]}" "$@"; }

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "command: scripts/gpu-run.sh $stages (runtimes: $list)"
  nvidia-smi --query-gpu=name,memory.total,driver_version,pci.bus_id --format=csv,noheader
  nvcc --version | tail -1
  for r in "${runtimes[@]}"; do echo "$r: $("$rt/$r" --version | head -1)"; done
  echo "label: $label"
} > "$out/device-$label.txt" 2>&1
cat "$out/device-$label.txt"

# The llama.cpp build takes minutes of CPU: start it first and let the GPU tests run meanwhile;
# the benchmark model (TinyLlama's shape, random F16 weights) and two adapters are made meanwhile too.
# GPUFFI_LLAMA_BUILD and GPUFFI_MODELS name where they go: a folder in the repo that git ignores
# (.cache/…) outlives the call while the machine stays warm, so the next call, with another
# runtime packed, reuses the build and the models instead of making them again.
llama_dir=${GPUFFI_LLAMA_BUILD:-/tmp/gpuffi-llama}
models=${GPUFFI_MODELS:-/tmp/gpuffi-models}
# NVLink multicast stays off in everything started here (NCCL reads it; gpuffi also sets it).
export NCCL_NVLS_ENABLE=0
if [ -x "$llama_dir/llama-bench" ]; then
  echo "llama.cpp: reusing the build in $llama_dir"
elif { want llama || want llama-bench || want train || want train-multi || want notebook; } && [ -f .device/llama-src.tar.xz ]; then
  scripts/build-llama.sh --cuda --rpc --arch 90a --src .device/llama-src.tar.xz --out "$llama_dir" --jobs "$(nproc)" > "$out/llama-build-$label.log" 2>&1 &
  llama_build=$!
fi
llama_coming() { [ -x "$llama_dir/llama-bench" ] || [ -n "${llama_build:-}" ]; }
if { want llama || want llama-bench || want train; } && llama_coming && [ ! -f "$models/lora-b.gguf" ]; then
  mkdir -p "$models"
  ( run_ts "${runtimes[0]}" src/cli/main.ts make-tiny-model "$models/tinyllama-shape-f16.gguf" --embd 2048 --layers 22 --heads 32 --kv-heads 4 --ff 5632 --ctx 2048 --type f16 --vocab 32000 &&
    run_ts "${runtimes[0]}" src/cli/main.ts make-tiny-lora "$models/tinyllama-shape-f16.gguf" "$models/lora-a.gguf" --rank 16 --alpha 32 --seed 1 &&
    run_ts "${runtimes[0]}" src/cli/main.ts make-tiny-lora "$models/tinyllama-shape-f16.gguf" "$models/lora-b.gguf" --rank 16 --alpha 32 --seed 2 ) > "$out/llama-models-$label.log" 2>&1 &
  llama_models=$!
fi

# The PEFT reference fixture (numbers, not timings) is made while llama.cpp builds; it comes back
# as one archive, $OUT holding at most 8 files.
# GPUFFI_PEFT_FIXTURE=0 skips it (the committed fixture stands).
if want train && [ "${GPUFFI_PEFT_FIXTURE:-1}" = 1 ]; then
  ( PYTHONUNBUFFERED=1 python3 test/lora/train/fixture/make_peft_reference.py /tmp/peft-reference > "$out/peft-reference-$label.log" 2>&1
    tar czf "$out/peft-reference-$label.tgz" -C /tmp peft-reference ) &
  peft_job=$!
fi

if want tests; then
  # GPUFFI_TEST_FILTER: file filters for a partial run, e.g. "pool cublas".
  runner scripts/test.mjs --runtime "$list" ${GPUFFI_TEST_FILTER:-} > "$out/test-$label.log" 2>&1
  grep -E "✗|passed, " "$out/test-$label.log"
fi

mkdir -p .cache/bench
# The C anchors, built once per call (never reused from an earlier call: its sources may differ).
if want cuda-bench || want pool-bench; then
  nvcc -O2 -o .cache/bench/cuda_anchor bench/c/cuda_anchor.cu
fi
if want pool-bench; then nvcc -O2 -o .cache/bench/pool_anchor bench/c/pool_anchor.cu 2>/dev/null; fi
if want kernels-bench; then nvcc -O2 -o .cache/bench/kernel_launch bench/c/kernel_launch.cu -lcuda; fi
if want upload-bench; then
  nvcc -O2 -o .cache/bench/read_anchor bench/c/read_anchor.cu && nvcc -O2 -o .cache/bench/upload_anchor bench/c/upload_anchor.cu
fi
if want gemm-bench; then
  nvcc -O2 -std=c++20 -o .cache/bench/gemm_issue bench/c/gemm_issue.cu -lcublas -lcublasLt
fi
if [ -n "${llama_build:-}" ]; then
  wait "$llama_build"; echo "llama.cpp build exit $? ($(grep -c '\.so' "$out/llama-build-$label.log") lines naming libraries)"
fi
if [ -n "${llama_models:-}" ]; then wait "$llama_models"; echo "benchmark models exit $?"; fi

for name in "${runtimes[@]}"; do
  # Its own C anchor in each run: ffi-<label>-<runtime>.{md,json}.
  if want ffi-bench; then runner scripts/bench.mjs --runtimes "$name" --label "$label-$name" --out "$out" 2>&1 | tail -2; fi
  if want cuda-bench; then run_ts "$name" bench/cuda.bench.ts .cache/bench/cuda_anchor > "$out/cuda-bench-$label-$name.txt" 2>&1; tail -8 "$out/cuda-bench-$label-$name.txt"; fi
  if want pool-bench && [ -f bench/pool.bench.ts ]; then
    run_ts "$name" bench/pool.bench.ts .cache/bench/pool_anchor > "$out/pool-bench-$label-$name.txt" 2>&1; tail -8 "$out/pool-bench-$label-$name.txt"
  fi
  # PyTorch (bench/torch_matmul.py) and the C anchor (bench/c/gemm_issue.cu) run on the same GPU, started by the benchmark itself.
  if want gemm-bench && [ -f bench/gemm.bench.ts ]; then
    run_ts "$name" bench/gemm.bench.ts "$out" .cache/bench/gemm_issue > "$out/gemm-bench-$label-$name.txt" 2>&1; tail -34 "$out/gemm-bench-$label-$name.txt"
  fi
  # NVRTC kernels: launch cost against C's cuLaunchKernel and PyTorch, bandwidth against C (bench/kernels.bench.ts).
  if want kernels-bench; then
    run_ts "$name" bench/kernels.bench.ts "$out" .cache/bench/kernel_launch > "$out/kernels-bench-$label-$name.txt" 2>&1; tail -15 "$out/kernels-bench-$label-$name.txt"
  fi
  if want upload-bench && [ -f bench/upload.bench.ts ]; then
    run_ts "$name" bench/upload.bench.ts "$out" .cache/bench/read_anchor .cache/bench/upload_anchor > "$out/upload-bench-$label-$name.txt" 2>&1; tail -34 "$out/upload-bench-$label-$name.txt"
  fi
done
if want train && [ -x "$llama_dir/llama-bench" ]; then
  if [ -n "${peft_job:-}" ]; then wait "$peft_job"; tail -3 "$out/peft-reference-$label.log"; fi
  # The PyTorch + PEFT anchor runs after the build, alone on the machine as the trainer then does.
  PYTHONUNBUFFERED=1 python3 bench/train_peft.py --modes ${GPUFFI_PEFT_MODES:-bf16,tf32,fp32} --steps 10 --out "$out/train-peft-$label.jsonl" > "$out/train-peft-$label.log" 2>&1
  GPUFFI_LLAMA_DIR=$llama_dir run_ts "${runtimes[0]}" test/run.ts ${GPUFFI_TRAIN_TESTS:-train/} > "$out/train-tests-$label.log" 2>&1; grep -E "✗|#summary" "$out/train-tests-$label.log"
  # The gradient check once more with cuBLAS in full F32 (no TF32): CUDA then held to 1e-3.
  NVIDIA_TF32_OVERRIDE=0 GPUFFI_LLAMA_DIR=$llama_dir run_ts "${runtimes[0]}" test/run.ts train/trainer > "$out/train-tests-f32-$label.log" 2>&1; grep -E "✗|gradients|#summary" "$out/train-tests-f32-$label.log"
  GPUFFI_LLAMA_DIR=$llama_dir run_ts "${runtimes[0]}" bench/train.bench.ts "$models/tinyllama-shape-f16.gguf" "$out" --device cuda:0 --steps "${GPUFFI_TRAIN_STEPS:-10}" \
    --peft "$out/train-peft-$label.jsonl" --label "$label" > "$out/train-bench-$label.txt" 2>&1
  tail -8 "$out/train-bench-$label.txt"
  # GPUFFI_TRAIN_NO_GRAPHS=1: once more with ggml's CUDA graphs off, to tell their effect.
  if [ -n "${GPUFFI_TRAIN_NO_GRAPHS:-}" ]; then
    GGML_CUDA_DISABLE_GRAPHS=1 GPUFFI_LLAMA_DIR=$llama_dir run_ts "${runtimes[0]}" bench/train.bench.ts "$models/tinyllama-shape-f16.gguf" "$out" --device cuda:0 --steps "${GPUFFI_TRAIN_STEPS:-10}" \
      --peft "$out/train-peft-$label.jsonl" --label "no-cuda-graphs-$label" > "$out/train-bench-no-graphs-$label.txt" 2>&1
    tail -8 "$out/train-bench-no-graphs-$label.txt"
  fi
fi
if want train-cpu && [ -f .device/cpu-libs.tar.xz ]; then
  mkdir -p /tmp/gpuffi-cpu-libs "$models" && tar xJf .device/cpu-libs.tar.xz -C /tmp/gpuffi-cpu-libs
  threads=$(nproc)
  run_ts "${runtimes[0]}" src/cli/main.ts make-tiny-model "$models/train-cpu.gguf" --embd 256 --layers 4 --heads 8 --kv-heads 4 --ff 688 --ctx 512 --type f32 --vocab 4096 > /dev/null
  PYTHONUNBUFFERED=1 python3 bench/train_peft.py --cpu --threads "$threads" --steps 10 --out "$out/train-peft-cpu-$label.jsonl" > /dev/null 2>&1
  # With the transposed copies (the default) and without them (ggml's out-products), both beside PEFT.
  for copies in "" --no-transposed-copies; do
    GPUFFI_LLAMA_DIR=/tmp/gpuffi-cpu-libs run_ts "${runtimes[0]}" bench/train.bench.ts "$models/train-cpu.gguf" "$out" --device cpu --threads "$threads" --batch 2 --ctx 128 \
      --steps 20 $copies --peft "$out/train-peft-cpu-$label.jsonl" --label "cpu${copies:+-out-prod}-$label" > "$out/train-bench-cpu-$label.txt" 2>&1
    tail -5 "$out/train-bench-cpu-$label.txt"
  done
fi
if want abi; then
  runner scripts/check-abi.ts > "$out/abi-$label.txt" 2>&1; tail -12 "$out/abi-$label.txt"
fi
if want train-multi && [ -x "$llama_dir/llama-bench" ]; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU')
  records=/tmp/gpuffi-train-multi.jsonl
  log="$out/train-multi-$label.log"
  rm -f "$records"
  GPUFFI_LLAMA_DIR=$llama_dir run_ts "${runtimes[0]}" test/run.ts data-parallel > "$log" 2>&1; grep -E "✗|#summary" "$log"
  for n in $(printf '%s\n' 1 2 4 8 "$gpus" | sort -nu); do
    [ "$n" -le "$gpus" ] || continue
    echo "== $n GPU(s): throughput, 4 sequences per GPU" >> "$log"
    GPUFFI_LLAMA_DIR=$llama_dir run_ts "${runtimes[0]}" bench/train.bench.ts "$models/tinyllama-shape-f16.gguf" /tmp --gpus "$n" --batch $((4 * n)) \
      --steps 10 --warmup 2 --tag scaling --jsonl "$records" >> "$log" 2>&1 || echo "throughput on $n GPU(s) failed (exit $?)"
    if [ $((8 % n)) -eq 0 ]; then
      echo "== $n GPU(s): 20 steps of global batch 8" >> "$log"
      GPUFFI_LLAMA_DIR=$llama_dir run_ts "${runtimes[0]}" bench/train.bench.ts "$models/tinyllama-shape-f16.gguf" /tmp --gpus "$n" --batch 8 \
        --steps 20 --warmup 0 --tag equality --jsonl "$records" >> "$log" 2>&1 || echo "equality run on $n GPU(s) failed (exit $?)"
    fi
  done
  run_ts "${runtimes[0]}" bench/train-multi.ts "$records" "$out/train-multi-$label.md"; echo "loss equality exit $?"
  cp "$records" "$out/train-multi-$label.jsonl"
fi
if { want llama || want llama-bench; } && [ -x "$llama_dir/llama-bench" ]; then
  # GPUFFI_LLAMA_RUNTIMES="node" limits the llama tests and benchmark to those of the packed runtimes.
  llama_runtimes=()
  for name in "${runtimes[@]}"; do [[ " ${GPUFFI_LLAMA_RUNTIMES:-$list} " =~ [\ ,]$name[\ ,] ]] && llama_runtimes+=("$name"); done
  if want llama; then
    for name in "${llama_runtimes[@]}"; do
      GPUFFI_LLAMA_DIR=$llama_dir run_ts "$name" test/run.ts ${GPUFFI_LLAMA_TESTS:-ggml/ llama/ lora/} > "$out/llama-tests-$label-$name.log" 2>&1; grep -E "✗|#summary" "$out/llama-tests-$label-$name.log"
    done
  fi
  nlc=()
  if [ -f .device/node-llama-cpp.tar.xz ]; then
    mkdir -p /tmp/gpuffi-nlc && tar xJf .device/node-llama-cpp.tar.xz -C /tmp/gpuffi-nlc && nlc=(--node-llama-cpp /tmp/gpuffi-nlc/node_modules)
  fi
  # On every packed runtime, each against llama-bench in its own run: llama-<label>-<runtime>.{md,json}.
  # node-llama-cpp runs as a child of the benchmark's runtime, which Deno cannot be.
  for name in "${llama_runtimes[@]}"; do
    guest=("${nlc[@]}")
    [ "$name" = deno ] && guest=()
    GPUFFI_LLAMA_DIR=$llama_dir run_ts "$name" bench/llama.bench.ts "$llama_dir/llama-bench" "$models/tinyllama-shape-f16.gguf" "$out" \
      --lora-a "$models/lora-a.gguf" --lora-b "$models/lora-b.gguf" "${guest[@]}" --label "$label" ${GPUFFI_LLAMA_BENCH_ARGS:-} > "$out/llama-bench-$label-$name.txt" 2>&1
    tail -12 "$out/llama-bench-$label-$name.txt"
  done
fi
if want notebook; then
  if [ -x "$rt/deno" ] && [ -x "$llama_dir/llama-bench" ]; then
    GPUFFI_LLAMA_DIR=$llama_dir "$rt/deno" run -A scripts/run-notebook.ts docs/notebooks/gpu.ipynb --out "$out/notebook-gpu-$label.ipynb" > "$out/notebook-gpu-$label.log" 2>&1
    echo "gpu.ipynb exit $?"; tail -3 "$out/notebook-gpu-$label.log"
  else
    echo "notebook: needs Deno and the llama.cpp source packed (scripts/pack-device.sh deno --llama)"
  fi
fi
# The device tool brings back at most 8 files: more travel as one archive (device-<label>.txt stays beside it).
if [ "$(find "$out" -maxdepth 1 -type f | wc -l)" -gt 8 ]; then
  ( cd "$out" && find . -maxdepth 1 -type f ! -name "gpu-run-$label.tgz" -printf '%P\n' | sort | tar czf "gpu-run-$label.tgz" -T - &&
    find . -maxdepth 1 -type f ! -name "gpu-run-$label.tgz" ! -name "device-$label.txt" -delete )
fi
ls -la "$out"
