// NVML sessions and devices: what the driver reports about every GPU while it runs (memory,
// utilization, temperature, power, clocks, PCIe link, ECC, compute mode, processes). A session
// holds one nvmlInit_v2 of its library, refcounted so that the last session's dispose is the one
// nvmlShutdown. Device handles belong to NVML and stay valid while a session is open, so an
// NvmlDevice is not a resource of its own: it checks its session instead.
import { NativeResource, type NativeSymbols, type Pointer, Out, decodeStruct, encodeStruct, environmentValue, loadLibrary } from "../../ffi/index.ts";
import {
  NvmlBufferSize,
  bufferText,
  NvmlClock,
  type NvmlComputeMode,
  nvmlComputeModes,
  nvmlMemory,
  nvmlMemoryV2,
  nvmlMemoryV2Version,
  nvmlMinimumDriverBranch,
  nvmlPciInfo,
  nvmlProcessInfo,
  nvmlProcessInfoR535,
  nvmlSpec,
  nvmlSymbols,
  nvmlTemperatureGpu,
  nvmlUtilization,
  nvmlValueNotAvailable,
} from "./library.ts";
import { NvmlError, NvmlReturn, NvmlVersionError } from "./errors.ts";
import { canonicalPciBusId, matchCudaOrdinals } from "./pci.ts";

export type NvmlSymbols = NativeSymbols<typeof nvmlSymbols>;

/** The C calls the NVML layer makes. Tests substitute a fake for machines without NVML. */
export interface NvmlApi {
  /** Where libnvidia-ml was loaded from. */
  readonly path: string;
  readonly symbols: NvmlSymbols;
}

/** Loads libnvidia-ml with the locator (GPUFFI_NVML, then the usual places). */
export function loadNvml(path?: string): NvmlApi {
  const lib = loadLibrary(nvmlSpec, nvmlSymbols, path === undefined ? {} : { path });
  return { path: lib.path, symbols: lib.symbols };
}

/** One loaded libnvidia-ml. Its sessions share one nvmlInit_v2, shut down with the last of them. */
export class NvmlLibrary {
  #sessions = 0;

  constructor(readonly api: NvmlApi) {}

  get path(): string {
    return this.api.path;
  }

  get symbols(): NvmlSymbols {
    return this.api.symbols;
  }

  /** Open sessions: NVML is initialized while this is above 0. */
  get sessions(): number {
    return this.#sessions;
  }

  errorString(status: number): string {
    return this.api.symbols.nvmlErrorString(status) ?? "unknown error";
  }

  /** Throws an NvmlError for a failed call. */
  check(status: number, call: string, detail?: string): void {
    if (status !== NvmlReturn.success) throw new NvmlError(status, call, this.errorString(status), detail);
  }

