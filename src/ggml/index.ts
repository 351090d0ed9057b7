// gpuffi's ggml layer: the libggml-base / libggml binding under llama.cpp (versions, the backend
// registry and its devices, CPU threadpools, the RPC backend's table). Loaded by src/llama.
export {
  ggmlSonames,
  ggmlBaseSonames,
  ggmlBaseSymbols,
  ggmlSymbols,
  deviceTypes,
  ggmlThreadpoolParams,
  SchedPriority,
  ggmlCpuSymbols,
  rpcProtocol,
  rpcMaxServers,
  rpcSymbols,
  rpcSonames,
} from "./bindings.ts";
export { Ggml, type GgmlDeviceInfo, type GgmlDeviceName, disableCudaGraphs, siblingLibrary } from "./ggml.ts";
export { GgmlBackend, BackendBuffer, Scheduler, type SchedulerOptions } from "./backend.ts";
export { GgmlContext, ComputeGraph, type GgmlContextOptions, type RopeOptions } from "./context.ts";
export { Tensor, TensorType, type Shape, shapeText } from "./tensor.ts";
export { GgmlError, GgmlShapeError } from "./errors.ts";
export { ggmlGraphSymbols, ggmlBackendSymbols, ggmlCpuBackendSymbols, ggmlTensor, ggmlInitParams, TensorFlag, RopeType, GgmlStatus, GgmlOp } from "./graph-bindings.ts";
