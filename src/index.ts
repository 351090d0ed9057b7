// gpuffi: CUDA runtime, cuBLAS, NCCL and llama.cpp from TypeScript on Bun, Deno and Node.
// Layers, bottom to top: ffi; formats; cuda and ggml (siblings); llama; lora (docs/ARCHITECTURE.md).
export * from "./ffi/index.ts";
export * from "./formats/index.ts";
export * from "./cuda/index.ts";
export * from "./ggml/index.ts";
export * from "./llama/index.ts";
export * from "./lora/index.ts";
