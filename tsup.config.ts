import { defineConfig } from "tsup";

// Node consumers get compiled ESM + .d.ts from dist/; Bun and Deno run the TypeScript sources.
export default defineConfig({
  entry: { index: "src/index.ts", "ffi/index": "src/ffi/index.ts", "formats/index": "src/formats/index.ts", "cuda/index": "src/cuda/index.ts", "ggml/index": "src/ggml/index.ts", "llama/index": "src/llama/index.ts", "lora/index": "src/lora/index.ts", "cli/main": "src/cli/main.ts" },
  format: ["esm"],
  target: "node20",
  platform: "node",
  dts: true,
  clean: true,
  sourcemap: true,
  external: ["bun:ffi", "koffi"],
});
