// The typed error of a failed NCCL call: the ncclResult_t, NCCL's own string for it, and the
// communicator's last error message, which usually says what actually went wrong.
import { GpuffiError } from "../../ffi/index.ts";

/** ncclResult_t values (nccl.h). */
export const NcclResult = {
  success: 0,
  unhandledCudaError: 1,
  systemError: 2,
  internalError: 3,
  invalidArgument: 4,
  invalidUsage: 5,
  remoteError: 6,
  inProgress: 7,
} as const;

const resultNames = ["ncclSuccess", "ncclUnhandledCudaError", "ncclSystemError", "ncclInternalError", "ncclInvalidArgument", "ncclInvalidUsage", "ncclRemoteError", "ncclInProgress"];

/** The ncclResult_t name, e.g. `ncclInvalidArgument`. */
export function ncclResultName(status: number): string {
  return resultNames[status] ?? `ncclResult ${status}`;
}

/** An NCCL call returned an error. */
export class NcclError extends GpuffiError {
  override name = "NcclError";
  readonly resultName: string;
  constructor(
    /** The ncclResult_t value. */
    readonly status: number,
    /** The C function that failed, e.g. `ncclCommInitRank`. */
    readonly call: string,
    /** ncclGetErrorString's text for the status. */
    readonly description: string,
    /** ncclGetLastError's message, when NCCL left one. */
    readonly lastError?: string,
    detail?: string,
  ) {
    const resultName = ncclResultName(status);
    super(
      `ERR_NCCL_${status}`,
      `${call} failed: ${resultName} (${status}): ${description}` + (lastError ? ` (${lastError.trim()})` : "") + (detail ? `. ${detail}` : ""),
    );
    this.resultName = resultName;
  }
}
