// CudaContext: one device, checked versions, and everything allocated on it. Every call made
// through a context makes its device current first (cached per thread, so it is free when the
// device already is current), so several contexts on several GPUs mix freely in one JS thread.
import { NativeResource } from "../ffi/index.ts";
import type { ReleasePhase } from "./context-resource.ts";
import { type DeviceAttributeName, type DeviceInfo, checkDeviceOrdinal, deviceInfo, getDeviceAttribute } from "./device.ts";
import { CudaArgumentError, CudaCompatibilityError } from "./errors.ts";
import { DeviceBuffer, type DeviceAllocOptions, ManagedBuffer, PinnedHostBuffer } from "./memory.ts";
import { type CudaRuntime, cudaRuntime } from "./runtime.ts";
import { CudaEvent, type EventOptions, CudaStream, type StreamOptions } from "./stream.ts";
import {
  type CompatibilityVerdict,
  type CudaVersion,
  checkCompatibility,
  linuxDriverVersion,
  parseCudaVersion,
} from "./version.ts";

export interface CudaContextOptions {
  /** Device ordinal (default 0). */
  readonly device?: number;
  /** Minimum CUDA runtime version, e.g. "12.2". */
  readonly requireRuntime?: string;
  /** Minimum CUDA version the driver must support, e.g. "12.4". */
  readonly requireDriver?: string;
  /** Accept a driver older than the runtime within one major version (default true; see docs/cuda.md). */
  readonly minorVersionCompatibility?: boolean;
  /**
   * Debugging aid: sets CUDA_LAUNCH_BLOCKING=1 before CUDA initializes (so every kernel of the
   * process completes before its launch returns) and makes every stream-ordered operation of this
   * context wait for its stream, so errors surface at the call that caused them. Slow.
   */
  readonly launchBlocking?: boolean;
  /** libcudart to use instead of the locator's choice (a file or a directory). */
  readonly libraryPath?: string;
  /** The runtime to use (tests inject one; default: this thread's for `libraryPath`). */
  readonly runtime?: CudaRuntime;
}

export interface MemoryInfo {
  readonly free: number;
  readonly total: number;
}

const phases: readonly ReleasePhase[] = ["event", "memory", "stream"];

/** A resource the context owns, held weakly so that a leaked one can still be collected. */
interface Owned {
  readonly resource: WeakRef<NativeResource>;
  readonly release: () => void;
}

/**
 * Frees what is left: through dispose() where the object is alive (so it reads as disposed and
 * its finalizer is cancelled), else through its idempotent release. Free errors are not
 * reported here: the context is going away, and a sticky error was reported when it happened.
 */
function releaseOwned(owned: Owned): void {
  const resource = owned.resource.deref();
  if (!resource || resource.disposed) return owned.release();
  try {
    resource.dispose();
  } catch {
    owned.release();
  }
}

/** A CUDA device in use by this JS thread. Dispose it to free everything it still owns. */
export class CudaContext extends NativeResource {
  readonly device: number;
  readonly runtime: CudaRuntime;
  readonly runtimeVersion: CudaVersion;
  /** The newest CUDA version the driver supports. */
  readonly driverVersion: CudaVersion;
  readonly compatibility: CompatibilityVerdict;
  readonly launchBlocking: boolean;
  readonly #owned: Map<ReleasePhase, Set<Owned>>;
  #info: DeviceInfo | undefined;

  private constructor(runtime: CudaRuntime, device: number, versions: { runtime: CudaVersion; driver: CudaVersion }, verdict: CompatibilityVerdict, launchBlocking: boolean) {
    const owned = new Map(phases.map((phase) => [phase, new Set<Owned>()]));
    super(`CudaContext (device ${device})`, () => {
      // Wait for queued work before freeing what it may use; then free in phase order.
      if (!runtime.stickyError(device)) {
        runtime.setCurrent(device);
        runtime.symbols.cudaDeviceSynchronize();
      }
      for (const phase of phases) for (const entry of [...owned.get(phase)!]) releaseOwned(entry);
    });
    this.runtime = runtime;
    this.device = device;
    this.runtimeVersion = versions.runtime;
    this.driverVersion = versions.driver;
    this.compatibility = verdict;
    this.launchBlocking = launchBlocking;
    this.#owned = owned;
  }

