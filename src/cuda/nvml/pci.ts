// NVML's device indices are not CUDA ordinals: NVML lists every GPU of the machine in PCI order,
// CUDA only those CUDA_VISIBLE_DEVICES lets through, fastest first by default
// (CUDA_DEVICE_ORDER=FASTEST_FIRST). The PCI bus id is what both agree on, written differently:
// NVML `00000000:3B:00.0` (an 8-digit domain), CUDA `0000:3B:00.0` (4 digits).
import type { CudaRuntime } from "../runtime.ts";
import { bufferText } from "./library.ts";

/** `domain:bus:device.function` in NVML's form (`%08X:%02X:%02X.%X`); undefined when `busId` is not a PCI bus id. */
export function canonicalPciBusId(busId: string): string | undefined {
  const match = /^\s*(?:([0-9a-f]{1,8}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})(?:\.([0-7]))?\s*$/i.exec(busId);
  if (!match) return undefined;
  const [, domain = "0", bus, device, fn = "0"] = match;
  const hex = (text: string, digits: number) => parseInt(text, 16).toString(16).toUpperCase().padStart(digits, "0");
  return `${hex(domain, 8)}:${hex(bus!, 2)}:${hex(device!, 2)}.${fn}`;
}

/**
 * For each NVML device (by its bus id), the CUDA ordinal with the same bus id, or null when CUDA
 * does not see it. `cudaBusIds[ordinal]` is CUDA's bus id of each ordinal.
 */
export function matchCudaOrdinals(nvmlBusIds: readonly string[], cudaBusIds: readonly string[]): (number | null)[] {
  const ordinals = new Map<string, number>();
  cudaBusIds.forEach((id, ordinal) => {
    const key = canonicalPciBusId(id);
    if (key !== undefined) ordinals.set(key, ordinal);
  });
  return nvmlBusIds.map((id) => {
    const key = canonicalPciBusId(id);
    return key === undefined ? null : (ordinals.get(key) ?? null);
  });
}

/** CUDA's PCI bus id of every ordinal (cudaDeviceGetPCIBusId: no context is created). */
export function cudaPciBusIds(runtime: CudaRuntime): string[] {
  return Array.from({ length: runtime.deviceCount() }, (_, device) => {
    const bytes = new Uint8Array(32);
    runtime.check(runtime.symbols.cudaDeviceGetPCIBusId(bytes, bytes.length, device), "cudaDeviceGetPCIBusId", device);
    return bufferText(bytes);
  });
}
