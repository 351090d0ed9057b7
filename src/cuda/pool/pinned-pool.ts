// PinnedPool: cached page-locked host memory for staging copies. Unlike device memory, the CPU
// writes it outside any stream, so a freed block is reused only after an event recorded at free
// time on its stream has completed, even by the same stream (see the stream rule in block-pool.ts).
import type { CudaContext } from "../context.ts";
import { CudaMemory, type TypedArrayConstructor, checkAllocationSize } from "../memory.ts";
import { type Block, BlockPool } from "./block-pool.ts";
import { CudaSegmentSource, type PoolStream } from "./cuda-source.ts";
import { CudaPool, type PoolAllocOptions, type PoolOptions } from "./device-pool.ts";
import { LinearArenas } from "./linear.ts";

/** Pinned host memory from a PinnedPool, with a zero-copy view; dispose returns it. */
export class PooledPinnedBuffer extends CudaMemory {
  /** Use {@link PinnedPool.alloc}. */
  constructor(readonly pool: PinnedPool, block: Block<PoolStream>, byteLength: number) {
    super(pool.context, "PooledPinnedBuffer", "PinnedPool.free", block.ptr, byteLength, pool.core.releaseOf(block), pool.core);
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

export class PinnedPool extends CudaPool {
  readonly #arenas: LinearArenas<PoolStream>;

  constructor(context: CudaContext, options: PoolOptions = {}) {
    context.activate();
    const source = new CudaSegmentSource(context.runtime, context.device, "cudaFreeHost");
    const core = new BlockPool<PoolStream>(source, { name: `PinnedPool (device ${context.device})`, device: context.device, limit: options.limit, hostAccessible: true });
    super(context, "PinnedPool", core, source);
    this.#arenas = new LinearArenas(core, (bytes) => source.hostAlloc(bytes));
  }

  /**
   * At least `byteLength` bytes of pinned memory. Pass the stream the copies from or into it
   * will run on: the block is not handed out again before that stream's work up to the free is done.
   */
  alloc(byteLength: number, options: PoolAllocOptions = {}): PooledPinnedBuffer {
    checkAllocationSize(byteLength, "PinnedPool.alloc");
    const stream = this.streamFor(options, "PinnedPool.alloc");
    return new PooledPinnedBuffer(this, this.#arenas.allocate(byteLength, stream), byteLength);
  }
}

