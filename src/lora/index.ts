// gpuffi's LoRA layer: the adapter lifecycle on top of src/llama and src/cuda: PEFT → GGUF
// conversion and merging adapters into a base model (on the CPU or with cuBLAS).
export * from "./convert/index.ts";
export {
  type DequantizeTarget,
  type DequantizedTensor,
  type MergeAdapter,
  type MergeOptions,
  type MergeResult,
  type MergeDevice,
  type MergeTerm,
  cpuMergeDevice,
  mergeLoraFiles,
  mergeLoraSpecs,
} from "./merge.ts";
export { CudaMergeDevice } from "./merge-cuda.ts";
