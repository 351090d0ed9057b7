// Host memory that CUDA did not allocate, page-locked where it lies with cudaHostRegister: a
// memory-mapped file, for one, whose page-cache pages the GPU can then copy from directly.
// Registering pins every page of the range (and faults in what is not resident), so it costs
// time proportional to the range: register what a copy needs, unregister it when done.
import type { Pointer } from "../ffi/index.ts";
import type { CudaContext } from "./context.ts";
import { CudaArgumentError } from "./errors.ts";
import { CudaMemory, checkAllocationSize } from "./memory.ts";

// driver_types.h
const cudaHostRegisterPortable = 0x01;
const cudaHostRegisterReadOnly = 0x08;
/** The flags above, for the ABI check (scripts/abi/tables.ts). */
export const hostRegisterFlags = { cudaHostRegisterPortable, cudaHostRegisterReadOnly } as const;

export interface HostRegisterOptions {
  /**
   * cudaHostRegisterReadOnly: the device only reads the memory. Required for memory the CPU may
   * only read (a PROT_READ mapping), and only where the device reports
   * hostRegisterReadOnlySupported.
   */
  readonly readOnly?: boolean;
}

/** A registered range of host memory; dispose unregisters it (cudaHostUnregister). */
export class RegisteredHostMemory extends CudaMemory {
  readonly readOnly: boolean;

  private constructor(context: CudaContext, ptr: Pointer, byteLength: number, readOnly: boolean) {
    const { symbols } = context.runtime;
    super(context, "RegisteredHostMemory", "cudaHostUnregister", ptr, byteLength, () => symbols.cudaHostUnregister(ptr));
    this.readOnly = readOnly;
  }

  /**
   * Registers `[ptr, ptr + byteLength)`, portable to every device's context. CUDA pins whole
   * pages: two registrations must not share a page, so register page-aligned ranges.
   */
  static register(context: CudaContext, ptr: Pointer, byteLength: number, options: HostRegisterOptions = {}): RegisteredHostMemory {
    checkAllocationSize(byteLength, "RegisteredHostMemory");
    if (typeof ptr !== "number" || !Number.isSafeInteger(ptr) || ptr <= 0) {
      throw new CudaArgumentError(`RegisteredHostMemory: expected a host address (a positive integer), got ${String(ptr)}`);
    }
    const readOnly = options.readOnly ?? false;
    context.activate();
    const status = context.runtime.symbols.cudaHostRegister(ptr, byteLength, cudaHostRegisterPortable | (readOnly ? cudaHostRegisterReadOnly : 0));
    if (status !== 0) {
      const unsupported = readOnly && context.attribute("hostRegisterReadOnlySupported") === 0;
      context.check(status, "cudaHostRegister", unsupported
        ? `device ${context.device} cannot register read-only memory (cudaDevAttrHostRegisterReadOnlySupported is 0)`
        : `${byteLength} bytes at 0x${ptr.toString(16)}${readOnly ? ", read-only" : ""}`);
    }
    return new RegisteredHostMemory(context, ptr, byteLength, readOnly);
  }
}
