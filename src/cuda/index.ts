// gpuffi's CUDA layer: the runtime at the root (versions, devices, contexts, streams, events,
// graphs, memory, errors), memory pools (pool/), cuBLAS and cuBLASLt (blas/), NCCL, rendezvous
// and peer access (nccl/), and streamed file → GPU uploads (upload.ts).
export { CudaContext, type CudaContextOptions, type MemoryInfo } from "./context.ts";
export { ContextResource, type ReleasePhase } from "./context-resource.ts";
export { CudaStream, CudaEvent, type StreamOptions, type EventOptions, type WaitOptions } from "./stream.ts";
export { CudaGraph, type CaptureMode, type CaptureOptions } from "./graph.ts";
export {
  CudaMemory,
  DeviceBuffer,
  PinnedHostBuffer,
  ManagedBuffer,
  ManagedAdvice,
  type ManagedAdviceName,
  type ManagedLocation,
  type DeviceAllocOptions,
  type StreamOption,
  type OffsetOption,
  type RangeOption,
  type CopyOption,
  type TypedArrayConstructor,
  checkAllocationSize,
  checkRange,
} from "./memory.ts";
export { RegisteredHostMemory, type HostRegisterOptions } from "./registered-memory.ts";
export { DeviceAttribute, type DeviceAttributeName, type DeviceInfo, deviceInfo, getDeviceAttribute, checkDeviceOrdinal } from "./device.ts";
export { CudaRuntime, type CudartApi, cudaRuntime, loadCudart } from "./runtime.ts";
export {
  CudaError,
  CudaArgumentError,
  CudaStateError,
  CudaCompatibilityError,
  CudaOutOfMemoryError,
  CudaStatus,
  type ErrorDescriber,
  isStickyStatus,
} from "./errors.ts";
export {
  type CudaVersion,
  type CompatibilityVerdict,
  type CompatibilityInput,
  checkCompatibility,
  compareCudaVersions,
  decodeCudaVersion,
  formatCudaVersion,
  parseCudaVersion,
  linuxDriverVersion,
  minimumDriverForRuntime,
  minorCompatibilityDriver,
} from "./version.ts";
export { cudartSpec, cudaToolkitDirs } from "./cudart-library.ts";
export * from "./nvml/index.ts";
export { libcudaSpec } from "./driver-library.ts";
export * from "./pool/index.ts";
export * from "./blas/index.ts";
export * from "./nccl/index.ts";
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
export * from "./kernels/index.ts";
