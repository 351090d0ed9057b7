// gpuffi's memory pools: device, pitched 2D and pinned host memory, over one shared core.
export { BlockPool, type Block, type Arena, type ArenaSpec, type BlockPoolOptions, type PoolEvent, type SegmentSource, PoolOutOfMemoryError } from "./block-pool.ts";
export { CudaSegmentSource, type PoolStream } from "./cuda-source.ts";
export { CudaPool, DevicePool, PooledDeviceBuffer, type PoolOptions, type DevicePoolOptions, type PoolAllocOptions } from "./device-pool.ts";
export { ExpandableMemory } from "./expandable.ts";
export { PinnedPool, PooledPinnedBuffer } from "./pinned-pool.ts";
export { PitchedPool, type PitchedPoolOptions, type PitchedAllocOptions } from "./pitched-pool.ts";
export { Pitched2D, Pitched2DView, ElementSize, type ElementType, type CopyOptions, checkElementType } from "./pitched.ts";
export { LinearArenas, linearUnit, type ExpandableSource } from "./linear.ts";
export { type PoolStats, formatPoolStats, formatBytes } from "./stats.ts";
export { roundToClass, unitsForBytes } from "./size-classes.ts";
