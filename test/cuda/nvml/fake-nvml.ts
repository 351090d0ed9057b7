// A stand-in for libnvidia-ml, so that the NVML layer's parsing, matching, retries and errors run
// on machines without a driver. It writes every struct byte by byte at the offsets nvml.h gives
// (not through gpuffi's struct codec), so a wrong layout in src/cuda/nvml/library.ts reads wrong
// values here as it would from the real library. Every call is recorded.
import { type RecordedCall, recordingSymbols } from "../recording-symbols.ts";
import { type NvmlApi, NvmlLibrary, NvmlReturn } from "../../../src/cuda/index.ts";

export interface FakeProcess {
  pid: number;
  /** NVML_VALUE_NOT_AVAILABLE (2^64 − 1) when NVML cannot read it. */
  usedGpuMemory: bigint;
  gpuInstanceId?: number;
  computeInstanceId?: number;
}

export interface FakeGpu {
  name: string;
  uuid: string;
  /** NVML's form, `00000000:3B:00.0`. */
  busId: string;
  memory: { total: bigint; reserved: bigint; free: bigint; used: bigint };
  utilization: { gpu: number; memory: number };
  temperatureC: number;
  powerMilliwatts: number;
  powerLimitMilliwatts: number;
  smMHz: number;
  memoryMHz: number;
  pcieGeneration: number;
  pcieWidth: number;
  ecc: { current: number; pending: number };
  computeMode: number;
  processes: FakeProcess[];
  /** Calls that answer NVML_ERROR_NOT_SUPPORTED on this GPU. */
  unsupported: Set<string>;
}

export interface FakeNvmlOptions {
  gpus?: Partial<FakeGpu>[];
  driver?: string;
  nvml?: string;
  /** nvmlSystemGetCudaDriverVersion_v2's value (default 12090). */
  cudaDriver?: number;
  /** Optional symbols this library lacks (e.g. `nvmlDeviceGetMemoryInfo_v2`). */
  absent?: string[];
  /** Also export the symbols of the early r535 drivers, whose process list has 32-byte entries. */
  r535ProcessInfo?: boolean;
  /** Refuse nvmlMemory_v2's struct version with NVML_ERROR_ARGUMENT_VERSION_MISMATCH. */
  memoryV2Mismatch?: boolean;
  processNames?: Record<number, string>;
  /** Runs before each process-list call: a test adds processes here, as if they started meanwhile. */
  beforeProcessQuery?: (gpu: FakeGpu) => void;
}

export interface FakeNvml {
  readonly api: NvmlApi;
  /** A library over the api: what Nvml.open({ library }) takes. */
  readonly library: NvmlLibrary;
  readonly calls: RecordedCall[];
  readonly failNext: Map<string, number>;
  readonly gpus: FakeGpu[];
  /** nvmlInit_v2 calls not yet matched by nvmlShutdown. */
  readonly initDepth: number;
}

/** nvmlErrorString's texts for the codes the tests use, as libnvidia-ml words them. */
const errorStrings: Record<number, string> = {
  0: "Success",
  1: "Uninitialized",
  2: "Invalid Argument",
  3: "Not Supported",
  7: "Insufficient Size",
  9: "Driver Not Loaded",
  15: "GPU is lost",
  25: "Argument version mismatch",
};

export function fakeGpu(index: number, overrides: Partial<FakeGpu> = {}): FakeGpu {
  const gib = 2n ** 30n;
  return {
    name: "NVIDIA H200",
    uuid: `GPU-0000000${index}-1111-2222-3333-444444444444`,
    busId: `00000000:${(0x18 + 0x10 * index).toString(16).toUpperCase().padStart(2, "0")}:00.0`,
    memory: { total: 141n * gib, reserved: gib / 2n, free: 139n * gib, used: gib + gib / 2n },
    utilization: { gpu: 37 + index, memory: 12 },
    temperatureC: 41,
    powerMilliwatts: 123_456,
    powerLimitMilliwatts: 700_000,
    smMHz: 1980,
    memoryMHz: 3201,
    pcieGeneration: 5,
    pcieWidth: 16,
    ecc: { current: 1, pending: 1 },
    computeMode: 0,
    processes: [],
    unsupported: new Set(),
    ...overrides,
  };
}

const { success, notSupported, insufficientSize, uninitialized, invalidArgument, notFound, argumentVersionMismatch: versionMismatch } = NvmlReturn;

