// Linear memory as the device and pinned pools cut it: 256-byte units (cudaMalloc's alignment,
// so every block is aligned as cuBLAS and vector loads want), requests rounded to size classes,
// and two arenas as in PyTorch's allocator: requests up to 1 MiB share 2 MiB segments, larger
// ones get segments of their own size. Keeping small blocks out of large segments stops a
// long-lived small buffer from pinning a large segment that trim() could otherwise release.
import type { Pointer } from "../../ffi/index.ts";
import type { Arena, Block, BlockPool } from "./block-pool.ts";
import { unitsForBytes } from "./size-classes.ts";

export const linearUnit = 256;
const smallRequestUnits = 2 ** 20 / linearUnit;
const smallSegmentUnits = 2 ** 21 / linearUnit;

export class LinearArenas<S> {
  readonly #small: Arena<S>;
  readonly #large: Arena<S>;

  /** @param grow A new segment of `bytes`, or undefined when the memory is exhausted. */
  constructor(readonly pool: BlockPool<S>, grow: (bytes: number) => Pointer | undefined) {
    const growUnits = (units: number) => grow(units * linearUnit);
    this.#small = pool.arena({ bytesPerUnit: linearUnit, segmentUnits: (units) => Math.max(units, smallSegmentUnits), grow: growUnits });
    this.#large = pool.arena({ bytesPerUnit: linearUnit, segmentUnits: (units) => units, grow: growUnits });
  }

  allocate(byteLength: number, stream: S): Block<S> {
    const units = unitsForBytes(byteLength, linearUnit);
    return this.pool.allocate(units <= smallRequestUnits ? this.#small : this.#large, units, byteLength, stream);
  }
}
