#!/usr/bin/env bash
# Packs what the GPU machine lacks into the ignored folder .device/ (name it in the device tool's
# `carry`): the JS runtimes, xz-compressed, and the few npm packages the tests and benchmarks
# import. The tree that travels is capped at 64 MiB: Bun (≈40 MB) travels alone; Deno (≈31 MB)
# and Node (≈24 MB) fit together.
#   scripts/pack-device.sh bun|deno|node ... [--llama] [--cpu-libs] [--node-llama-cpp]
# --llama adds the exact llama.cpp source that the node-llama-cpp npm package bundles.
# --node-llama-cpp adds node-llama-cpp's JS and dependencies (≈2 MB; not its 34 MB source bundle)
# and the CPU package's llama-addon.node, for bench/node-llama-cpp.bench.mjs.
set -euo pipefail
cd "$(dirname "$0")/.."
# (A worktree's .git is a file: ask git where its exclude file is.)
exclude=$(git rev-parse --git-path info/exclude)
grep -qx '/.device/' "$exclude" 2>/dev/null || echo '/.device/' >> "$exclude"
rm -rf .device && mkdir -p .device
for what in "$@"; do
  case "$what" in
    bun)  xz -T2 -6 -c node_modules/bun/bin/bun.exe > .device/bun.xz ;;
    deno) xz -T2 -6 -c node_modules/deno/deno > .device/deno.xz ;;
    node) xz -T2 -6 -c "$(command -v node)" > .device/node.xz ;;
    --llama)
      tmp=$(mktemp -d)
      version=$(node -p "require('./package.json').devDependencies['node-llama-cpp'] ?? '3.22.1'" | tr -d '^~')
      (cd "$tmp" && npm pack "node-llama-cpp@$version" >/dev/null 2>&1 && tar xzf node-llama-cpp-*.tgz package/llama/gitRelease.bundle && git clone -q package/llama/gitRelease.bundle src)
      (cd "$tmp/src" && git archive --format=tar HEAD CMakeLists.txt cmake ggml src include common tools vendor licenses LICENSE) | xz -T2 -6 > .device/llama-src.tar.xz
      rm -rf "$tmp" ;;
    --cpu-libs)
      # node-llama-cpp's prebuilt CPU libraries (the x86-64 plugins a server CPU picks from), for
      # CPU runs that need no llama.cpp build (gpu-run.sh train-cpu).
      bins=node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
      tar -C "$bins" -cf - libllama.v0.5.0.so libggml.v0.5.0.so libggml-base.so libggml-cpu-x64.so libggml-cpu-haswell.so \
        libggml-cpu-skylakex.so libggml-cpu-icelake.so libggml-cpu-sapphirerapids.so libggml-cpu-zen4.so | xz -T2 -6 > .device/cpu-libs.tar.xz ;;
    --node-llama-cpp)
      tmp=$(mktemp -d)
      version=$(node -p "require('./node_modules/@node-llama-cpp/linux-x64/package.json').version")
      (cd "$tmp" && echo '{"private":true}' > package.json &&
        npm install --omit=optional --ignore-scripts --no-audit --no-fund "node-llama-cpp@$version" >/dev/null)
      addon=node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/llama-addon.node
      mkdir -p "$tmp/$(dirname "$addon")" && cp "$addon" "$tmp/$addon"
      tar -C "$tmp" --exclude=node_modules/node-llama-cpp/llama/gitRelease.bundle -cf - node_modules | xz -T2 -6 > .device/node-llama-cpp.tar.xz
      rm -rf "$tmp" ;;
    *) echo "unknown: $what (bun|deno|node|--llama|--cpu-libs|--node-llama-cpp)" >&2; exit 2 ;;
  esac
done
packages="fast-check pure-rand mitata"
case " $* " in *" node "*) packages="$packages koffi @koromix tsx" ;; esac
existing=$(for p in $packages; do [ -e "node_modules/$p" ] && echo "node_modules/$p"; done)
tar cf - $existing | xz -T2 -6 > .device/node_modules.tar.xz
ls -la .device; du -sh .device