export function fakeNvml(options: FakeNvmlOptions = {}): FakeNvml {
  const calls: RecordedCall[] = [];
  const failNext = new Map<string, number>();
  const gpus = (options.gpus ?? [{}, {}]).map((overrides, i) => fakeGpu(i, overrides));
  let initDepth = 0;
  const handleBase = 0x9000;
  const view = (out: ArrayBufferView) => new DataView(out.buffer, out.byteOffset, out.byteLength);
  const writeText = (out: Uint8Array, length: number, text: string) => {
    const bytes = new TextEncoder().encode(text);
    if (bytes.length + 1 > length) return insufficientSize;
    out.fill(0, 0, length);
    out.set(bytes);
    return success;
  };
  const writeU32 = (out: ArrayBufferView, value: number) => (view(out).setUint32(0, value, true), success);
  // Every device call: NVML must be initialized, the handle valid, the call supported on that GPU.
  const device = (call: string, body: (gpu: FakeGpu, ...args: never[]) => number) => (handle: number, ...args: never[]) => {
    if (initDepth === 0) return uninitialized;
    const gpu = gpus[handle - handleBase];
    if (!gpu) return invalidArgument;
    if (gpu.unsupported.has(call)) return notSupported;
    return body(gpu, ...args);
  };
  const stride = options.r535ProcessInfo ? 32 : 24;
  const implementation: Record<string, (...args: never[]) => unknown> = {
    nvmlInit_v2: () => (initDepth++, success),
    nvmlShutdown: () => (initDepth === 0 ? uninitialized : (initDepth--, success)),
    nvmlErrorString: (status: number) => errorStrings[status] ?? "Unknown Error",
    nvmlSystemGetDriverVersion: (out: Uint8Array, length: number) => writeText(out, length, options.driver ?? "575.57.08"),
    nvmlSystemGetNVMLVersion: (out: Uint8Array, length: number) => writeText(out, length, options.nvml ?? "12.575.57.08"),
    nvmlSystemGetCudaDriverVersion_v2: (out: Int32Array) => writeU32(out, options.cudaDriver ?? 12090),
    nvmlSystemGetProcessName: (pid: number, out: Uint8Array, length: number) => {
      const name = options.processNames?.[pid];
      return name === undefined ? notFound : writeText(out, length, name);
    },
    nvmlDeviceGetCount_v2: (out: Uint32Array) => (initDepth === 0 ? uninitialized : writeU32(out, gpus.length)),
    nvmlDeviceGetHandleByIndex_v2: (index: number, out: BigUint64Array) => {
      if (initDepth === 0) return uninitialized;
      if (index >= gpus.length) return invalidArgument;
      view(out).setBigUint64(0, BigInt(handleBase + index), true);
      return success;
    },
  };
  // Calls with a device handle first, written out with their struct offsets.
  const deviceCalls: Record<string, (gpu: FakeGpu, ...args: never[]) => number> = {
    nvmlDeviceGetName: (gpu, out: Uint8Array, length: number) => writeText(out, length, gpu.name),
    nvmlDeviceGetUUID: (gpu, out: Uint8Array, length: number) => writeText(out, length, gpu.uuid),
    // busIdLegacy[16] @0, domain @16, bus @20, device @24, pciDeviceId @28, pciSubSystemId @32, busId[32] @36.
    nvmlDeviceGetPciInfo_v3: (gpu, out: Uint8Array) => {
      const [domain, bus, dev] = gpu.busId.split(/[:.]/).map((part) => parseInt(part, 16));
      const v = view(out);
      new Uint8Array(out.buffer, out.byteOffset, 16).set(new TextEncoder().encode(gpu.busId.slice(4)));
      v.setUint32(16, domain!, true);
      v.setUint32(20, bus!, true);
      v.setUint32(24, dev!, true);
      v.setUint32(28, 0x233510de, true);
      v.setUint32(32, 0x18b010de, true);
      new Uint8Array(out.buffer, out.byteOffset + 36, 32).set(new TextEncoder().encode(gpu.busId));
      return success;
    },
    nvmlDeviceGetCurrPcieLinkGeneration: (gpu, out: Uint32Array) => writeU32(out, gpu.pcieGeneration),
    nvmlDeviceGetCurrPcieLinkWidth: (gpu, out: Uint32Array) => writeU32(out, gpu.pcieWidth),
    nvmlDeviceGetClockInfo: (gpu, type: number, out: Uint32Array) => (type === 1 ? writeU32(out, gpu.smMHz) : type === 2 ? writeU32(out, gpu.memoryMHz) : invalidArgument),
    nvmlDeviceGetTemperature: (gpu, sensor: number, out: Uint32Array) => (sensor === 0 ? writeU32(out, gpu.temperatureC) : invalidArgument),
    nvmlDeviceGetPowerUsage: (gpu, out: Uint32Array) => writeU32(out, gpu.powerMilliwatts),
    nvmlDeviceGetEnforcedPowerLimit: (gpu, out: Uint32Array) => writeU32(out, gpu.powerLimitMilliwatts),
    // total @0, free @8, used @16 (used includes the reserved bytes).
    nvmlDeviceGetMemoryInfo: (gpu, out: Uint8Array) => {
      const v = view(out);
      v.setBigUint64(0, gpu.memory.total, true);
      v.setBigUint64(8, gpu.memory.free, true);
      v.setBigUint64(16, gpu.memory.used + gpu.memory.reserved, true);
      return success;
    },
    // version @0, total @8, reserved @16, free @24, used @32; version = sizeof (40) | 2 << 24.
    nvmlDeviceGetMemoryInfo_v2: (gpu, out: Uint8Array) => {
      const v = view(out);
      if (options.memoryV2Mismatch || v.getUint32(0, true) !== (40 | (2 << 24))) return versionMismatch;
      v.setBigUint64(8, gpu.memory.total, true);
      v.setBigUint64(16, gpu.memory.reserved, true);
      v.setBigUint64(24, gpu.memory.free, true);
      v.setBigUint64(32, gpu.memory.used, true);
      return success;
    },
    nvmlDeviceGetComputeMode: (gpu, out: Uint32Array) => writeU32(out, gpu.computeMode),
    nvmlDeviceGetEccMode: (gpu, current: Uint32Array, pending: Uint32Array) => (writeU32(current, gpu.ecc.current), writeU32(pending, gpu.ecc.pending)),
    // gpu @0, memory @4.
    nvmlDeviceGetUtilizationRates: (gpu, out: Uint8Array) => (view(out).setUint32(0, gpu.utilization.gpu, true), view(out).setUint32(4, gpu.utilization.memory, true), success),
    // pid @0, usedGpuMemory @8, gpuInstanceId @16, computeInstanceId @20 (usedGpuCcProtectedMemory @24 on early r535).
    nvmlDeviceGetComputeRunningProcesses_v3: (gpu, count: Uint32Array, infos: Uint8Array | null) => {
      options.beforeProcessQuery?.(gpu);
      const n = gpu.processes.length;
      if (count[0]! < n || (n > 0 && infos === null)) {
        count[0] = n;
        return insufficientSize;
      }
      gpu.processes.forEach((p, i) => {
        const v = new DataView(infos!.buffer, infos!.byteOffset + i * stride, stride);
        v.setUint32(0, p.pid, true);
        v.setBigUint64(8, p.usedGpuMemory, true);
        v.setUint32(16, p.gpuInstanceId ?? 0xffffffff, true);
        v.setUint32(20, p.computeInstanceId ?? 0xffffffff, true);
        if (stride === 32) v.setBigUint64(24, 4096n, true);
      });
      count[0] = n;
      return success;
    },
  };
  for (const [name, body] of Object.entries(deviceCalls)) implementation[name] = device(name, body) as never;
  const absent = new Set(options.absent ?? []);
  if (options.r535ProcessInfo) implementation.nvmlDeviceGetConfComputeMemSizeInfo = () => success;
  else absent.add("nvmlDeviceGetConfComputeMemSizeInfo");
  // Current drivers export nvmlDeviceGetRunningProcessDetailList; the early r535 ones did not.
  if (options.r535ProcessInfo) absent.add("nvmlDeviceGetRunningProcessDetailList");
  else implementation.nvmlDeviceGetRunningProcessDetailList = () => notSupported;
  const recording = recordingSymbols<Record<string, unknown>>("libnvidia-ml", implementation, { calls, failNext });
  // Optional symbols a library lacks are undefined in gpuffi's symbol table.
  const symbols = new Proxy({}, { get: (_, name: string) => (absent.has(name) ? undefined : recording[name]) }) as NvmlApi["symbols"];
  const api: NvmlApi = { path: "/fake/libnvidia-ml.so.1", symbols };
  return {
    api,
    library: new NvmlLibrary(api),
    calls,
    failNext,
    gpus,
    get initDepth() {
      return initDepth;
    },
  };
}
