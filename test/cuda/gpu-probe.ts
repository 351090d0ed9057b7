// Whether this machine can run the GPU suite; the reason to skip when it cannot.
import { cudaRuntime } from "../../src/cuda/index.ts";

export interface GpuProbe {
  /** libcudart loaded. */
  readonly runtime: boolean;
  readonly available: boolean;
  readonly deviceCount: number;
  /** One line saying why GPU tests skip; undefined when they run. */
  readonly reason: string | undefined;
}

export function probeGpu(): GpuProbe {
  let runtime;
  try {
    runtime = cudaRuntime();
  } catch (error) {
    return { runtime: false, available: false, deviceCount: 0, reason: (error as Error).message.split("\n")[0] };
  }
  try {
    const deviceCount = runtime.deviceCount();
    return { runtime: true, available: true, deviceCount, reason: undefined };
  } catch (error) {
    return { runtime: true, available: false, deviceCount: 0, reason: `no usable GPU: ${(error as Error).message.split(". ")[0]}` };
  }
}
