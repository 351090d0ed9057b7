// The loaded libnccl: its bindings, version, unique ids, error texts and group calls. NCCL's
// environment is fixed before the library is loaded: NCCL_NVLS_ENABLE=0 keeps NVLink multicast
// (NVLS) off, which the shared multi-GPU machines require; gpuffi never calls multicast APIs.
import { type NativeSymbols, type Pointer, loadLibrary, Out, setEnvironment } from "../../ffi/index.ts";
import { ncclSpec, ncclSymbols, ncclUniqueIdBytes } from "./nccl-library.ts";
import { NcclError, NcclResult } from "./nccl-errors.ts";
import { type NcclVersion, decodeNcclVersion } from "./nccl-types.ts";

export type NcclSymbols = NativeSymbols<typeof ncclSymbols>;

/** The C calls the NCCL layer makes. Tests substitute a fake for machines without NCCL. */
export interface NcclApi {
  /** Where libnccl was loaded from. */
  readonly path: string;
  readonly symbols: NcclSymbols;
}

/**
 * Sets NCCL_NVLS_ENABLE=0 in the C environment (which NCCL reads, once) and in process.env (which
 * child processes inherit on every runtime). Overwrites: multicast must stay off even when the
 * caller's environment asks for it.
 */
export function disableNvlinkMulticast(): void {
  setEnvironment("NCCL_NVLS_ENABLE", "0");
}

/** Loads libnccl with the locator, after disabling NVLink multicast. */
export function loadNccl(path?: string): NcclApi {
  disableNvlinkMulticast();
  const lib = loadLibrary(ncclSpec, ncclSymbols, path === undefined ? {} : { path });
  return { path: lib.path, symbols: lib.symbols };
}

/** A unique id made by rank 0 (ncclGetUniqueId) and shared with every rank (see rendezvous.ts). */
export type NcclUniqueId = Uint8Array;

/** What the group calls need of a CudaRuntime (kept structural: this module does not load libcudart). */
interface DeviceCache {
  invalidateCurrentDevice(): void;
}

export class Nccl {
  readonly version: NcclVersion;
  readonly #runtimes = new Set<DeviceCache>();

  constructor(readonly api: NcclApi) {
    const out = Out.i32();
    this.check(api.symbols.ncclGetVersion(out.buffer), "ncclGetVersion");
    this.version = decodeNcclVersion(out.value);
  }

  get path(): string {
    return this.api.path;
  }

  get symbols(): NcclSymbols {
    return this.api.symbols;
  }

  errorString(status: number): string {
    return this.api.symbols.ncclGetErrorString(status) ?? "unknown error";
  }

  /** Throws an NcclError for a failed call, with the communicator's last error when there is one (NULL: the library's). */
  check(status: number, call: string, comm: Pointer = 0, detail?: string): void {
    if (status === NcclResult.success) return;
    throw new NcclError(status, call, this.errorString(status), this.api.symbols.ncclGetLastError(comm) || undefined, detail);
  }

  /**
   * Registers the CUDA runtime of a communicator: NCCL may switch the current device while it
   * launches a group over several devices, so after one the runtimes' cached device is dropped.
   */
  registerRuntime(runtime: DeviceCache): void {
    this.#runtimes.add(runtime);
  }

  /** Forgets every registered runtime's cached current device (after NCCL may have switched it). */
  invalidateDevices(): void {
    for (const runtime of this.#runtimes) runtime.invalidateCurrentDevice();
  }

  /** A new unique id for a communicator; rank 0 makes it and shares it with the others. */
  uniqueId(): NcclUniqueId {
    const id = new Uint8Array(ncclUniqueIdBytes);
    this.check(this.api.symbols.ncclGetUniqueId(id), "ncclGetUniqueId");
    return id;
  }

  /**
   * Runs `body` between ncclGroupStart and ncclGroupEnd: the collectives it issues (on one or
   * several communicators of this thread) launch together, as single-process multi-GPU use needs.
   * ncclGroupEnd runs even when `body` throws, so the group is always closed.
   */
  group<T>(body: () => T): T {
    this.check(this.api.symbols.ncclGroupStart(), "ncclGroupStart");
    let result: T;
    try {
      result = body();
    } catch (error) {
      this.api.symbols.ncclGroupEnd();
      this.invalidateDevices();
      throw error;
    }
    const status = this.api.symbols.ncclGroupEnd();
    this.invalidateDevices();
    this.check(status, "ncclGroupEnd");
    return result;
  }
}

const libraries = new Map<string, Nccl>();

/** This thread's Nccl for the libnccl at `path` (default: the locator's choice). */
export function nccl(path?: string): Nccl {
  const key = path ?? "";
  let library = libraries.get(key);
  if (!library) {
    const api = loadNccl(path);
    library = libraries.get(api.path) ?? new Nccl(api);
    libraries.set(key, library).set(api.path, library);
  }
  return library;
}
