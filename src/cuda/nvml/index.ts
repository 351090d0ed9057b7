// NVML (libnvidia-ml): the live state of every GPU, matched to CUDA ordinals by PCI bus id.
export {
  Nvml,
  NvmlDevice,
  NvmlLibrary,
  type NvmlApi,
  type NvmlSymbols,
  type NvmlOpenOptions,
  type NvmlVersions,
  type NvmlMemoryInfo,
  type NvmlPciInfo,
  type GpuProcess,
  type GpuStatus,
  driverBranch,
  loadNvml,
  nvmlLibrary,
} from "./nvml.ts";
export { NvmlError, NvmlReturn, NvmlVersionError, nvmlReturnName } from "./errors.ts";
export { nvmlSpec, nvmlMinimumDriverBranch, type NvmlComputeMode } from "./library.ts";
export { canonicalPciBusId, cudaPciBusIds, matchCudaOrdinals } from "./pci.ts";
export {
  type GpuSnapshot,
  type GpuHealth,
  type PoolLike,
  type PoolReport,
  type SnapshotOptions,
  type WatchOptions,
  gpuHealth,
  gpuSnapshot,
  visibleCudaBusIds,
  watchGpus,
} from "./watch.ts";
export { formatGpuSnapshot, formatGpuTable } from "./format.ts";
