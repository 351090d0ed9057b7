// What a device is: the facts reported without creating a CUDA context on it (so listing
// devices, as `gpuffi doctor` does, costs no GPU memory). Attributes come from
// cudaDeviceGetAttribute, whose enum values are stable across CUDA versions; name, UUID and
// total memory from the driver API (see driver-library.ts).
import { type NativeLibrary, Out, loadLibrary, readCString } from "../ffi/index.ts";
import { libcudaSpec, libcudaSymbols } from "./driver-library.ts";
import { CudaArgumentError, CudaError, type ErrorDescriber } from "./errors.ts";
import type { CudaRuntime } from "./runtime.ts";

/** cudaDeviceAttr values (driver_types.h) that exist in CUDA 12.0 through 13. */
export const DeviceAttribute = {
  maxThreadsPerBlock: 1,
  maxSharedMemoryPerBlock: 8,
  warpSize: 10,
  maxPitch: 11,
  maxRegistersPerBlock: 12,
  clockRate: 13,
  textureAlignment: 14,
  multiProcessorCount: 16,
  kernelExecTimeout: 17,
  integrated: 18,
  canMapHostMemory: 19,
  computeMode: 20,
  concurrentKernels: 31,
  eccEnabled: 32,
  pciBusId: 33,
  pciDeviceId: 34,
  memoryClockRate: 36,
  globalMemoryBusWidth: 37,
  l2CacheSize: 38,
  maxThreadsPerMultiProcessor: 39,
  asyncEngineCount: 40,
  unifiedAddressing: 41,
  pciDomainId: 50,
  texturePitchAlignment: 51,
  computeCapabilityMajor: 75,
  computeCapabilityMinor: 76,
  managedMemory: 83,
  pageableMemoryAccess: 88,
  concurrentManagedAccess: 89,
  cooperativeLaunch: 95,
  maxSharedMemoryPerBlockOptin: 97,
  hostRegisterSupported: 99,
  maxBlocksPerMultiprocessor: 106,
  hostRegisterReadOnlySupported: 113,
  memoryPoolsSupported: 115,
} as const;
export type DeviceAttributeName = keyof typeof DeviceAttribute;

export interface DeviceInfo {
  readonly ordinal: number;
  readonly name: string;
  /** As nvidia-smi prints it: `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`. */
  readonly uuid: string;
  /** `domain:bus:device.function`, e.g. `0000:3B:00.0`. */
  readonly pciBusId: string;
  readonly computeCapability: { readonly major: number; readonly minor: number };
  readonly totalMemory: number;
  readonly multiProcessorCount: number;
  readonly concurrentManagedAccess: boolean;
  readonly memoryPoolsSupported: boolean;
}

/** Checks a device ordinal in JS: a whole number within [0, count). */
export function checkDeviceOrdinal(device: unknown, count: number): asserts device is number {
  if (typeof device !== "number" || !Number.isInteger(device) || device < 0) {
    throw new CudaArgumentError(`device must be a device ordinal (a whole number ≥ 0), got ${String(device)}`);
  }
  if (device >= count) {
    throw new CudaArgumentError(`device ${device} does not exist: this process sees ${count} device${count === 1 ? "" : "s"}${count > 0 ? ` (0–${count - 1})` : ""}`);
  }
}

export function getDeviceAttribute(runtime: CudaRuntime, device: number, attribute: DeviceAttributeName): number {
  const code = DeviceAttribute[attribute];
  if (code === undefined) throw new CudaArgumentError(`unknown device attribute ${JSON.stringify(attribute)}; known: ${Object.keys(DeviceAttribute).join(", ")}`);
  const out = Out.i32();
  runtime.check(runtime.symbols.cudaDeviceGetAttribute(out.buffer, code, device), `cudaDeviceGetAttribute(${attribute})`, device);
  return out.value;
}

let libcuda: NativeLibrary<typeof libcudaSymbols> | undefined;

/** Names CUresult codes with the driver's own cuGetErrorName/cuGetErrorString. */
export function driverDescriber(lib: NativeLibrary<typeof libcudaSymbols>): ErrorDescriber {
  const describe = (fn: typeof lib.symbols.cuGetErrorName, status: number) => {
    const out = Out.pointer();
    return fn(status, out.buffer) === 0 ? readCString(out.value) : null;
  };
  return {
    errorName: (status) => describe(lib.symbols.cuGetErrorName, status) ?? `CUresult ${status}`,
    errorString: (status) => describe(lib.symbols.cuGetErrorString, status) ?? "unknown error",
  };
}

/** libcuda, loaded and initialized on first use. */
export function driverLibrary(): NativeLibrary<typeof libcudaSymbols> {
  if (!libcuda) {
    const lib = loadLibrary(libcudaSpec, libcudaSymbols);
    const status = lib.symbols.cuInit(0);
    if (status !== 0) throw new CudaError(status, "cuInit", driverDescriber(lib));
    libcuda = lib;
  }
  return libcuda;
}

function formatUuid(bytes: Uint8Array): string {
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `GPU-${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/** Everything gpuffi reports about one device (the ordinal must be valid: see checkDeviceOrdinal). */
export function deviceInfo(runtime: CudaRuntime, device: number): DeviceInfo {
  const lib = driverLibrary();
  const cu = lib.symbols;
  const handle = Out.i32();
  const check = (status: number, call: string) => {
    if (status !== 0) throw new CudaError(status, call, driverDescriber(lib), `device ${device}`);
  };
  check(cu.cuDeviceGet(handle.buffer, device), "cuDeviceGet");
  const name = new Uint8Array(256);
  check(cu.cuDeviceGetName(name, name.length, handle.value), "cuDeviceGetName");
  const uuid = new Uint8Array(16);
  check(cu.cuDeviceGetUuid_v2(uuid, handle.value), "cuDeviceGetUuid_v2");
  const total = Out.size();
  check(cu.cuDeviceTotalMem_v2(total.buffer, handle.value), "cuDeviceTotalMem_v2");
  const pci = new Uint8Array(32);
  runtime.check(runtime.symbols.cudaDeviceGetPCIBusId(pci, pci.length, device), "cudaDeviceGetPCIBusId", device);
  const attribute = (name: DeviceAttributeName) => getDeviceAttribute(runtime, device, name);
  return {
    ordinal: device,
    name: cString(name),
    uuid: formatUuid(uuid),
    pciBusId: cString(pci),
    computeCapability: { major: attribute("computeCapabilityMajor"), minor: attribute("computeCapabilityMinor") },
    totalMemory: total.value,
    multiProcessorCount: attribute("multiProcessorCount"),
    concurrentManagedAccess: attribute("concurrentManagedAccess") === 1,
    memoryPoolsSupported: attribute("memoryPoolsSupported") === 1,
  };
}
