// Whether this machine can run the NCCL GPU tests, and with how many GPUs.
import { nccl } from "../../../src/cuda/index.ts";
import { type GpuProbe, probeGpu } from "../gpu-probe.ts";

export const gpu: GpuProbe = probeGpu();

function probeNccl(): string | undefined {
  try {
    nccl();
    return undefined;
  } catch (error) {
    return `libnccl is not installed here (${(error as Error).message.split("\n")[0]})`;
  }
}

/** Why NCCL tests on one GPU skip here, or undefined. */
export const ncclSkip: string | undefined = gpu.reason ?? probeNccl();
/** Why NCCL tests across GPUs skip here, or undefined. */
export const multiGpuSkip: string | undefined = ncclSkip ?? (gpu.deviceCount < 2 ? `needs 2 or more GPUs (this machine has ${gpu.deviceCount})` : undefined);