  /** nvmlInit_v2 for the first session. */
  acquire(): void {
    if (this.#sessions === 0) this.check(this.api.symbols.nvmlInit_v2(), "nvmlInit_v2");
    this.#sessions++;
  }

  /** nvmlShutdown after the last session. */
  release(): void {
    if (this.#sessions === 0) return;
    if (--this.#sessions === 0) this.check(this.api.symbols.nvmlShutdown(), "nvmlShutdown");
  }

  /**
   * The struct nvmlDeviceGetComputeRunningProcesses_v3 fills: 24 bytes, except on the early r535
   * drivers that filled 32 (see library.ts), which are told apart by the symbols they export.
   */
  get processInfo(): typeof nvmlProcessInfo | typeof nvmlProcessInfoR535 {
    const s = this.api.symbols;
    return s.nvmlDeviceGetConfComputeMemSizeInfo !== undefined && s.nvmlDeviceGetRunningProcessDetailList === undefined ? nvmlProcessInfoR535 : nvmlProcessInfo;
  }
}

const libraries = new Map<string, NvmlLibrary>();

/** This thread's NvmlLibrary for the libnvidia-ml at `path` (default: the locator's choice). */
export function nvmlLibrary(path?: string): NvmlLibrary {
  // The locator's choice follows GPUFFI_NVML, which may change between calls.
  const key = path ?? `$${nvmlSpec.envVar}=${environmentValue(nvmlSpec.envVar) ?? ""}`;
  let library = libraries.get(key);
  if (!library) {
    const api = loadNvml(path);
    library = libraries.get(api.path) ?? new NvmlLibrary(api);
    libraries.set(key, library).set(api.path, library);
  }
  return library;
}

export interface NvmlVersions {
  /** nvmlSystemGetNVMLVersion, e.g. `12.575.57.08`. */
  readonly nvml: string;
  /** nvmlSystemGetDriverVersion, e.g. `575.57.08`. */
  readonly driver: string;
  /** The newest CUDA the driver supports (nvmlSystemGetCudaDriverVersion_v2), e.g. `12.9`. */
  readonly cudaDriver: string;
}

/** Device memory in bytes. `reserved` (what the driver and firmware keep) needs nvmlDeviceGetMemoryInfo_v2; without it `used` includes it. */
export interface NvmlMemoryInfo {
  readonly total: number;
  readonly free: number;
  readonly used: number;
  readonly reserved: number | null;
}

export interface NvmlPciInfo {
  /** NVML's form, `00000000:3B:00.0` (CUDA's is `0000:3B:00.0`; compare them with canonicalPciBusId). */
  readonly busId: string;
  readonly domain: number;
  readonly bus: number;
  readonly device: number;
  /** Device id in the high 16 bits, vendor id (0x10DE) in the low. */
  readonly pciDeviceId: number;
  readonly pciSubSystemId: number;
}

/** A process with a CUDA context on a GPU (nvmlDeviceGetComputeRunningProcesses_v3). */
export interface GpuProcess {
  readonly pid: number;
  /** nvmlSystemGetProcessName, or null when NVML cannot tell (another PID namespace, no permission). */
  readonly name: string | null;
  /** GPU memory it uses, in bytes; null when NVML cannot read it. */
  readonly usedMemory: number | null;
  /** MIG instances it runs on; null outside MIG. */
  readonly gpuInstanceId: number | null;
  readonly computeInstanceId: number | null;
}

/** Everything NVML reports about one GPU at one moment. A field the GPU does not support is null. */
export interface GpuStatus {
  /** NVML's index: every GPU of the machine, whatever CUDA_VISIBLE_DEVICES hides. */
  readonly index: number;
  /** The CUDA ordinal of the same GPU in this process, matched by PCI bus id; null when CUDA does not see it (or was not asked). */
  readonly cudaOrdinal: number | null;
  readonly name: string;
  /** `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, as CUDA's DeviceInfo.uuid. */
  readonly uuid: string;
  /** NVML's form, `00000000:3B:00.0`. */
  readonly pciBusId: string;
  readonly memory: NvmlMemoryInfo | null;
  /** Percent of the last sample period (1/6 s to 1 s) in which a kernel ran / device memory was read or written. */
  readonly utilization: { readonly gpu: number; readonly memory: number } | null;
  /** The die's temperature, °C. */
  readonly temperatureC: number | null;
  /** Watts drawn now (the whole board) and the limit the driver enforces. */
  readonly powerDrawW: number | null;
  readonly powerLimitW: number | null;
  /** Current clocks, MHz. */
  readonly clocks: { readonly smMHz: number | null; readonly memoryMHz: number | null };
  /** The PCIe link as it runs now (it trains down when idle). */
  readonly pcie: { readonly generation: number | null; readonly width: number | null };
  /** ECC now and after the next reboot. */
  readonly ecc: { readonly enabled: boolean; readonly pending: boolean } | null;
  readonly computeMode: NvmlComputeMode | null;
  readonly processes: readonly GpuProcess[] | null;
}

export interface NvmlOpenOptions {
  /** The libnvidia-ml file or its directory (default: GPUFFI_NVML, then the usual places). */
  readonly path?: string;
  /** A library to open a session of, e.g. one over a fake api in tests. */
  readonly library?: NvmlLibrary;
}

/** Parses the driver's branch, `575` of `575.57.08`. */
export function driverBranch(driver: string): number | undefined {
  const match = /^(\d+)\./.exec(driver);
  return match ? Number(match[1]) : undefined;
}

/**
 * A session of NVML: open it, read devices, dispose it. Reads are synchronous C calls of a few
 * microseconds each (a whole status of one GPU: about 15 calls), except the process list and
 * power, which the driver may take a millisecond or so for.
 */
export class Nvml extends NativeResource {
  readonly versions: NvmlVersions;
  readonly #u32 = Out.u32();

  private constructor(readonly library: NvmlLibrary) {
    library.acquire();
    super("Nvml", () => library.release());
    try {
      this.versions = this.#readVersions();
    } catch (error) {
      this.dispose();
      throw error;
    }
  }

  /** Initializes NVML (refcounted per library) and checks that its driver is new enough. */
  static open(options: NvmlOpenOptions = {}): Nvml {
    return new Nvml(options.library ?? nvmlLibrary(options.path));
  }

  get path(): string {
    return this.library.path;
  }

  /** @internal The symbols, after checking the session is open. */
  get symbols(): NvmlSymbols {
    this.assertLive();
    return this.library.symbols;
  }

  /** @internal Throws an NvmlError for a failed call. */
  check(status: number, call: string, detail?: string): void {
    this.library.check(status, call, detail);
  }

  /** @internal Reads an `unsigned int *` out-parameter; null when the device does not support the call. */
  readU32(call: string, fill: (out: Uint32Array) => number, detail?: string): number | null {
    const status = fill(this.#u32.buffer as Uint32Array);
    if (status === NvmlReturn.notSupported) return null;
    this.check(status, call, detail);
    return this.#u32.value;
  }

  #readVersions(): NvmlVersions {
    const s = this.library.symbols;
    const text = (call: "nvmlSystemGetNVMLVersion" | "nvmlSystemGetDriverVersion") => {
      const bytes = new Uint8Array(NvmlBufferSize.version);
      this.check(s[call](bytes, bytes.length), call);
      return bufferText(bytes);
    };
    const nvml = text("nvmlSystemGetNVMLVersion");
    const driver = text("nvmlSystemGetDriverVersion");
    const cuda = Out.i32();
    this.check(s.nvmlSystemGetCudaDriverVersion_v2(cuda.buffer), "nvmlSystemGetCudaDriverVersion_v2");
    const branch = driverBranch(driver);
    const missing = (["nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetComputeRunningProcesses_v3"] as const).filter((name) => s[name] === undefined);
    if (branch === undefined || branch < nvmlMinimumDriverBranch || missing.length > 0) {
      throw new NvmlVersionError(
        `${this.library.path} is NVML ${nvml} of driver ${driver}; gpuffi reads NVML of driver r${nvmlMinimumDriverBranch} or newer` +
          `${missing.length > 0 ? ` (this one lacks ${missing.join(", ")})` : ""}. Install a newer NVIDIA driver, or set GPUFFI_NVML to its libnvidia-ml.so.1.`,
      );
    }
    return { nvml, driver, cudaDriver: `${Math.floor(cuda.value / 1000)}.${Math.floor((cuda.value % 1000) / 10)}` };
  }

  /** GPUs NVML sees (all of the machine's). */
  deviceCount(): number {
    const count = Out.u32();
    this.check(this.symbols.nvmlDeviceGetCount_v2(count.buffer), "nvmlDeviceGetCount_v2");
    return count.value;
  }

  device(index: number): NvmlDevice {
    const handle = Out.pointer();
    this.check(this.symbols.nvmlDeviceGetHandleByIndex_v2(index, handle.buffer), "nvmlDeviceGetHandleByIndex_v2", `index ${index}`);
    return new NvmlDevice(this, index, handle.value);
  }

  devices(): NvmlDevice[] {
    return Array.from({ length: this.deviceCount() }, (_, index) => this.device(index));
  }

  /** The device at a PCI bus id in either NVML's or CUDA's form; undefined when there is none. */
  deviceByPciBusId(busId: string): NvmlDevice | undefined {
    const wanted = canonicalPciBusId(busId);
    return wanted === undefined ? undefined : this.devices().find((d) => canonicalPciBusId(d.pci().busId) === wanted);
  }

  /** nvmlSystemGetProcessName; null when NVML cannot name it (gone, another PID namespace, no permission). */
  processName(pid: number): string | null {
    const bytes = new Uint8Array(NvmlBufferSize.processName);
    return this.symbols.nvmlSystemGetProcessName(pid, bytes, bytes.length) === NvmlReturn.success ? bufferText(bytes) || null : null;
  }

  /**
   * The status of every GPU; `cudaBusIds[ordinal]` (CUDA's PCI bus ids, see cudaPciBusIds) gives
   * each the CUDA ordinal it has in this process.
   */
  status(cudaBusIds: readonly string[] = []): GpuStatus[] {
    const devices = this.devices();
    const ordinals = matchCudaOrdinals(devices.map((d) => d.pci().busId), cudaBusIds);
    return devices.map((d, i) => d.status(ordinals[i] ?? null));
  }
}

/** One GPU as NVML sees it; valid while its session is open. */
export class NvmlDevice {
  constructor(
    readonly session: Nvml,
    /** NVML's index. */
    readonly index: number,
    /** The nvmlDevice_t. */
    readonly handle: Pointer,
  ) {}

  #text(call: "nvmlDeviceGetName" | "nvmlDeviceGetUUID", length: number): string {
    const bytes = new Uint8Array(length);
    this.session.check(this.session.symbols[call](this.handle, bytes, length), call, this.#where);
    return bufferText(bytes);
  }

  get #where(): string {
    return `NVML device ${this.index}`;
  }

  #u32(call: Parameters<Nvml["readU32"]>[0], fill: (out: Uint32Array) => number): number | null {
    return this.session.readU32(call, fill, this.#where);
  }

  name(): string {
    return this.#text("nvmlDeviceGetName", NvmlBufferSize.name);
  }

  uuid(): string {
    return this.#text("nvmlDeviceGetUUID", NvmlBufferSize.uuid);
  }

  pci(): NvmlPciInfo {
    const bytes = new Uint8Array(nvmlPciInfo.size);
    this.session.check(this.session.symbols.nvmlDeviceGetPciInfo_v3(this.handle, bytes), "nvmlDeviceGetPciInfo_v3", this.#where);
    const pci = decodeStruct(nvmlPciInfo, bytes);
    return { busId: bufferText(Uint8Array.from(pci.busId)), domain: pci.domain, bus: pci.bus, device: pci.device, pciDeviceId: pci.pciDeviceId, pciSubSystemId: pci.pciSubSystemId };
  }

  /** nvmlDeviceGetMemoryInfo_v2 (with the reserved bytes), falling back to the first version where the driver refuses the struct version. */
  memory(): NvmlMemoryInfo | null {
    const s = this.session.symbols;
    const v2 = encodeStruct(nvmlMemoryV2, { version: nvmlMemoryV2Version });
    const status = s.nvmlDeviceGetMemoryInfo_v2?.(this.handle, v2) ?? NvmlReturn.functionNotFound;
    if (status === NvmlReturn.success) {
      const m = decodeStruct(nvmlMemoryV2, v2);
      return { total: Number(m.total), free: Number(m.free), used: Number(m.used), reserved: Number(m.reserved) };
    }
    if (status !== NvmlReturn.argumentVersionMismatch && status !== NvmlReturn.functionNotFound && status !== NvmlReturn.notSupported) {
      this.session.check(status, "nvmlDeviceGetMemoryInfo_v2", this.#where);
    }
    const v1 = new Uint8Array(nvmlMemory.size);
    const v1Status = s.nvmlDeviceGetMemoryInfo(this.handle, v1);
    if (v1Status === NvmlReturn.notSupported) return null;
    this.session.check(v1Status, "nvmlDeviceGetMemoryInfo", this.#where);
    const m = decodeStruct(nvmlMemory, v1);
    return { total: Number(m.total), free: Number(m.free), used: Number(m.used), reserved: null };
  }

  utilization(): { gpu: number; memory: number } | null {
    const bytes = new Uint8Array(nvmlUtilization.size);
    const status = this.session.symbols.nvmlDeviceGetUtilizationRates(this.handle, bytes);
    if (status === NvmlReturn.notSupported) return null;
    this.session.check(status, "nvmlDeviceGetUtilizationRates", this.#where);
    return decodeStruct(nvmlUtilization, bytes);
  }

  temperatureC(): number | null {
    return this.#u32("nvmlDeviceGetTemperature", (out) => this.session.symbols.nvmlDeviceGetTemperature(this.handle, nvmlTemperatureGpu, out));
  }

  powerDrawW(): number | null {
    const mW = this.#u32("nvmlDeviceGetPowerUsage", (out) => this.session.symbols.nvmlDeviceGetPowerUsage(this.handle, out));
    return mW === null ? null : mW / 1000;
  }

  powerLimitW(): number | null {
    const mW = this.#u32("nvmlDeviceGetEnforcedPowerLimit", (out) => this.session.symbols.nvmlDeviceGetEnforcedPowerLimit(this.handle, out));
    return mW === null ? null : mW / 1000;
  }

  clockMHz(clock: keyof typeof NvmlClock): number | null {
    return this.#u32("nvmlDeviceGetClockInfo", (out) => this.session.symbols.nvmlDeviceGetClockInfo(this.handle, NvmlClock[clock], out));
  }

  pcie(): { generation: number | null; width: number | null } {
    const s = this.session.symbols;
    return {
      generation: this.#u32("nvmlDeviceGetCurrPcieLinkGeneration", (out) => s.nvmlDeviceGetCurrPcieLinkGeneration(this.handle, out)),
      width: this.#u32("nvmlDeviceGetCurrPcieLinkWidth", (out) => s.nvmlDeviceGetCurrPcieLinkWidth(this.handle, out)),
    };
  }

  ecc(): { enabled: boolean; pending: boolean } | null {
    const current = Out.u32();
    const pending = Out.u32();
    const status = this.session.symbols.nvmlDeviceGetEccMode(this.handle, current.buffer, pending.buffer);
    if (status === NvmlReturn.notSupported) return null;
    this.session.check(status, "nvmlDeviceGetEccMode", this.#where);
    return { enabled: current.value === 1, pending: pending.value === 1 };
  }

  computeMode(): NvmlComputeMode | null {
    const mode = this.#u32("nvmlDeviceGetComputeMode", (out) => this.session.symbols.nvmlDeviceGetComputeMode(this.handle, out));
    return mode === null ? null : (nvmlComputeModes[mode] ?? null);
  }

  /**
   * The processes with a CUDA context on this GPU. NVML says how many entries it needs with
   * NVML_ERROR_INSUFFICIENT_SIZE; processes may start between that call and the next, so it asks
   * again, with room to spare, until the list fits.
   */
  processes(): GpuProcess[] | null {
    const list = this.session.symbols.nvmlDeviceGetComputeRunningProcesses_v3!;
    const layout = this.session.library.processInfo;
    const count = new Uint32Array(1);
    let capacity = 0;
    for (let attempt = 0; attempt < 8; attempt++) {
      count[0] = capacity;
      const infos = capacity === 0 ? null : new Uint8Array(capacity * layout.size);
      const status = list(this.handle, count, infos);
      if (status === NvmlReturn.insufficientSize) {
        capacity = count[0]! + 4;
        continue;
      }
      if (status === NvmlReturn.notSupported) return null;
      this.session.check(status, "nvmlDeviceGetComputeRunningProcesses_v3", this.#where);
      const found = Math.min(count[0]!, capacity);
      return Array.from({ length: found }, (_, i) => {
        const info = decodeStruct(layout, infos!, i * layout.size);
        return {
          pid: info.pid,
          name: this.session.processName(info.pid),
          usedMemory: info.usedGpuMemory === nvmlValueNotAvailable ? null : Number(info.usedGpuMemory),
          gpuInstanceId: info.gpuInstanceId === 0xffff_ffff ? null : info.gpuInstanceId,
          computeInstanceId: info.computeInstanceId === 0xffff_ffff ? null : info.computeInstanceId,
        };
      });
    }
    throw new NvmlError(NvmlReturn.insufficientSize, "nvmlDeviceGetComputeRunningProcesses_v3", this.session.library.errorString(NvmlReturn.insufficientSize), `${this.#where}: the list kept growing`);
  }

  /** Every figure at once; `cudaOrdinal` is what matchCudaOrdinals found for it. */
  status(cudaOrdinal: number | null = null): GpuStatus {
    return {
      index: this.index,
      cudaOrdinal,
      name: this.name(),
      uuid: this.uuid(),
      pciBusId: this.pci().busId,
      memory: this.memory(),
      utilization: this.utilization(),
      temperatureC: this.temperatureC(),
      powerDrawW: this.powerDrawW(),
      powerLimitW: this.powerLimitW(),
      clocks: { smMHz: this.clockMHz("sm"), memoryMHz: this.clockMHz("memory") },
      pcie: this.pcie(),
      ecc: this.ecc(),
      computeMode: this.computeMode(),
      processes: this.processes(),
    };
  }
}
