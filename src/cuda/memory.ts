// Device, pinned-host and managed memory, and the copies between them and JS typed arrays.
// Every size, offset and range is checked in JS before a CUDA call, and every buffer knows its
// device and whether it is still alive (ContextResource), so a bad copy throws instead of
// corrupting memory.
import { Out, type Pointer, nativeView } from "../ffi/index.ts";
import type { CudaContext } from "./context.ts";
import { ContextResource, type ReleaseOrder } from "./context-resource.ts";
import { CudaArgumentError, CudaError, CudaOutOfMemoryError, CudaStatus } from "./errors.ts";
import type { CudaStream } from "./stream.ts";

// cudaMemcpyDefault: with unified addressing CUDA infers each side's kind from the pointer.
const cudaMemcpyDefault = 4;

export interface StreamOption {
  /**
   * Queue the operation on this stream and return without waiting. Without one, the operation
   * runs on the legacy default stream and has completed when the call returns.
   */
  readonly stream?: CudaStream;
}

export interface OffsetOption extends StreamOption {
  /** Byte offset into this buffer (default 0). */
  readonly offset?: number;
}

export interface RangeOption extends OffsetOption {
  /** Bytes to cover (default: to the end of the buffer). */
  readonly byteLength?: number;
}

export interface CopyOption extends StreamOption {
  readonly srcOffset?: number;
  readonly dstOffset?: number;
  /** Bytes to copy (default: the rest of the source after srcOffset). */
  readonly byteLength?: number;
}

/** A typed-array class (Float32Array, Uint8Array, …) that views host memory. */
export type TypedArrayConstructor<T> = { new (buffer: ArrayBuffer): T; readonly BYTES_PER_ELEMENT: number; readonly name: string };

/** A byte count for an allocation: a positive safe integer. */
export function checkAllocationSize(byteLength: unknown, what: string): asserts byteLength is number {
  if (typeof byteLength !== "number" || !Number.isSafeInteger(byteLength) || byteLength <= 0) {
    throw new CudaArgumentError(`${what}: byteLength must be a positive whole number of bytes, got ${String(byteLength)}`);
  }
}

/** Checks that [offset, offset + byteLength) lies within a buffer of `size` bytes. */
export function checkRange(what: string, offset: unknown, byteLength: unknown, size: number): void {
  for (const [name, value] of [["offset", offset], ["byteLength", byteLength]] as const) {
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
      throw new CudaArgumentError(`${what}: ${name} must be a whole number ≥ 0, got ${String(value)}`);
    }
  }
  if ((offset as number) + (byteLength as number) > size) {
    throw new CudaArgumentError(`${what}: bytes [${offset as number}, ${(offset as number) + (byteLength as number)}) are out of range for a buffer of ${size} bytes`);
  }
}

function checkView(view: unknown, what: string): asserts view is ArrayBufferView {
  if (!ArrayBuffer.isView(view)) throw new CudaArgumentError(`${what}: expected a typed array or DataView, got ${view === null ? "null" : typeof view}`);
}

function formatBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${n} bytes`;
}

/** Turns an allocation's cudaErrorMemoryAllocation into CudaOutOfMemoryError with the device's free memory. */
function checkAllocation(context: CudaContext, status: number, call: string, byteLength: number): void {
  if (status !== CudaStatus.memoryAllocation) return context.check(status, call);
  let free = "";
  try {
    const info = context.memoryInfo();
    free = ` (the device has ${formatBytes(info.free)} free of ${formatBytes(info.total)})`;
  } catch {
    // The error below is the one to report.
  }
  throw new CudaOutOfMemoryError(context.device, byteLength, `${call} could not allocate ${formatBytes(byteLength)} on device ${context.device}${free}`, {
    cause: new CudaError(status, call, context.runtime),
  });
}

/** Memory CUDA can copy to and from: device, pinned host or managed. */
export abstract class CudaMemory extends ContextResource {
  // Assigned, not class fields, and TS-private methods, not #private ones (which brand every
  // instance): a pool hit constructs this class's part of every buffer, and V8 does not inline a
  // base class's field initializer into its subclasses' constructors (see ffi/resource.ts).
  /** The address CUDA sees. */
  declare readonly ptr: Pointer;
  declare readonly byteLength: number;

  protected constructor(context: CudaContext, kind: string, freeCall: string, ptr: Pointer, byteLength: number, free: () => number, order: ReleaseOrder = "memory") {
    super(context, kind, order, freeCall, free);
    this.ptr = ptr;
    this.byteLength = byteLength;
  }

  get device(): number {
    return this.context.device;
  }

  /**
   * `ptr + offset` after checking that the buffer is usable and [offset, offset + byteLength)
   * in range; for handing the memory to other libraries (cuBLAS, kernels).
   */
  address(offset = 0, byteLength = 0): Pointer {
    checkRange(`${this.kind}.address`, offset, byteLength, this.byteLength);
    this.assertUsable();
    return this.ptr + offset;
  }

  /** Activates the context and returns the stream handle to queue on (0: the legacy default stream). */
  private streamHandle(stream: CudaStream | undefined, what: string): Pointer {
    this.activate();
    return stream ? stream.handleFor(this.device, `${this.kind}.${what}`) : 0;
  }

  /** Without a stream (or with launchBlocking) the operation must have completed on return. */
  private complete(stream: CudaStream | undefined, handle: Pointer, call: string): void {
    if (stream && !this.context.launchBlocking) return;
    this.context.check(this.context.runtime.symbols.cudaStreamSynchronize(handle), "cudaStreamSynchronize", `after ${call}`);
  }

  /**
   * Copies a JS typed array into this buffer at `offset`. The JS memory may be reused when the
   * call returns (CUDA stages pageable memory before returning); with a stream, the copy into
   * this buffer is ordered on it. (A typed array that views pinned memory is truly
   * asynchronous with a stream: keep it unchanged until the stream is synchronized.)
   */
  write(source: ArrayBufferView, options: OffsetOption = {}): void {
    checkView(source, `${this.kind}.write`);
    const offset = options.offset ?? 0;
    checkRange(`${this.kind}.write`, offset, source.byteLength, this.byteLength);
    const handle = this.streamHandle(options.stream, "write");
    if (source.byteLength === 0) return;
    this.context.check(this.context.runtime.api.copyToDevice(this.ptr + offset, source, source.byteLength, cudaMemcpyDefault, handle), "cudaMemcpyAsync", `${source.byteLength} bytes from JS into ${this.kind}`);
    this.complete(options.stream, handle, "cudaMemcpyAsync");
  }

  /**
   * Copies bytes from `offset` into `target` (default: a new Uint8Array of the rest of the
   * buffer) and returns it. The data is in `target` when the call returns, after the work
   * queued before it on the stream.
   */
  read<T extends ArrayBufferView = Uint8Array>(target?: T, options: OffsetOption = {}): T {
    const offset = options.offset ?? 0;
    if (target !== undefined) checkView(target, `${this.kind}.read`);
    checkRange(`${this.kind}.read`, offset, target?.byteLength ?? 0, this.byteLength);
    const destination = target ?? (new Uint8Array(this.byteLength - offset) as unknown as T);
    const handle = this.streamHandle(options.stream, "read");
    if (destination.byteLength === 0) return destination;
    this.context.check(this.context.runtime.api.copyToHost(destination, this.ptr + offset, destination.byteLength, cudaMemcpyDefault, handle), "cudaMemcpyAsync", `${destination.byteLength} bytes from ${this.kind} into JS`);
    // A pageable destination is complete already; one that views pinned memory is not.
    this.complete(undefined, handle, "cudaMemcpyAsync");
    return destination;
  }

  /** Copies from another CUDA buffer (any kind, any device) into this one. */
  copyFrom(source: CudaMemory, options: CopyOption = {}): void {
    if (!(source instanceof CudaMemory)) throw new CudaArgumentError(`${this.kind}.copyFrom: expected a CUDA buffer as the source`);
    const srcOffset = options.srcOffset ?? 0;
    const dstOffset = options.dstOffset ?? 0;
    const byteLength = options.byteLength ?? source.byteLength - srcOffset;
    checkRange(`${this.kind}.copyFrom (source)`, srcOffset, byteLength, source.byteLength);
    checkRange(`${this.kind}.copyFrom (destination)`, dstOffset, byteLength, this.byteLength);
    const src = source.address(srcOffset, byteLength);
    const handle = this.streamHandle(options.stream, "copyFrom");
    if (byteLength === 0) return;
    this.context.check(this.context.runtime.symbols.cudaMemcpyAsync(this.ptr + dstOffset, src, byteLength, cudaMemcpyDefault, handle), "cudaMemcpyAsync", `${byteLength} bytes from ${source.kind} (device ${source.device}) into ${this.kind} (device ${this.device})`);
    this.complete(options.stream, handle, "cudaMemcpyAsync");
  }

  /** Sets bytes to `value` (cudaMemsetAsync); for device-accessible memory. */
  protected fillBytes(value: number, options: RangeOption): void {
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 255) {
      throw new CudaArgumentError(`${this.kind}.fill: value must be a byte (0–255), got ${String(value)}`);
    }
    const offset = options.offset ?? 0;
    const byteLength = options.byteLength ?? this.byteLength - offset;
    checkRange(`${this.kind}.fill`, offset, byteLength, this.byteLength);
    const handle = this.streamHandle(options.stream, "fill");
    if (byteLength === 0) return;
    this.context.check(this.context.runtime.symbols.cudaMemsetAsync(this.ptr + offset, value, byteLength, handle), "cudaMemsetAsync");
    this.complete(options.stream, handle, "cudaMemsetAsync");
  }

  /**
   * A zero-copy view of host-accessible memory. It is valid only until the buffer is disposed:
   * touching it afterwards reads freed memory, which JS cannot detect.
   */
  protected hostView<T>(type: TypedArrayConstructor<T>): T {
    this.activate();
    if (this.byteLength % type.BYTES_PER_ELEMENT !== 0) {
      throw new CudaArgumentError(`${this.kind}.view: ${this.byteLength} bytes are not a whole number of ${type.name} elements`);
    }
    return new type(nativeView(this.ptr, this.byteLength));
  }
}

export interface DeviceAllocOptions {
  /** Allocate stream-ordered (cudaMallocAsync) on this stream; the free is queued on it too. */
  readonly stream?: CudaStream;
}

/**
 * Device memory. Subclasses (memory pools) pass their own `free`, e.g. one that returns the
 * block to the pool instead of calling cudaFree.
 */
export class DeviceBuffer extends CudaMemory {
  protected constructor(context: CudaContext, ptr: Pointer, byteLength: number, freeCall: string, free: () => number, kind = "DeviceBuffer", order: ReleaseOrder = "memory") {
    super(context, kind, freeCall, ptr, byteLength, free, order);
  }

  /** Use {@link CudaContext.alloc}. */
  static alloc(context: CudaContext, byteLength: number, options: DeviceAllocOptions = {}): DeviceBuffer {
    checkAllocationSize(byteLength, "DeviceBuffer");
    const { stream } = options;
    context.activate();
    const handle = stream?.handleFor(context.device, "DeviceBuffer.alloc");
    const out = Out.pointer();
    const { symbols } = context.runtime;
    if (stream === undefined || handle === undefined) {
      checkAllocation(context, symbols.cudaMalloc(out.buffer, byteLength), "cudaMalloc", byteLength);
      const ptr = out.value;
      return new DeviceBuffer(context, ptr, byteLength, "cudaFree", () => symbols.cudaFree(ptr));
    }
    checkAllocation(context, symbols.cudaMallocAsync(out.buffer, byteLength, handle), "cudaMallocAsync", byteLength);
    const ptr = out.value;
    const unretain = stream.retainAllocation();
    // Capturing the stream keeps it reachable until this buffer's free has run, even if both leak.
    return new DeviceBuffer(context, ptr, byteLength, "cudaFreeAsync", () => {
      unretain();
      return symbols.cudaFreeAsync(ptr, stream.handle);
    });
  }

  /**
   * Device memory another library owns (a ggml buffer, say), lent for copies and collectives:
   * disposing it frees nothing. The owner must keep the memory alive while this is in use.
   */
  static borrow(context: CudaContext, ptr: Pointer, byteLength: number): DeviceBuffer {
    checkAllocationSize(byteLength, "DeviceBuffer.borrow");
    if (!Number.isSafeInteger(ptr) || ptr <= 0) throw new CudaArgumentError(`DeviceBuffer.borrow: expected a device address, got ${ptr}`);
    return new DeviceBuffer(context, ptr, byteLength, "nothing (borrowed)", () => 0, "BorrowedDeviceBuffer");
  }

  /** Sets bytes to `value` (0–255) over `[offset, offset + byteLength)`. */
  fill(value: number, options: RangeOption = {}): void {
    this.fillBytes(value, options);
  }
}

/** Page-locked host memory: fast and truly asynchronous copies, and a zero-copy JS view. */
export class PinnedHostBuffer extends CudaMemory {
  private constructor(context: CudaContext, ptr: Pointer, byteLength: number) {
    const { symbols } = context.runtime;
    super(context, "PinnedHostBuffer", "cudaFreeHost", ptr, byteLength, () => symbols.cudaFreeHost(ptr));
  }

  /** Use {@link CudaContext.allocPinned}. */
  static alloc(context: CudaContext, byteLength: number): PinnedHostBuffer {
    checkAllocationSize(byteLength, "PinnedHostBuffer");
    context.activate();
    const out = Out.pointer();
    // cudaHostAllocPortable: usable by every device's context, not only this one.
    checkAllocation(context, context.runtime.symbols.cudaHostAlloc(out.buffer, byteLength, 1), "cudaHostAlloc", byteLength);
    return new PinnedHostBuffer(context, out.value, byteLength);
  }

  /** Zero-copy bytes; valid until dispose. */
  bytes(): Uint8Array {
    return this.hostView(Uint8Array);
  }

  /** Zero-copy typed view, e.g. `view(Float32Array)`; valid until dispose. */
  view<T>(type: TypedArrayConstructor<T>): T {
    return this.hostView(type);
  }
}

/** cudaMemoryAdvise values by name. */
export const ManagedAdvice = {
  setReadMostly: 1,
  unsetReadMostly: 2,
  setPreferredLocation: 3,
  unsetPreferredLocation: 4,
  setAccessedBy: 5,
  unsetAccessedBy: 6,
} as const;
export type ManagedAdviceName = keyof typeof ManagedAdvice;

/** Where managed memory should live: this buffer's device or the host. */
export type ManagedLocation = "device" | "host";

/**
 * Unified memory, migrated on demand between host and device. The host view must not be
 * touched while kernels may use the memory on devices without concurrentManagedAccess.
 */
export class ManagedBuffer extends CudaMemory {
  private constructor(context: CudaContext, ptr: Pointer, byteLength: number) {
    const { symbols } = context.runtime;
    super(context, "ManagedBuffer", "cudaFree", ptr, byteLength, () => symbols.cudaFree(ptr));
  }

  /** Use {@link CudaContext.allocManaged}. */
  static alloc(context: CudaContext, byteLength: number): ManagedBuffer {
    checkAllocationSize(byteLength, "ManagedBuffer");
    // Oversubscribed managed memory "succeeds" and then thrashes or gets the process killed: refuse it here.
    const { free, total } = context.memoryInfo();
    if (byteLength > free) {
      throw new CudaOutOfMemoryError(context.device, byteLength,
        `ManagedBuffer: ${formatBytes(byteLength)} is more than device ${context.device} has free (${formatBytes(free)} of ${formatBytes(total)}); gpuffi does not oversubscribe managed memory`);
    }
    const out = Out.pointer();
    // cudaMemAttachGlobal: accessible from any stream on any device.
    checkAllocation(context, context.runtime.symbols.cudaMallocManaged(out.buffer, byteLength, 1), "cudaMallocManaged", byteLength);
    return new ManagedBuffer(context, out.value, byteLength);
  }

  #location(where: ManagedLocation, what: string): number {
    if (where !== "device" && where !== "host") throw new CudaArgumentError(`ManagedBuffer.${what}: location must be "device" or "host", got ${String(where)}`);
    return where === "host" ? -1 : this.device;
  }

  /** Migrates `[offset, offset + byteLength)` to the device or the host, ordered on the stream. */
  prefetch(where: ManagedLocation, options: RangeOption = {}): void {
    const location = this.#location(where, "prefetch");
    const offset = options.offset ?? 0;
    const byteLength = options.byteLength ?? this.byteLength - offset;
    const ptr = this.address(offset, byteLength);
    this.activate();
    const handle = options.stream ? options.stream.handleFor(this.device, "ManagedBuffer.prefetch") : 0;
    this.context.check(this.context.runtime.api.prefetch(ptr, byteLength, location, handle), "cudaMemPrefetchAsync");
    if (!options.stream || this.context.launchBlocking) this.context.check(this.context.runtime.symbols.cudaStreamSynchronize(handle), "cudaStreamSynchronize", "after cudaMemPrefetchAsync");
  }

  /** cudaMemAdvise over the whole buffer (or a range). */
  advise(advice: ManagedAdviceName, where: ManagedLocation = "device", range: { offset?: number; byteLength?: number } = {}): void {
    const code = ManagedAdvice[advice];
    if (code === undefined) throw new CudaArgumentError(`ManagedBuffer.advise: unknown advice ${JSON.stringify(advice)}; known: ${Object.keys(ManagedAdvice).join(", ")}`);
    const location = this.#location(where, "advise");
    const offset = range.offset ?? 0;
    const byteLength = range.byteLength ?? this.byteLength - offset;
    const ptr = this.address(offset, byteLength);
    this.activate();
    this.context.check(this.context.runtime.api.advise(ptr, byteLength, code, location), "cudaMemAdvise");
  }

  /** Sets bytes to `value` (0–255). */
  fill(value: number, options: RangeOption = {}): void {
    this.fillBytes(value, options);
  }

  /** Zero-copy bytes on the host; valid until dispose. */
  bytes(): Uint8Array {
    return this.hostView(Uint8Array);
  }

  /** Zero-copy typed host view; valid until dispose. */
  view<T>(type: TypedArrayConstructor<T>): T {
    return this.hostView(type);
  }
}
