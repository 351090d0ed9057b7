// gpuffi: CUDA runtime, cuBLAS and llama.cpp from TypeScript on Bun, Deno and Node.
export * from "./ffi/index.ts";
export * from "./formats/index.ts";
export * from "./cuda/index.ts";
export * from "./lora/index.ts";
