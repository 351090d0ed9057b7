// The typed errors of the CUDA layer: failed CUDA calls, bad arguments caught in JS, contexts
// that a sticky error made unusable, version mismatches and out-of-memory.
import { GpuffiError } from "../ffi/index.ts";

/** cudaError_t values gpuffi treats specially (driver_types.h). */
export const CudaStatus = {
  success: 0,
  memoryAllocation: 2,
  insufficientDriver: 35,
  noDevice: 100,
  notReady: 600,
} as const;

// Errors after which "the process must be terminated and relaunched to continue using CUDA"
// (driver_types.h): the device's context is corrupted and every later call fails the same way.
const stickyStatuses = new Set([226, 700, 702, 710, 714, 715, 716, 717, 718, 719, 721, 810, 911]);

export function isStickyStatus(status: number): boolean {
  return stickyStatuses.has(status);
}

/** What `CudaError` needs to describe a status: libcudart's own name and string for it. */
export interface ErrorDescriber {
  errorName(status: number): string;
  errorString(status: number): string;
}

/** A CUDA runtime call returned an error. */
export class CudaError extends GpuffiError {
  override name = "CudaError";
  /** The cudaError_t name, e.g. `cudaErrorIllegalAddress`. */
  readonly errorName: string;
  /** libcudart's description of the error. */
  readonly description: string;
  /** The context is unusable from now on (see {@link isStickyStatus}). */
  readonly sticky: boolean;
  constructor(
    /** The cudaError_t value. */
    readonly status: number,
    /** The C function that failed, e.g. `cudaMalloc`. */
    readonly call: string,
    describer: ErrorDescriber,
    /** Extra context for the message (sizes, device, what to do). */
    detail?: string,
    options?: { cause?: unknown },
  ) {
    const errorName = describer.errorName(status);
    const description = describer.errorString(status);
    const sticky = isStickyStatus(status);
    super(
      `ERR_CUDA_${status}`,
      `${call} failed: ${errorName} (${status}): ${description}` +
        (detail ? `. ${detail}` : "") +
        (sticky ? ". This error is sticky: the device's CUDA context is unusable and the process must be restarted to use it again (see docs/debugging.md)" : ""),
      options,
    );
    this.errorName = errorName;
    this.description = description;
    this.sticky = sticky;
  }
}

/** An argument JS can check was wrong; no CUDA call was made. */
export class CudaArgumentError extends GpuffiError {
  override name = "CudaArgumentError";
  constructor(message: string) {
    super("ERR_CUDA_ARGUMENT", message);
  }
}

/** A context cannot be used: an earlier sticky error broke its device, or it was set up wrong. */
export class CudaStateError extends GpuffiError {
  override name = "CudaStateError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_CUDA_STATE", message, options);
  }
}

/** The loaded runtime and the driver (or the caller's minimums) do not go together. */
export class CudaCompatibilityError extends GpuffiError {
  override name = "CudaCompatibilityError";
  constructor(readonly problems: readonly string[]) {
    super("ERR_CUDA_COMPATIBILITY", `CUDA version check failed:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  }
}

/** An allocation could not be satisfied; the message says how much was asked and what was free. */
export class CudaOutOfMemoryError extends GpuffiError {
  override name = "CudaOutOfMemoryError";
  constructor(
    readonly device: number,
    readonly requestedBytes: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super("ERR_CUDA_OUT_OF_MEMORY", message, options);
  }
}
