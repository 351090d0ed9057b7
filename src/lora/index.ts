// gpuffi's llama.cpp layer: models, contexts, generation and hot-swappable LoRA adapters.
export { LlamaError, LlamaVersionError } from "./errors.ts";
export { Llama, type LlamaOptions, type LlamaVersions, type LlamaDevice, checkVersions } from "./llama.ts";
export { LlamaModel, type ModelLoadOptions, type TokenizeOptions, type DetokenizeOptions } from "./model.ts";
export {
  RpcError,
  type RpcFailure,
  type RpcEndpoint,
  type RpcServerInfo,
  RpcServerProcess,
  type RpcServerOptions,
  parseRpcEndpoint,
  parseRpcEndpoints,
  probeRpcServer,
  rpcDevices,
  rpcProtocol,
  rpcServerExecutable,
} from "./rpc.ts";
export { LlamaContext, type ContextOptions, type AdapterSetting, type EvaluateOptions, type GenerateOptions, type GeneratedToken, type ContextState } from "./context.ts";
export { LlamaSampler, type SamplerOptions } from "./sampler.ts";
export { LlamaThreadpool, type ThreadpoolOptions } from "./threadpool.ts";
export { LoraAdapter } from "./adapter.ts";
export { Batch } from "./batch.ts";
export { expectedVersions } from "./bindings.ts";
export * from "./convert/index.ts";
export { type DequantizeTarget, type DequantizedTensor, type MergeAdapter, type MergeOptions, type MergeResult, mergeLoraFiles, mergeLoraSpecs } from "./merge.ts";
export {
  type FileTensor,
  type UploadOptions,
  type UploadRange,
  type UploadStats,
  type UploadStrategy,
  type UploadedTensors,
  UploadError,
  defaultUploadStrategy,
  fileTensors,
  uploadFileRanges,
  uploadStrategies,
  uploadTensors,
} from "./upload.ts";
export { type MergeDevice, type MergeTerm, cpuMergeDevice } from "./merge.ts";
export { CudaMergeDevice } from "./merge-cuda.ts";