  /**
   * Opens `options.device` after checking that the driver supports the loaded libcudart and
   * that both meet the caller's minimums. Arguments are checked before any CUDA call.
   */
  static create(options: CudaContextOptions = {}): CudaContext {
    const device = options.device ?? 0;
    checkDeviceOrdinal(device, Number.MAX_SAFE_INTEGER);
    const requireRuntime = options.requireRuntime === undefined ? undefined : parseCudaVersion(options.requireRuntime, "requireRuntime");
    const requireDriver = options.requireDriver === undefined ? undefined : parseCudaVersion(options.requireDriver, "requireDriver");
    if (options.launchBlocking !== undefined && typeof options.launchBlocking !== "boolean") {
      throw new CudaArgumentError(`launchBlocking must be a boolean, got ${String(options.launchBlocking)}`);
    }
    const runtime = options.runtime ?? cudaRuntime(options.libraryPath);
    if (options.launchBlocking) runtime.enableLaunchBlocking();
    const runtimeVersion = runtime.runtimeVersion();
    const driverVersion = runtime.driverVersion();
    const verdict = checkCompatibility({
      runtime: runtimeVersion,
      driver: driverVersion,
      linuxDriver: linuxDriverVersion(),
      libraryPath: runtime.path,
      requireRuntime,
      requireDriver,
      minorVersionCompatibility: options.minorVersionCompatibility,
    });
    if (!verdict.ok || !driverVersion) throw new CudaCompatibilityError(verdict.problems);
    checkDeviceOrdinal(device, runtime.deviceCount());
    runtime.assertDeviceUsable(device);
    runtime.setCurrent(device);
    return new CudaContext(runtime, device, { runtime: runtimeVersion, driver: driverVersion }, verdict, options.launchBlocking ?? false);
  }

  /**
   * Registers a resource this context owns, disposed with the context in phase order unless it
   * went before. Returns the function that unregisters it. For resource types built on the
   * context (see ContextResource); `release` must be idempotent.
   */
  track(phase: ReleasePhase, resource: NativeResource, release: () => void): () => void {
    const set = this.#owned.get(phase)!;
    const entry: Owned = { resource: new WeakRef(resource), release };
    set.add(entry);
    return () => void set.delete(entry);
  }

  /** Throws if the context was disposed or a sticky error broke its device. */
  assertUsable(): void {
    this.assertLive();
    this.runtime.assertDeviceUsable(this.device);
  }

  /** assertUsable, then makes the device current (free when it already is). */
  activate(): void {
    this.assertUsable();
    this.runtime.setCurrent(this.device);
  }

  /** Throws a CudaError for a failed call on this context's device (sticky errors mark it broken). */
  check(status: number, call: string, detail?: string): void {
    this.runtime.check(status, call, this.device, detail);
  }

  /** Name, UUID, PCI bus id, compute capability, memory and SM count (read once). */
  info(): DeviceInfo {
    this.activate();
    return (this.#info ??= deviceInfo(this.runtime, this.device));
  }

  /** Any cudaDeviceGetAttribute value by name (see DeviceAttribute). */
  attribute(name: DeviceAttributeName): number {
    this.activate();
    return getDeviceAttribute(this.runtime, this.device, name);
  }

  /** Free and total device memory now (cudaMemGetInfo). */
  memoryInfo(): MemoryInfo {
    this.activate();
    const free = new BigUint64Array(1);
    const total = new BigUint64Array(1);
    this.check(this.runtime.symbols.cudaMemGetInfo(free, total), "cudaMemGetInfo");
    return { free: Number(free[0]), total: Number(total[0]) };
  }

  /** Blocks until all work on the device has completed (cudaDeviceSynchronize). */
  synchronize(): void {
    this.activate();
    this.check(this.runtime.symbols.cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  }

  createStream(options?: StreamOptions): CudaStream {
    return CudaStream.create(this, options);
  }

  createEvent(options?: EventOptions): CudaEvent {
    return CudaEvent.create(this, options);
  }

  /** Device memory: cudaMalloc, or cudaMallocAsync when `options.stream` is given. */
  alloc(byteLength: number, options?: DeviceAllocOptions): DeviceBuffer {
    return DeviceBuffer.alloc(this, byteLength, options);
  }

  /** Page-locked host memory (cudaHostAlloc, portable to every device) with a zero-copy view. */
  allocPinned(byteLength: number): PinnedHostBuffer {
    return PinnedHostBuffer.alloc(this, byteLength);
  }

  /** Unified memory (cudaMallocManaged); refused in JS if it exceeds the device's free memory. */
  allocManaged(byteLength: number): ManagedBuffer {
    return ManagedBuffer.alloc(this, byteLength);
  }
}
