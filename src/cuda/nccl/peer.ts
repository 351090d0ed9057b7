// Peer access between devices: whether one GPU can map another's memory (NVLink or PCIe P2P),
// turning that mapping on and off, explicit peer copies, and the device-by-device report that
// `gpuffi doctor` prints. Device ordinals are checked in JS against the visible device count.
import { Out } from "../../ffi/index.ts";
import type { CudaContext } from "../context.ts";
import { checkDeviceOrdinal } from "../device.ts";
import { CudaArgumentError } from "../errors.ts";
import { CudaMemory, PinnedHostBuffer, checkRange } from "../memory.ts";
import type { CudaRuntime } from "../runtime.ts";
import type { CudaStream } from "../stream.ts";

// cudaError_t values the peer calls answer for a state that is already as asked.
const peerAccessAlreadyEnabled = 704;
const peerAccessNotEnabled = 705;

/** A device ordinal, or a context whose device is meant. */
export type PeerDevice = number | CudaContext;

function ordinalOf(peer: PeerDevice, runtime: CudaRuntime, what: string): number {
  const device = typeof peer === "number" ? peer : peer?.device;
  if (typeof device !== "number") throw new CudaArgumentError(`${what}: the peer must be a device ordinal or a CudaContext, got ${String(peer)}`);
  checkDeviceOrdinal(device, runtime.deviceCount());
  return device;
}

/**
 * Whether `context`'s device can map `peer`'s memory (cudaDeviceCanAccessPeer). CUDA answers
 * false for a device and itself: it needs no peer mapping for its own memory.
 */
export function canAccessPeer(context: CudaContext, peer: PeerDevice): boolean {
  context.assertUsable();
  const device = ordinalOf(peer, context.runtime, "canAccessPeer");
  const out = Out.i32();
  context.check(context.runtime.symbols.cudaDeviceCanAccessPeer(out.buffer, context.device, device), "cudaDeviceCanAccessPeer");
  return out.value !== 0;
}

/**
 * Maps `peer`'s memory into `context`'s device (cudaDeviceEnablePeerAccess), so kernels there can
 * read and write it and copies go device to device. Idempotent: enabling twice is not an error.
 */
export function enablePeerAccess(context: CudaContext, peer: PeerDevice): void {
  const device = checkPeer(context, peer, "enablePeerAccess");
  context.activate();
  const status = context.runtime.symbols.cudaDeviceEnablePeerAccess(device, 0);
  if (status === peerAccessAlreadyEnabled) return void context.runtime.symbols.cudaGetLastError();
  context.check(status, "cudaDeviceEnablePeerAccess", `device ${context.device} → peer ${device}`);
}

/** Removes the mapping (cudaDeviceDisablePeerAccess). Idempotent, like enablePeerAccess. */
export function disablePeerAccess(context: CudaContext, peer: PeerDevice): void {
  const device = checkPeer(context, peer, "disablePeerAccess");
  context.activate();
  const status = context.runtime.symbols.cudaDeviceDisablePeerAccess(device);
  if (status === peerAccessNotEnabled) return void context.runtime.symbols.cudaGetLastError();
  context.check(status, "cudaDeviceDisablePeerAccess", `device ${context.device} → peer ${device}`);
}

function checkPeer(context: CudaContext, peer: PeerDevice, what: string): number {
  context.assertUsable();
  const device = ordinalOf(peer, context.runtime, what);
  if (device === context.device) throw new CudaArgumentError(`${what}: device ${device} is its own peer; peer access is between two different devices`);
  return device;
}

export interface PeerCopyOptions {
  readonly srcOffset?: number;
  readonly dstOffset?: number;
  /** Bytes to copy (default: the rest of the source after srcOffset). */
  readonly byteLength?: number;
  /**
   * Queue the copy on this stream (of the source's or the destination's device) and return.
   * Without one it runs on the destination's legacy default stream and has completed on return.
   */
  readonly stream?: CudaStream;
}

/**
 * Copies device memory from one device to another (cudaMemcpyPeerAsync). Works without peer
 * access too (CUDA stages through the host then); with it the copy goes over NVLink or PCIe P2P.
 */
export function copyPeer(dst: CudaMemory, src: CudaMemory, options: PeerCopyOptions = {}): void {
  for (const [name, memory] of [["dst", dst], ["src", src]] as const) {
    if (!(memory instanceof CudaMemory) || memory instanceof PinnedHostBuffer) throw new CudaArgumentError(`copyPeer: ${name} must be device memory`);
  }
  const srcOffset = options.srcOffset ?? 0;
  const dstOffset = options.dstOffset ?? 0;
  const byteLength = options.byteLength ?? src.byteLength - srcOffset;
  checkRange("copyPeer (source)", srcOffset, byteLength, src.byteLength);
  checkRange("copyPeer (destination)", dstOffset, byteLength, dst.byteLength);
  const { stream } = options;
  if (stream !== undefined && stream.context.device !== dst.device && stream.context.device !== src.device) {
    throw new CudaArgumentError(`copyPeer: the stream belongs to device ${stream.context.device}, the copy is from device ${src.device} to ${dst.device}`);
  }
  const from = src.address(srcOffset, byteLength);
  const to = dst.address(dstOffset, byteLength);
  const context = stream?.context ?? dst.context;
  const handle = stream ? stream.handleFor(stream.context.device, "copyPeer") : (context.activate(), 0);
  if (byteLength === 0) return;
  context.check(context.runtime.symbols.cudaMemcpyPeerAsync(to, dst.device, from, src.device, byteLength, handle), "cudaMemcpyPeerAsync", `${byteLength} bytes from device ${src.device} to device ${dst.device}`);
  if (!stream || context.launchBlocking) context.check(context.runtime.symbols.cudaStreamSynchronize(handle), "cudaStreamSynchronize", "after cudaMemcpyPeerAsync");
}

/** Which device can map which: `access[i][j]` is true when device i can access device j's memory. */
export interface PeerTopology {
  readonly deviceCount: number;
  readonly access: readonly (readonly boolean[])[];
}

/**
 * The peer-access matrix of every visible device (for `gpuffi doctor`, which lists the devices'
 * names itself). The diagonal is false, as CUDA reports it. Given a CudaRuntime instead of a
 * context it creates no CUDA context at all, as doctor needs: cudaDeviceCanAccessPeer asks the
 * driver about two ordinals and needs none.
 */
export function peerTopology(source: CudaContext | CudaRuntime): PeerTopology {
  const runtime = "assertUsable" in source ? (source.assertUsable(), source.runtime) : source;
  const deviceCount = runtime.deviceCount();
  const out = Out.i32();
  const ordinals = Array.from({ length: deviceCount }, (_, i) => i);
  const access = ordinals.map((i) => ordinals.map((j) => {
    runtime.check(runtime.symbols.cudaDeviceCanAccessPeer(out.buffer, i, j), "cudaDeviceCanAccessPeer");
    return out.value !== 0;
  }));
  return { deviceCount, access };
}

/** The matrix as text, one row per device: `P2P` where device i can access device j, `X` on the diagonal. */
export function formatPeerTopology(topology: PeerTopology): string {
  const cell = (text: string) => text.padEnd(5);
  const header = cell("") + topology.access.map((_, j) => cell(`GPU${j}`)).join("");
  const rows = topology.access.map((row, i) => cell(`GPU${i}`) + row.map((ok, j) => cell(i === j ? "X" : ok ? "P2P" : "-")).join(""));
  return [header, ...rows].map((line) => line.trimEnd()).join("\n");
}
