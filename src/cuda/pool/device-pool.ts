// DevicePool: cached device memory for one context, handed out as DeviceBuffers that return to
// the pool on dispose (or, if leaked, when the garbage collector finds them, with a warning).
import type { CudaContext } from "../context.ts";
import { ContextResource } from "../context-resource.ts";
import { CudaArgumentError, CudaStateError } from "../errors.ts";
import { DeviceBuffer, checkAllocationSize } from "../memory.ts";
import type { CudaStream } from "../stream.ts";
import { type Block, BlockPool } from "./block-pool.ts";
import { CudaSegmentSource, type PoolStream } from "./cuda-source.ts";
import { ExpandableMemory } from "./expandable.ts";
import { LinearArenas } from "./linear.ts";
import type { PoolStats } from "./stats.ts";

export interface PoolOptions {
  /** Most bytes the pool may hold from the driver (default: no limit). */
  readonly limit?: number;
}

export interface DevicePoolOptions extends PoolOptions {
  /**
   * Serve requests above 1 MiB from one expandable segment (PyTorch's `expandable_segments`): a
   * range of addresses onto whose end memory is mapped as the pool grows, so that memory freed by
   * requests of one size serves requests of any other. Far less memory reserved for workloads
   * whose sizes change (default false, as in PyTorch; needs the driver's virtual memory management,
   * see docs/pools.md).
   */
  readonly expandableSegments?: boolean;
}

export interface PoolAllocOptions {
  /**
   * The stream that will use the memory (default: the legacy default stream). The block is
   * reused at once by later allocations on this stream and by other streams only after the
   * work queued here has completed (docs/pools.md, "The stream rule").
   */
  readonly stream?: CudaStream;
}

/** The common surface of the pools: stats, limit, trim, and disposal that refuses while blocks are out. */
export abstract class CudaPool extends ContextResource {
  readonly #core: BlockPool<PoolStream>;

  protected constructor(context: CudaContext, kind: string, core: BlockPool<PoolStream>, source: CudaSegmentSource) {
    super(context, kind, "memory", source.freeCall, () => {
      core.close();
      source.destroyEvents();
      return 0;
    });
    this.#core = core;
  }

  /**
   * @internal The pool's core, for the buffer classes of the pools. A buffer hands the core's
   * `releaseOf(block)` to its base class and holds the pool itself, so that the pool is never
   * collected (its memory freed) while one of its buffers is in use.
   */
  get core(): BlockPool<PoolStream> {
    return this.#core;
  }

  /** The stream key for an allocation, checked to belong to this pool's device. */
  protected streamFor(options: PoolAllocOptions, what: string): PoolStream {
    this.assertUsable();
    const stream = options.stream;
    if (stream === undefined) return null;
    stream.handleFor(this.context.device, what);
    return stream;
  }

  /** Most bytes the pool may hold; undefined for none. Lowering it releases nothing until the next allocation needs room. */
  get limit(): number | undefined {
    return this.#core.limit;
  }

  set limit(limit: number | undefined) {
    this.#core.limit = limit;
  }

  stats(): PoolStats {
    return this.#core.stats();
  }

  /** Starts the peak figures again from the current ones. */
  resetPeak(): void {
    this.#core.resetPeak();
  }

  /**
   * Waits for the device and gives every cached segment without a live block back to the
   * driver; returns the bytes released.
   */
  trim(): number {
    this.assertUsable();
    return this.#core.releaseCached();
  }

  override toString(): string {
    return this.#core.toString();
  }

  /** Frees all the pool's memory; refused while buffers from it are alive (dispose them first). */
  override dispose(): void {
    if (!this.disposed && this.#core.liveBlocks > 0) {
      throw new CudaStateError(`${this.kind} still has ${this.#core.liveBlocks} live buffer(s); dispose them before the pool`);
    }
    super.dispose();
  }
}

/** A DeviceBuffer from a DevicePool: dispose returns it to the pool. */
export class PooledDeviceBuffer extends DeviceBuffer {
  readonly #block: Block<PoolStream>;

  /** Use {@link DevicePool.alloc}. */
  constructor(readonly pool: DevicePool, block: Block<PoolStream>, byteLength: number) {
    super(pool.context, block.ptr, byteLength, "DevicePool.free", pool.core.releaseOf(block), "PooledDeviceBuffer", pool.core);
    this.#block = block;
  }

  /** The stream it was allocated for (null: the legacy default stream). */
  get stream(): PoolStream {
    return this.#block.stream;
  }

  /**
   * Declares that work on `stream` uses this buffer too (PyTorch's record_stream): when the
   * buffer is freed, an event is recorded on `stream` and nobody reuses the block before it completed.
   */
  recordStream(stream: CudaStream): void {
    this.assertUsable();
    stream.handleFor(this.device, "PooledDeviceBuffer.recordStream");
    this.pool.core.recordStream(this.#block, stream);
  }
}

/** Cached device memory with size classes, splitting, stream-ordered reuse, a limit and stats. */
export class DevicePool extends CudaPool {
  readonly #arenas: LinearArenas<PoolStream>;

  constructor(context: CudaContext, options: DevicePoolOptions = {}) {
    context.activate();
    if (options.expandableSegments !== undefined && typeof options.expandableSegments !== "boolean") {
      throw new CudaArgumentError(`DevicePool: expandableSegments must be a boolean, got ${String(options.expandableSegments)}`);
    }
    const expandable = options.expandableSegments ? new ExpandableMemory(context.device, context.memoryInfo().total) : undefined;
    const source = new CudaSegmentSource(context.runtime, context.device, "cudaFree", expandable);
    const core = new BlockPool<PoolStream>(source, { name: `DevicePool (device ${context.device})`, device: context.device, limit: options.limit });
    super(context, "DevicePool", core, source);
    this.#arenas = new LinearArenas(core, (bytes) => source.malloc(bytes), expandable);
  }

  /** At least `byteLength` bytes of device memory, 256-byte aligned. */
  alloc(byteLength: number, options: PoolAllocOptions = {}): PooledDeviceBuffer {
    checkAllocationSize(byteLength, "DevicePool.alloc");
    const stream = this.streamFor(options, "DevicePool.alloc");
    return new PooledDeviceBuffer(this, this.#arenas.allocate(byteLength, stream), byteLength);
  }
}
