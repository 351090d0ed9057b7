// gpuffi's llama.cpp layer: libllama and its classes: models, contexts, samplers, batches,
// generation, LoRA adapters loaded into a model, CPU threadpools and the RPC backend.
export { LlamaError, LlamaVersionError } from "./errors.ts";
export { Llama, type LlamaOptions, type LlamaVersions, type LlamaDevice, checkVersions } from "./llama.ts";
export { LlamaModel, type ModelLoadOptions, type TokenizeOptions, type DetokenizeOptions, type ChatMessage, type ChatTemplateOptions } from "./model.ts";
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
  rpcServerExecutable,
} from "./rpc.ts";
export { LlamaContext, type ContextOptions, type AdapterSetting, type EvaluateOptions, type GenerateOptions, type GeneratedToken, type ContextState } from "./context.ts";
export { LlamaSampler, type SamplerOptions } from "./sampler.ts";
export { LlamaThreadpool, type ThreadpoolOptions } from "./threadpool.ts";
export { LoraAdapter } from "./adapter.ts";
export { Batch } from "./batch.ts";
export { expectedVersions, llamaSpec } from "./bindings.ts";
