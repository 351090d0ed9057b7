// Expandable segments, after PyTorch's `expandable_segments`: one range of virtual addresses,
// reserved once at twice the device's memory (addresses are plentiful; the slack lets free holes
// below the end coexist with a full device), onto whose end physical memory is mapped as the
// pool grows (the driver's virtual memory management: cuMemCreate, cuMemMap, cuMemSetAccess).
// Blocks freed anywhere in it merge with their neighbours into one space, so memory that requests
// of one size gave back serves requests of another, instead of sitting in segments cut to sizes
// no longer asked for. The transformer trace of bench/pool-trace.ts reserves about 1.03× its peak
// live bytes this way, 1.25–1.45× with one cudaMalloc segment per size (docs/pools.md).
import { type NativeLibrary, Out, type Pointer, UnsupportedError, encodeStruct } from "../../ffi/index.ts";
import { driverDescriber, driverLibrary } from "../device.ts";
import { CuMem, cuMemAccessDesc, cuMemAllocationProp, type libcudaSymbols } from "../driver-library.ts";
import { CudaError, CudaStateError } from "../errors.ts";

interface Mapping {
  readonly offset: number;
  readonly bytes: number;
  readonly handle: bigint;
}

interface Reservation {
  readonly bytes: number;
  readonly mappings: Mapping[];
  mappedBytes: number;
}

/** The address ranges of one device's expandable segments, and the physical memory mapped into them. */
export class ExpandableMemory {
  /** Mappings are made in multiples of this (2 MiB on current GPUs). */
  readonly granularity: number;
  readonly #lib: NativeLibrary<typeof libcudaSymbols>;
  readonly #prop: Uint8Array;
  readonly #access: Uint8Array;
  readonly #reserveBytes: number;
  readonly #reservations = new Map<Pointer, Reservation>();

  /** @param totalMemory The device's memory: each address range reserved is twice that. */
  constructor(readonly device: number, totalMemory: number) {
    const lib = driverLibrary();
    this.#lib = lib;
    const cu = lib.symbols;
    const handle = Out.i32();
    this.#check(cu.cuDeviceGet(handle.buffer, device), "cuDeviceGet");
    const supported = Out.i32();
    this.#check(cu.cuDeviceGetAttribute(supported.buffer, CuMem.attributeVmmSupported, handle.value), "cuDeviceGetAttribute");
    if (supported.value !== 1) {
      throw new UnsupportedError(`device ${device} does not support virtual memory management (cuMemCreate/cuMemMap), which expandable segments need; create the pool without expandableSegments`);
    }
    const location = { type: CuMem.locationDevice, id: device };
    this.#prop = encodeStruct(cuMemAllocationProp, {
      type: CuMem.allocationPinned,
      requestedHandleTypes: 0,
      location,
      win32HandleMetaData: 0,
      allocFlags: { compressionType: 0, gpuDirectRDMACapable: 0, usage: 0, reserved: [0, 0, 0, 0] },
    });
    this.#access = encodeStruct(cuMemAccessDesc, { location, flags: CuMem.accessReadWrite });
    const granularity = Out.size();
    this.#check(cu.cuMemGetAllocationGranularity(granularity.buffer, this.#prop, CuMem.granularityMinimum), "cuMemGetAllocationGranularity");
    this.granularity = granularity.value;
    this.#reserveBytes = Math.ceil((2 * totalMemory) / this.granularity) * this.granularity;
  }

  #check(status: number, call: string): void {
    if (status !== 0) throw new CudaError(status, call, driverDescriber(this.#lib), `device ${this.device}`);
  }

  /** A new address range with `bytes` (a multiple of the granularity) mapped at its start; undefined when the device is out of memory. */
  reserve(bytes: number): Pointer | undefined {
    const out = Out.pointer();
    this.#check(this.#lib.symbols.cuMemAddressReserve(out.buffer, this.#reserveBytes, this.granularity, 0, 0n), "cuMemAddressReserve");
    const ptr = out.value;
    const reservation: Reservation = { bytes: this.#reserveBytes, mappings: [], mappedBytes: 0 };
    this.#reservations.set(ptr, reservation);
    if (this.#map(ptr, reservation, bytes)) return ptr;
    this.free(ptr);
    return undefined;
  }

  /** Maps memory onto the end of the range at `ptr` until `bytes` are mapped; false when the device is out of memory. */
  extend(ptr: Pointer, bytes: number): boolean {
    const reservation = this.#reservation(ptr);
    if (bytes > reservation.bytes) return false;
    return this.#map(ptr, reservation, bytes - reservation.mappedBytes);
  }

  #map(ptr: Pointer, reservation: Reservation, bytes: number): boolean {
    if (bytes <= 0) return true;
    if (bytes % this.granularity !== 0) throw new CudaStateError(`expandable segment: ${bytes} bytes is not a multiple of the granularity ${this.granularity}`);
    const cu = this.#lib.symbols;
    const handle = new BigUint64Array(1);
    const status = cu.cuMemCreate(handle, bytes, this.#prop, 0n);
    if (status === CuMem.errorOutOfMemory) return false;
    this.#check(status, "cuMemCreate");
    const offset = reservation.mappedBytes;
    const at = ptr + offset;
    try {
      this.#check(cu.cuMemMap(at, bytes, 0, handle[0]!, 0n), "cuMemMap");
    } catch (error) {
      cu.cuMemRelease(handle[0]!);
      throw error;
    }
    reservation.mappings.push({ offset, bytes, handle: handle[0]! });
    reservation.mappedBytes += bytes;
    this.#check(cu.cuMemSetAccess(at, bytes, this.#access, 1), "cuMemSetAccess");
    return true;
  }

  #reservation(ptr: Pointer): Reservation {
    const reservation = this.#reservations.get(ptr);
    if (!reservation) throw new CudaStateError(`0x${ptr.toString(16)} is not an expandable segment of device ${this.device}`);
    return reservation;
  }

  /** Unmaps and releases the mappings of the range at `ptr` that lie wholly above `bytes` (the device must be idle); returns the bytes still mapped. */
  shrink(ptr: Pointer, bytes: number): number {
    const reservation = this.#reservation(ptr);
    const cu = this.#lib.symbols;
    for (let last = reservation.mappings.at(-1); last && last.offset >= bytes; last = reservation.mappings.at(-1)) {
      this.#check(cu.cuMemUnmap(ptr + last.offset, last.bytes), "cuMemUnmap");
      this.#check(cu.cuMemRelease(last.handle), "cuMemRelease");
      reservation.mappings.pop();
      reservation.mappedBytes = last.offset;
    }
    return reservation.mappedBytes;
  }

  owns(ptr: Pointer): boolean {
    return this.#reservations.has(ptr);
  }

  /** Unmaps and releases all the memory of the range at `ptr`, then the range itself (the device must be idle). */
  free(ptr: Pointer): void {
    const reservation = this.#reservation(ptr);
    const cu = this.#lib.symbols;
    this.#reservations.delete(ptr);
    for (const { offset, bytes, handle } of reservation.mappings) {
      this.#check(cu.cuMemUnmap(ptr + offset, bytes), "cuMemUnmap");
      this.#check(cu.cuMemRelease(handle), "cuMemRelease");
    }
    this.#check(cu.cuMemAddressFree(ptr, reservation.bytes), "cuMemAddressFree");
  }
}
