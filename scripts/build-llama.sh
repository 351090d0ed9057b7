#!/usr/bin/env bash
# Builds llama.cpp's shared libraries (libllama, libggml*, plus the llama-bench tool used by
# bench/llama.bench.ts) from the exact source that the node-llama-cpp npm package bundles, so the
# struct layouts match the ones src/llama/ and src/ggml/ were written against (llama.cpp 0.5.0).
#
#   scripts/build-llama.sh [--cuda] [--arch 90a] [--rpc] [--src TARBALL|DIR] [--jobs N] --out DIR
#
# --src   a tarball made by `scripts/pack-device.sh --llama` (.device/llama-src.tar.xz), or an
#         unpacked source tree; without it, node-llama-cpp's llama/gitRelease.bundle is cloned
#         (from node_modules/node-llama-cpp, else fetched once with `npm pack`).
# --cuda  build the CUDA backend for --arch (CMAKE_CUDA_ARCHITECTURES; default 90a = H100/H200).
# --rpc   also build ggml's RPC backend (TCP only) and its server, DIR/ggml-rpc-server, which
#         exposes this machine's devices to a libllama elsewhere (LlamaModel.load's rpcServers).
# Everything else is off: no tests, no examples, no server, no OpenSSL, no network at run time,
# GGML_NATIVE=OFF so the result runs on any x86-64 the GPU machine has.
# Afterwards: GPUFFI_LLAMA_DIR=DIR selects this build; DIR/llama-bench is the native baseline.
set -euo pipefail

cuda=0 rpc=0 arch=90a src="" out="" jobs=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --cuda) cuda=1 ;;
    --rpc) rpc=1 ;;
    --arch) arch=$2; shift ;;
    --src) src=$2; shift ;;
    --out) out=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "build-llama.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$out" ] || { echo "build-llama.sh: --out DIR is required" >&2; exit 2; }

repo=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ -d "$src" ] && [ -n "$src" ]; then
  source_dir=$(cd "$src" && pwd)
elif [ -n "$src" ]; then
  mkdir -p "$work/src" && tar xf "$src" -C "$work/src"
  source_dir=$work/src
else
  bundle=$repo/node_modules/node-llama-cpp/llama/gitRelease.bundle
  if [ ! -f "$bundle" ]; then
    version=$(node -p "require('$repo/package.json').devDependencies?.['node-llama-cpp'] ?? '3.22.1'" | tr -d '^~')
    (cd "$work" && npm pack "node-llama-cpp@$version" >/dev/null && tar xzf node-llama-cpp-*.tgz package/llama/gitRelease.bundle)
    bundle=$work/package/llama/gitRelease.bundle
  fi
  git clone -q "$bundle" "$work/src"
  source_dir=$work/src
fi

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
flags=(
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=ON
  -DGGML_NATIVE=OFF
  -DGGML_BACKEND_DL=OFF
  -DLLAMA_BUILD_COMMON=ON
  -DLLAMA_BUILD_TOOLS=ON
  -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF
  -DLLAMA_BUILD_SERVER=OFF
  -DLLAMA_BUILD_APP=OFF
  -DLLAMA_OPENSSL=OFF
  # The libraries must find each other next to themselves once copied into --out.
  -DCMAKE_BUILD_RPATH='$ORIGIN'
  -DCMAKE_INSTALL_RPATH='$ORIGIN'
)
targets=(llama llama-bench)
if [ "$cuda" = 1 ]; then
  flags+=(-DGGML_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$arch")
fi
if [ "$rpc" = 1 ]; then
  # RDMA would be auto-enabled wherever libibverbs is installed, making it a run-time dependency
  # of libggml-rpc on every machine the build is copied to; TCP works everywhere.
  flags+=(-DGGML_RPC=ON -DGGML_RPC_RDMA=OFF)
  targets+=(ggml-rpc-server)
fi

cmake -S "$source_dir" -B "$work/build" "${generator[@]}" "${flags[@]}"
# Only the libraries, llama-bench and (--rpc) the RPC server: the other tools would triple the
# build time.
cmake --build "$work/build" --config Release -j "$jobs" --target "${targets[@]}"

find "$work/build/bin" -maxdepth 1 \( -name 'lib*.so*' -o -name llama-bench -o -name ggml-rpc-server \) -exec cp -a {} "$out/" \;
echo "built into $out:"
ls -la "$out"
