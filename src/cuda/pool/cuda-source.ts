// The pools' SegmentSource on a real device: cudaMalloc / cudaMallocPitch / cudaHostAlloc
// segments and the events of the stream rule. It holds the runtime and the device ordinal, never
// the CudaContext, so a pool's release closure keeps no context alive (see ContextResource).
import { Out, type Pointer } from "../../ffi/index.ts";
import { CudaStatus } from "../errors.ts";
import type { CudaRuntime } from "../runtime.ts";
import type { CudaStream } from "../stream.ts";
import type { PoolEvent, SegmentSource } from "./block-pool.ts";
import type { ExpandableMemory } from "./expandable.ts";

/** A stream key of the pools: a CudaStream, or null for the legacy default stream. */
export type PoolStream = CudaStream | null;

// cudaEventDisableTiming: the pool only asks whether work is done, and untimed events are cheaper.
const cudaEventDisableTiming = 2;
// cudaHostAllocPortable: staging memory usable from every device's context.
const cudaHostAllocPortable = 1;

export class CudaSegmentSource implements SegmentSource<PoolStream> {
  /** Events handed back by the pool, recorded again instead of created. */
  readonly #spareEvents: Pointer[] = [];

  /** @param expandable Where the pool's expandable segments live; free() gives their ranges back there. */
  constructor(readonly runtime: CudaRuntime, readonly device: number, readonly freeCall: "cudaFree" | "cudaFreeHost", readonly expandable?: ExpandableMemory) {}

  #activate(): void {
    this.runtime.setCurrent(this.device);
  }

  #check(status: number, call: string): void {
    this.runtime.check(status, call, this.device);
  }

  /** The pointer, or undefined on cudaErrorMemoryAllocation (cleared, so that it does not resurface later). */
  #allocated(status: number, call: string, out: Out<number>): Pointer | undefined {
    if (status === CudaStatus.memoryAllocation) {
      this.runtime.symbols.cudaGetLastError();
      return undefined;
    }
    this.#check(status, call);
    return out.value;
  }

  malloc(bytes: number): Pointer | undefined {
    this.#activate();
    const out = Out.pointer();
    return this.#allocated(this.runtime.symbols.cudaMalloc(out.buffer, bytes), "cudaMalloc", out);
  }

  hostAlloc(bytes: number): Pointer | undefined {
    this.#activate();
    const out = Out.pointer();
    return this.#allocated(this.runtime.symbols.cudaHostAlloc(out.buffer, bytes, cudaHostAllocPortable), "cudaHostAlloc", out);
  }

  /** `rows` rows of at least `widthBytes`: the pointer and the pitch the driver chose. */
  mallocPitch(widthBytes: number, rows: number): { ptr: Pointer; pitch: number } | undefined {
    this.#activate();
    const out = Out.pointer();
    const pitch = Out.size();
    const ptr = this.#allocated(this.runtime.symbols.cudaMallocPitch(out.buffer, pitch.buffer, widthBytes, rows), "cudaMallocPitch", out);
    return ptr === undefined ? undefined : { ptr, pitch: pitch.value };
  }

  free(ptr: Pointer): void {
    this.#activate();
    if (this.expandable?.owns(ptr)) return this.expandable.free(ptr);
    this.#check(this.runtime.symbols[this.freeCall](ptr), this.freeCall);
  }

  synchronize(): void {
    this.#activate();
    this.#check(this.runtime.symbols.cudaDeviceSynchronize(), "cudaDeviceSynchronize");
  }

  recordEvent(stream: PoolStream): PoolEvent {
    this.#activate();
    const { symbols } = this.runtime;
    let event = this.#spareEvents.pop();
    if (event === undefined) {
      const out = Out.pointer();
      this.#check(symbols.cudaEventCreateWithFlags(out.buffer, cudaEventDisableTiming), "cudaEventCreateWithFlags");
      event = out.value;
    }
    const handle = event;
    // A destroyed stream's queued work still runs but can no longer be recorded on: wait for it all.
    if (stream?.disposed) this.#check(symbols.cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    this.#check(symbols.cudaEventRecord(handle, stream && !stream.disposed ? stream.handle : 0), "cudaEventRecord");
    return {
      query: () => {
        this.#activate();
        const status = symbols.cudaEventQuery(handle);
        if (status === CudaStatus.notReady) return false;
        this.#check(status, "cudaEventQuery");
        return true;
      },
      release: () => void this.#spareEvents.push(handle),
    };
  }

  /** Destroys the spare events (the pool is closing; it released every event it held). */
  destroyEvents(): void {
    if (this.runtime.stickyError(this.device)) return;
    this.#activate();
    for (const event of this.#spareEvents.splice(0)) this.runtime.symbols.cudaEventDestroy(event);
  }
}
