// Linear memory as the device and pinned pools cut it: 256-byte units (cudaMalloc's alignment,
// so every block is aligned as cuBLAS and vector loads want), requests rounded to size classes,
// and two arenas as in PyTorch's allocator: requests up to 1 MiB share 2 MiB segments, larger
// ones get segments of their own size. Keeping small blocks out of large segments stops a
// long-lived small buffer from pinning a large segment that trim() could otherwise release.
// With expandable segments there is one arena of one segment for every size instead: freed
// memory of any size merges with its neighbours, and trim() unmaps whatever is free at its end.
import type { Pointer } from "../../ffi/index.ts";
import type { Arena, Block, BlockPool } from "./block-pool.ts";
import { unitsForBytes } from "./size-classes.ts";

export const linearUnit = 256;
const smallRequestUnits = 2 ** 20 / linearUnit;
const smallSegmentUnits = 2 ** 21 / linearUnit;

/** Address ranges that grow in place (expandable.ts on a GPU). */
export interface ExpandableSource {
  /** Bytes are mapped in multiples of this. */
  readonly granularity: number;
  /** A new range with `bytes` mapped; undefined when the memory is exhausted. */
  reserve(bytes: number): Pointer | undefined;
  /** Maps the range at `ptr` up to `bytes`; false when the memory is exhausted. */
  extend(ptr: Pointer, bytes: number): boolean;
  /** Unmaps what it can of the range at `ptr` above `bytes` (the device is idle); returns the bytes still mapped. */
  shrink(ptr: Pointer, bytes: number): number;
}

export class LinearArenas<S> {
  readonly #small: Arena<S>;
  readonly #large: Arena<S>;

  /**
   * @param grow A new segment of `bytes`, or undefined when the memory is exhausted.
   * @param expandable Where one expandable segment serves every request instead.
   */
  constructor(readonly pool: BlockPool<S>, grow: (bytes: number) => Pointer | undefined, expandable?: ExpandableSource) {
    if (expandable) {
      const step = expandable.granularity / linearUnit;
      this.#small = this.#large = pool.arena({
        bytesPerUnit: linearUnit,
        segmentUnits: (units) => Math.ceil(units / step) * step,
        grow: (units) => expandable.reserve(units * linearUnit),
        extend: (ptr, units) => expandable.extend(ptr, units * linearUnit),
        shrink: (ptr, units) => expandable.shrink(ptr, units * linearUnit) / linearUnit,
      });
      return;
    }
    const growUnits = (units: number) => grow(units * linearUnit);
    this.#small = pool.arena({ bytesPerUnit: linearUnit, segmentUnits: (units) => Math.max(units, smallSegmentUnits), grow: growUnits });
    this.#large = pool.arena({ bytesPerUnit: linearUnit, segmentUnits: (units) => units, grow: growUnits });
  }

  allocate(byteLength: number, stream: S): Block<S> {
    const units = unitsForBytes(byteLength, linearUnit);
    return this.pool.allocate(units <= smallRequestUnits ? this.#small : this.#large, units, byteLength, stream);
  }
}
