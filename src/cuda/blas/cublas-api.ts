// The loaded libcublas: its bindings, its version checked against the loaded libcudart, and the
// typed error for a failed call. A libcublas of one CUDA major version links the libcudart of
// that version, so with a libcudart.so.13 loaded gpuffi looks for libcublas.so.13 first and
// refuses a libcublas.so.12 (it would pull a second CUDA runtime into the process).
import { GpuffiError, type LibrarySpec, type NativeSymbols, Out, type Pointer, loadLibrary } from "../../ffi/index.ts";
import type { CudaContext } from "../context.ts";
import { LibraryProperty, cublasSpec, cublasSymbols } from "./cublas-library.ts";
import { CudaCompatibilityError } from "../errors.ts";
import { type GemmPlan, describeGemm } from "./gemm-plan.ts";
import type { CudaVersion } from "../version.ts";

export type CublasSymbols = NativeSymbols<typeof cublasSymbols>;

/** The C calls the cuBLAS layer makes. Tests substitute a host-memory fake for machines without a GPU. */
export interface CublasApi {
  /** Where libcublas was loaded from. */
  readonly path: string;
  readonly symbols: CublasSymbols;
}

export interface CublasVersion {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
}

/** A cuBLAS call returned an error. */
export class CublasError extends GpuffiError {
  override name = "CublasError";
  /** The cublasStatus_t name, e.g. `CUBLAS_STATUS_INVALID_VALUE`. */
  readonly statusName: string;
  /** libcublas's description of the status. */
  readonly description: string;
  constructor(
    /** The cublasStatus_t value. */
    readonly status: number,
    /** The C function that failed, e.g. `cublasGemmEx`. */
    readonly call: string,
    api: CublasApi,
    /** What was asked (shapes, types), for the message. */
    detail?: string,
  ) {
    const statusName = api.symbols.cublasGetStatusName(status) ?? `cublasStatus ${status}`;
    const description = api.symbols.cublasGetStatusString(status) ?? "unknown status";
    super(`ERR_CUBLAS_${status}`, `${call} failed: ${statusName} (${status}): ${description}${detail ? `. ${detail}` : ""}`);
    this.statusName = statusName;
    this.description = description;
  }
}

/** Throws a CublasError unless `status` is CUBLAS_STATUS_SUCCESS. */
export function checkCublas(api: CublasApi, status: number, call: string, detail?: string): void {
  if (status !== 0) throw new CublasError(status, call, api, detail);
}

/** The library's version from cublasGetProperty (no handle needed). */
export function cublasVersion(api: CublasApi): CublasVersion {
  return libraryVersion(api, (property, out) => api.symbols.cublasGetProperty(property, out), "cublasGetProperty");
}

/** A cuBLAS library's version from its `…GetProperty(libraryPropertyType, int*)` call; failures are CublasErrors of `api`. */
export function libraryVersion(api: CublasApi, getProperty: (property: number, out: ArrayBufferView) => number, call: string): CublasVersion {
  const read = (property: number, name: string) => {
    const out = Out.i32();
    checkCublas(api, getProperty(property, out.buffer), call, name);
    return out.value;
  };
  return { major: read(LibraryProperty.major, "MAJOR_VERSION"), minor: read(LibraryProperty.minor, "MINOR_VERSION"), patch: read(LibraryProperty.patch, "PATCH_LEVEL") };
}

/** Throws CudaCompatibilityError unless the library of `spec` (libcublas by default) and libcudart are of one CUDA major version. */
export function checkCublasRuntime(version: CublasVersion, path: string, runtime: CudaVersion, runtimePath: string, spec: LibrarySpec = cublasSpec): void {
  if (version.major === runtime.major) return;
  throw new CudaCompatibilityError([
    `${spec.name} ${version.major}.${version.minor}.${version.patch} (${path}) belongs to CUDA ${version.major}, but the loaded libcudart is CUDA ${runtime.major}.${runtime.minor} (${runtimePath}). ` +
      `Install cuBLAS for CUDA ${runtime.major}, or point ${spec.envVar} at it.`,
  ]);
}

/** `spec` with `preferred` tried first. */
export function preferSoname(spec: LibrarySpec, preferred: string): LibrarySpec {
  return { ...spec, sonames: [preferred, ...spec.sonames.filter((name) => name !== preferred)] };
}

/** The locator spec with `libcublas.so.<major>` tried first. */
export function cublasSpecFor(major: number): LibrarySpec {
  return preferSoname(cublasSpec, `libcublas.so.${major}`);
}

/**
 * After a GEMM's C call: a CublasError that names the GEMM unless `status` is success; with
 * launchBlocking, waits for the GEMM on `stream` so that a failing kernel is reported here.
 */
export function finishGemm(context: CudaContext, api: CublasApi, status: number, call: string, plan: GemmPlan, stream: Pointer): void {
  if (status !== 0) throw new CublasError(status, call, api, describeGemm(plan));
  if (context.launchBlocking) context.check(context.runtime.symbols.cudaStreamSynchronize(stream), "cudaStreamSynchronize", `after ${call}`);
}

// One binding per file and per major version asked for; libraries stay loaded for the process.
const loaded = new Map<string, CublasApi>();

/** Loads libcublas (the file or directory `path`, else the locator's choice for CUDA `major`). */
export function loadCublas(major: number, path?: string): CublasApi {
  const key = path ?? `major ${major}`;
  let api = loaded.get(key);
  if (!api) {
    const lib = loadLibrary(cublasSpecFor(major), cublasSymbols, path === undefined ? {} : { path });
    api = loaded.get(lib.path) ?? { path: lib.path, symbols: lib.symbols };
    loaded.set(key, api).set(lib.path, api);
  }
  return api;
}
