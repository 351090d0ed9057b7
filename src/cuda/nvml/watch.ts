// Snapshots of every GPU, once or at an interval (`watchGpus`, behind `gpuffi top`), with the
// stats of this process's gpuffi pools beside NVML's figures when the caller hands them in: the
// pool says what gpuffi holds, NVML what the driver charges the process (the pools plus CUDA's
// context, module and library memory).
import process from "node:process";
import type { PoolStats } from "../pool/stats.ts";
import { CudaArgumentError } from "../errors.ts";
import { cudaRuntime } from "../runtime.ts";
import { type GpuStatus, Nvml, type NvmlOpenOptions, type NvmlVersions } from "./nvml.ts";
import { cudaPciBusIds } from "./pci.ts";

/** What a snapshot needs of a pool (DevicePool, PitchedPool and PinnedPool all have it). */
export interface PoolLike {
  readonly kind: string;
  readonly context: { readonly device: number };
  readonly disposed: boolean;
  stats(): PoolStats;
}

export interface PoolReport {
  /** The pool's CUDA device. */
  readonly cudaOrdinal: number;
  readonly kind: string;
  readonly stats: PoolStats;
}

export interface GpuSnapshot {
  /** When it was read (ISO 8601). */
  readonly time: string;
  /** This process, to find it in the GPUs' process lists. */
  readonly pid: number;
  readonly versions: NvmlVersions;
  readonly gpus: readonly GpuStatus[];
  /** The pools the caller asked about (none unless asked). */
  readonly pools: readonly PoolReport[];
}

export interface SnapshotOptions {
  /** CUDA's PCI bus id of each ordinal (default: read from libcudart when it loads, see visibleCudaBusIds). */
  readonly cudaBusIds?: readonly string[];
  /** This process's pools to report beside NVML's figures; disposed ones are left out. */
  readonly pools?: readonly PoolLike[];
}

/** CUDA's PCI bus id of every ordinal this process sees; none when libcudart or a GPU is missing. */
export function visibleCudaBusIds(): string[] {
  try {
    return cudaPciBusIds(cudaRuntime());
  } catch {
    return [];
  }
}

/** Every GPU's status now, with the CUDA ordinals of this process and the pools asked about. */
export function gpuSnapshot(nvml: Nvml, options: SnapshotOptions = {}): GpuSnapshot {
  const gpus = nvml.status(options.cudaBusIds ?? visibleCudaBusIds());
  const pools = (options.pools ?? []).filter((pool) => !pool.disposed).map((pool) => ({ cudaOrdinal: pool.context.device, kind: pool.kind, stats: pool.stats() }));
  return { time: new Date().toISOString(), pid: process.pid, versions: nvml.versions, gpus, pools };
}

export interface WatchOptions extends SnapshotOptions, NvmlOpenOptions {
  /** Seconds between snapshots (default 1), as `gpuffi top --interval`. */
  readonly interval?: number;
  /** Ends the iteration (at once, also while it waits). */
  readonly signal?: AbortSignal;
  /** A session to read from (default: one opened for the iteration and disposed after it). */
  readonly nvml?: Nvml;
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * A snapshot of every GPU now and then every `interval` seconds, until `signal` aborts or the
 * loop breaks. CUDA's bus ids are read once, at the start.
 */
export async function* watchGpus(options: WatchOptions = {}): AsyncGenerator<GpuSnapshot, void, undefined> {
  const interval = options.interval ?? 1;
  if (typeof interval !== "number" || !Number.isFinite(interval) || interval <= 0) {
    throw new CudaArgumentError(`watchGpus: interval must be a number of seconds > 0, got ${String(interval)}`);
  }
  const nvml = options.nvml ?? Nvml.open(options);
  const cudaBusIds = options.cudaBusIds ?? visibleCudaBusIds();
  try {
    while (!options.signal?.aborted) {
      yield gpuSnapshot(nvml, { cudaBusIds, pools: options.pools });
      if (options.signal?.aborted) break;
      await sleep(interval * 1000, options.signal);
    }
  } finally {
    if (!options.nvml) nvml.dispose();
  }
}

/** NVML as `gpuffi doctor` reports it: where it is, its versions and every GPU, or why not. */
export interface GpuHealth {
  readonly found: boolean;
  readonly path?: string;
  readonly versions?: NvmlVersions;
  readonly error?: string;
  readonly gpus: readonly GpuStatus[];
}

/** GpuHealth; never throws (a missing NVML or a failing call is reported in `error`). */
export function gpuHealth(options: { readonly cudaBusIds?: readonly string[]; readonly open?: () => Nvml } = {}): GpuHealth {
  let nvml: Nvml;
  try {
    nvml = (options.open ?? Nvml.open)();
  } catch (error) {
    return { found: false, error: error instanceof Error ? error.message : String(error), gpus: [] };
  }
  try {
    return { found: true, path: nvml.path, versions: nvml.versions, gpus: nvml.status(options.cudaBusIds ?? visibleCudaBusIds()) };
  } catch (error) {
    return { found: true, path: nvml.path, versions: nvml.versions, error: error instanceof Error ? error.message : String(error), gpus: [] };
  } finally {
    nvml.dispose();
  }
}
