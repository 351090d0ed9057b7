// The loaded libcudart of this JS thread: its bindings, versions, error texts, the cached
// current device, and which devices a sticky error has broken. Every CudaContext of the thread
// shares one CudaRuntime; a Worker has its own, as CUDA keeps the current device per OS thread.
import {
  type AsyncSymbols,
  type NativeSymbols,
  type Pointer,
  capabilities,
  environmentValue,
  loadLibrary,
  NativeOut,
  openLibrary,
  Out,
  setEnvironment,
} from "../ffi/index.ts";
import { cudart12Symbols, cudart13Symbols, cudartSpec, cudartSymbols } from "./cudart-library.ts";
import { CudaError, CudaStateError, CudaStatus, type ErrorDescriber } from "./errors.ts";
import { type CudaVersion, checkCompatibility, decodeCudaVersion, formatCudaVersion, linuxDriverVersion } from "./version.ts";

type CudartSymbols = NativeSymbols<typeof cudartSymbols>;

/** The C calls the CUDA layer makes. Tests substitute a host-memory fake for machines without a GPU. */
export interface CudartApi {
  /** Where libcudart was loaded from. */
  readonly path: string;
  readonly symbols: CudartSymbols;
  /** Off-thread variants of the synchronize calls where the runtime's FFI has them (Deno, Node). */
  readonly async: Partial<AsyncSymbols<typeof cudartSymbols>>;
  /** cudaMemcpyAsync from a JS typed array. */
  readonly copyToDevice: CudartSymbols["cudaMemcpyAsyncFromJs"];
  /** cudaMemcpyAsync into a JS typed array. */
  readonly copyToHost: CudartSymbols["cudaMemcpyAsyncToJs"];
  /** cudaMemPrefetchAsync with a device ordinal, -1 meaning the host, in either major version's ABI. */
  prefetch(ptr: Pointer, byteLength: number, device: number, stream: Pointer): number;
  /** cudaMemAdvise with a device ordinal, -1 meaning the host. */
  advise(ptr: Pointer, byteLength: number, advice: number, device: number): number;
}

/** Loads libcudart with the locator and binds the tables that match its major version. */
export function loadCudart(path?: string): CudartApi {
  const lib = loadLibrary(cudartSpec, cudartSymbols, path === undefined ? {} : { path });
  const version = Out.i32();
  lib.symbols.cudaRuntimeGetVersion(version.buffer);
  const major = decodeCudaVersion(version.value).major;
  let prefetch: CudartApi["prefetch"];
  let advise: CudartApi["advise"];
  if (major >= 13) {
    const v13 = openLibrary(cudartSpec.name, lib.path, cudart13Symbols).symbols;
    // cudaMemLocationTypeDevice = 1 with the ordinal; cudaMemLocationTypeHost = 2 ignores the id.
    const location = (device: number) => (device < 0 ? { type: 2, id: 0 } : { type: 1, id: device });
    prefetch = (ptr, n, device, stream) => v13.cudaMemPrefetchAsync(ptr, n, location(device), 0, stream);
    advise = (ptr, n, advice, device) => v13.cudaMemAdvise(ptr, n, advice, location(device));
  } else {
    const v12 = openLibrary(cudartSpec.name, lib.path, cudart12Symbols).symbols;
    // CUDA 12 names the host cudaCpuDeviceId, which is -1 as well.
    prefetch = (ptr, n, device, stream) => v12.cudaMemPrefetchAsync(ptr, n, device, stream);
    advise = (ptr, n, advice, device) => v12.cudaMemAdvise(ptr, n, advice, device);
  }
  return {
    path: lib.path,
    symbols: lib.symbols,
    async: capabilities.nonblockingCalls ? lib.async : {},
    copyToDevice: lib.symbols.cudaMemcpyAsyncFromJs,
    copyToHost: lib.symbols.cudaMemcpyAsyncToJs,
    prefetch,
    advise,
  };
}

// cudaGetDevice's out-parameter, in C memory and shared by every CudaRuntime of this thread (the
// call is synchronous): passed as an address, the call takes each runtime's fast path (see NativeOut).
let deviceSlot: NativeOut<number> | undefined;

export class CudaRuntime implements ErrorDescriber {
  #current = -1;
  #initialized = false;
  readonly #broken = new Map<number, CudaError>();
  readonly #device: NativeOut<number>;
  readonly #getDevice: CudartSymbols["cudaGetDeviceAt"];

  constructor(readonly api: CudartApi) {
    this.#device = deviceSlot ??= NativeOut.alloc("i32");
    this.#getDevice = api.symbols.cudaGetDeviceAt;
  }

  get path(): string {
    return this.api.path;
  }

  get symbols(): CudartSymbols {
    return this.api.symbols;
  }

  errorName(status: number): string {
    return this.api.symbols.cudaGetErrorName(status) ?? `cudaError ${status}`;
  }

  errorString(status: number): string {
    return this.api.symbols.cudaGetErrorString(status) ?? "unknown error";
  }

