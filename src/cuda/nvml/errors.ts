// The typed errors of NVML: a failed call carries its nvmlReturn_t, NVML's name for it and
// nvmlErrorString's text; a library too old for gpuffi says which driver to install.
import { GpuffiError } from "../../ffi/index.ts";

/** nvmlReturn_t values (nvml.h). */
export const NvmlReturn = {
  success: 0,
  uninitialized: 1,
  invalidArgument: 2,
  notSupported: 3,
  noPermission: 4,
  alreadyInitialized: 5,
  notFound: 6,
  insufficientSize: 7,
  insufficientPower: 8,
  driverNotLoaded: 9,
  timeout: 10,
  irqIssue: 11,
  libraryNotFound: 12,
  functionNotFound: 13,
  corruptedInforom: 14,
  gpuIsLost: 15,
  resetRequired: 16,
  operatingSystem: 17,
  libRmVersionMismatch: 18,
  inUse: 19,
  memory: 20,
  noData: 21,
  vgpuEccNotSupported: 22,
  insufficientResources: 23,
  freqNotSupported: 24,
  argumentVersionMismatch: 25,
  deprecated: 26,
  notReady: 27,
  gpuNotFound: 28,
  invalidState: 29,
  unknown: 999,
} as const;

const returnNames = new Map<number, string>(
  Object.entries(NvmlReturn).map(([name, code]) => [code, code === 0 ? "NVML_SUCCESS" : `NVML_ERROR_${name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`]),
);

/** The nvmlReturn_t's name, e.g. `NVML_ERROR_NOT_SUPPORTED`. */
export function nvmlReturnName(status: number): string {
  return returnNames.get(status) ?? `nvmlReturn ${status}`;
}

/** An NVML call returned an error. */
export class NvmlError extends GpuffiError {
  override name = "NvmlError";
  readonly returnName: string;
  constructor(
    /** The nvmlReturn_t value. */
    readonly status: number,
    /** The C function that failed, e.g. `nvmlDeviceGetMemoryInfo_v2`. */
    readonly call: string,
    /** nvmlErrorString's text for the status. */
    readonly description: string,
    detail?: string,
  ) {
    const returnName = nvmlReturnName(status);
    super(`ERR_NVML_${status}`, `${call} failed: ${returnName} (${status}): ${description}${detail ? ` (${detail})` : ""}`);
    this.returnName = returnName;
  }
}

/** The loaded NVML comes with a driver older than gpuffi reads. */
export class NvmlVersionError extends GpuffiError {
  override name = "NvmlVersionError";
  constructor(message: string) {
    super("ERR_NVML_VERSION", message);
  }
}
