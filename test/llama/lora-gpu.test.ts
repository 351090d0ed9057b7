// The same numerical checks with every layer offloaded; they need a CUDA build (GPUFFI_LLAMA_DIR).
import { gpuUnavailable } from "./fixtures.ts";
import { registerLoraNumerics } from "./numerics.ts";

registerLoraNumerics("LoRA on GPU (all layers offloaded)", "all", gpuUnavailable);
