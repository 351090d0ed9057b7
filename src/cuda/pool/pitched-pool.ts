// PitchedPool: cached cudaMallocPitch memory. The driver picks the pitch for a row width (on the
// H100, widths 1000/1023/1024 get 1024 and 4097 gets 4608), so the pool keeps one arena per row
// width whose unit is one row of that pitch, learned from the first segment: blocks are whole
// rows, every block starts at an aligned row, and row counts are rounded to size classes.
import type { CudaContext } from "../context.ts";
import { CudaArgumentError, CudaStateError } from "../errors.ts";
import { type Arena, BlockPool } from "./block-pool.ts";
import { CudaSegmentSource, type PoolStream } from "./cuda-source.ts";
import { CudaPool, type PoolAllocOptions, type PoolOptions } from "./device-pool.ts";
import { PinnedPool } from "./pinned-pool.ts";
import { ElementSize, type ElementType, Pitched2D, checkElementType } from "./pitched.ts";
import { roundToClass } from "./size-classes.ts";

// As for linear memory: matrices up to 1 MiB share 2 MiB segments of their width.
const smallRequestBytes = 2 ** 20;
const smallSegmentBytes = 2 ** 21;

export interface PitchedPoolOptions extends PoolOptions {
  /** The pinned pool host copies stage through (default: one the pitched pool owns). */
  readonly staging?: PinnedPool;
}

export interface PitchedAllocOptions extends PoolAllocOptions {
  /** Element type (default "f32"). */
  readonly elementType?: ElementType;
}

export class PitchedPool extends CudaPool {
  readonly #source: CudaSegmentSource;
  readonly #arenas = new Map<number, Arena<PoolStream>>();
  readonly #staging: PinnedPool;
  readonly #ownsStaging: boolean;
  /** cudaDevAttrTexturePitchAlignment: the pitch estimate for a width not seen yet (budget checks only). */
  readonly #pitchAlignment: number;

  constructor(context: CudaContext, options: PitchedPoolOptions = {}) {
    context.activate();
    const source = new CudaSegmentSource(context.runtime, context.device, "cudaFree");
    const core = new BlockPool<PoolStream>(source, { name: `PitchedPool (device ${context.device})`, device: context.device, limit: options.limit });
    super(context, "PitchedPool", core, source);
    this.#source = source;
    this.#pitchAlignment = Math.max(1, context.attribute("texturePitchAlignment"));
    this.#ownsStaging = options.staging === undefined;
    this.#staging = options.staging ?? new PinnedPool(context);
  }

  /** The pool host copies stage through. */
  get staging(): PinnedPool {
    return this.#staging;
  }

  /** A `rows` × `cols` matrix whose rows are `pitch` bytes apart (pitch ≥ cols × element size). */
  alloc(rows: number, cols: number, options: PitchedAllocOptions = {}): Pitched2D {
    const elementType = options.elementType ?? "f32";
    checkElementType(elementType);
    for (const [name, value] of [["rows", rows], ["cols", cols]] as const) {
      if (typeof value !== "number" || !Number.isSafeInteger(value) || value <= 0) {
        throw new CudaArgumentError(`PitchedPool.alloc: ${name} must be a positive whole number, got ${String(value)}`);
      }
    }
    const stream = this.streamFor(options, "PitchedPool.alloc");
    const widthBytes = cols * ElementSize[elementType];
    const arena = this.#arenaFor(widthBytes);
    const block = this.core.allocate(arena, roundToClass(rows), rows * widthBytes, stream);
    return new Pitched2D(this, block, arena.spec.bytesPerUnit, rows, cols, elementType, this.#staging);
  }

  #arenaFor(widthBytes: number): Arena<PoolStream> {
    let arena = this.#arenas.get(widthBytes);
    if (arena) return arena;
    const source = this.#source;
    let learned = false;
    const spec = {
      bytesPerUnit: Math.ceil(widthBytes / this.#pitchAlignment) * this.#pitchAlignment,
      segmentUnits: (rows: number) => (rows * spec.bytesPerUnit <= smallRequestBytes ? Math.max(rows, Math.floor(smallSegmentBytes / spec.bytesPerUnit)) : rows),
      grow: (rows: number) => {
        const segment = source.mallocPitch(widthBytes, rows);
        if (!segment) return undefined;
        if (learned && segment.pitch !== spec.bytesPerUnit) {
          throw new CudaStateError(`cudaMallocPitch returned pitch ${segment.pitch} for width ${widthBytes}, earlier ${spec.bytesPerUnit}`);
        }
        spec.bytesPerUnit = segment.pitch;
        learned = true;
        return segment.ptr;
      },
    };
    arena = this.core.arena(spec);
    this.#arenas.set(widthBytes, arena);
    return arena;
  }

  override trim(): number {
    return super.trim() + (this.#ownsStaging ? this.#staging.trim() : 0);
  }

  override dispose(): void {
    super.dispose();
    if (this.#ownsStaging && !this.#staging.disposed) this.#staging.dispose();
  }
}
