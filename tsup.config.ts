import { defineConfig } from "tsup";

// Node consumers get compiled ESM + .d.ts from dist/; Bun and Deno run the TypeScript sources.
// lora/rank-process is no module to import: the data-parallel launcher runs it as a process.
export default defineConfig({
  entry: { index: "src/index.ts", "ffi/index": "src/ffi/index.ts", "formats/index": "src/formats/index.ts", "cuda/index": "src/cuda/index.ts", "ggml/index": "src/ggml/index.ts", "llama/index": "src/llama/index.ts", "lora/index": "src/lora/index.ts", "lora/rank-process": "src/lora/train/rank-process.ts", "cli/main": "src/cli/main.ts" },
  format: ["esm"],
  target: "node20",
  platform: "node",
  dts: true,
  clean: true,
  sourcemap: true,
  external: ["bun:ffi", "koffi"],
});