  /**
   * Throws a CudaError for a failed call. A sticky error marks `device` broken, so that every
   * later call on it fails in JS with a message that says why.
   */
  check(status: number, call: string, device?: number, detail?: string): void {
    if (status === CudaStatus.success) return;
    const error = new CudaError(status, call, this, detail);
    if (error.sticky && device !== undefined && !this.#broken.has(device)) this.#broken.set(device, error);
    throw error;
  }

  /** Throws CudaStateError if a sticky error broke `device` earlier. */
  assertDeviceUsable(device: number): void {
    // Every context call asks: no map lookup while no device is broken.
    if (this.#broken.size === 0) return;
    const error = this.#broken.get(device);
    if (error) {
      throw new CudaStateError(
        `device ${device} is unusable: ${error.call} hit the sticky error ${error.errorName}; CUDA cannot recover it within this process. ` +
          "Restart the process (or the Worker's process); docs/debugging.md shows how to find the faulty kernel.",
        { cause: error },
      );
    }
  }

  /** The sticky error that broke `device`, if any. */
  stickyError(device: number): CudaError | undefined {
    return this.#broken.get(device);
  }

  runtimeVersion(): CudaVersion {
    const out = Out.i32();
    this.check(this.api.symbols.cudaRuntimeGetVersion(out.buffer), "cudaRuntimeGetVersion");
    return decodeCudaVersion(out.value);
  }

  /** The newest CUDA version the driver supports, or undefined when no driver is installed. */
  driverVersion(): CudaVersion | undefined {
    const out = Out.i32();
    this.check(this.api.symbols.cudaDriverGetVersion(out.buffer), "cudaDriverGetVersion");
    return out.value === 0 ? undefined : decodeCudaVersion(out.value);
  }

  /** The number of visible devices; without a usable GPU, a CudaError that says what is missing. */
  deviceCount(): number {
    const out = Out.i32();
    const status = this.api.symbols.cudaGetDeviceCount(out.buffer);
    this.#initialized = true;
    if (status === CudaStatus.noDevice) {
      const visible = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.CUDA_VISIBLE_DEVICES;
      this.check(status, "cudaGetDeviceCount", undefined,
        `No NVIDIA GPU is visible to this process: check that \`nvidia-smi\` lists one${visible !== undefined ? ` and that CUDA_VISIBLE_DEVICES (now "${visible}") includes it` : ""}`);
    }
    if (status === CudaStatus.insufficientDriver) {
      const driver = this.driverVersion();
      const verdict = checkCompatibility({ runtime: this.runtimeVersion(), driver, linuxDriver: linuxDriverVersion(), libraryPath: this.path });
      this.check(status, "cudaGetDeviceCount", undefined,
        verdict.problems.join(" ") || `The driver (CUDA ${driver ? formatCudaVersion(driver) : "none"}) cannot run this libcudart`);
    }
    this.check(status, "cudaGetDeviceCount");
    return out.value;
  }

  /** The device CUDA has current on this thread (cudaGetDevice; the cache is not consulted). */
  currentDevice(): number {
    const device = this.#device;
    const status = this.#getDevice(device.ptr);
    if (status !== CudaStatus.success) this.check(status, "cudaGetDevice");
    return device.value;
  }

  /** Makes `device` current on this thread; free when it already is (the last call is cached). */
  setCurrent(device: number): void {
    if (this.#current === device) return;
    this.check(this.api.symbols.cudaSetDevice(device), "cudaSetDevice", device);
    this.#current = device;
    this.#initialized = true;
  }

  /**
   * Forgets the cached current device. Call it after C code that may switch devices behind
   * gpuffi's back (a library that calls cudaSetDevice itself); the next context call then sets
   * its device again.
   */
  invalidateCurrentDevice(): void {
    this.#current = -1;
  }

  /**
   * Sets CUDA_LAUNCH_BLOCKING=1 in the C environment, which the driver reads once when it
   * initializes: every kernel launch then completes before it returns, in gpuffi and in every
   * library of the process. Too late once CUDA is initialized, so that throws.
   */
  enableLaunchBlocking(): void {
    if (environmentValue("CUDA_LAUNCH_BLOCKING") === "1") return;
    if (this.#initialized) {
      throw new CudaStateError("launchBlocking must be set on the first CudaContext of the process (CUDA reads CUDA_LAUNCH_BLOCKING when it initializes); set CUDA_LAUNCH_BLOCKING=1 in the environment instead");
    }
    setEnvironment("CUDA_LAUNCH_BLOCKING", "1");
  }
}

// Keyed by the path asked for and by the file loaded: one libcudart has one current device per
// thread, so two names for the same file must share one cache.
const runtimes = new Map<string, CudaRuntime>();

/** This thread's CudaRuntime for the libcudart at `path` (default: the locator's choice). */
export function cudaRuntime(path?: string): CudaRuntime {
  const key = path ?? "";
  let runtime = runtimes.get(key);
  if (!runtime) {
    const api = loadCudart(path);
    runtime = runtimes.get(api.path) ?? new CudaRuntime(api);
    runtimes.set(key, runtime).set(api.path, runtime);
  }
  return runtime;
}
