// Pool statistics as plain numbers (CuPy's used_bytes/total_bytes, PyTorch's memory_stats), and
// the one-line form for logs.

/** A snapshot of a pool's accounting; every figure is in bytes or a count. */
export interface PoolStats {
  /** Bytes of blocks handed out and not yet returned (after rounding to size classes). */
  readonly inUseBytes: number;
  /** Bytes callers asked for in the blocks now in use (≤ inUseBytes). */
  readonly requestedBytes: number;
  /** Bytes of free blocks the pool keeps for reuse: reservedBytes − inUseBytes. */
  readonly cachedBytes: number;
  /** Bytes the pool holds from the driver (every segment). */
  readonly reservedBytes: number;
  readonly peakInUseBytes: number;
  readonly peakRequestedBytes: number;
  readonly peakReservedBytes: number;
  /** The pool's byte limit, or undefined for none. */
  readonly limitBytes: number | undefined;
  /** Successful allocations: hits + misses. */
  readonly allocations: number;
  /** Allocations served from cached blocks. */
  readonly hits: number;
  /** Allocations that needed a new segment from the driver. */
  readonly misses: number;
  readonly frees: number;
  /** Cached blocks cut in two to serve a smaller request. */
  readonly splits: number;
  /** Segments taken from / given back to the driver. */
  readonly segmentsAllocated: number;
  readonly segmentsReleased: number;
  /** Freed blocks that wait for another stream's event before anyone may reuse them. */
  readonly pendingBlocks: number;
  /** 1 − largest free block / all free bytes reusable now (pending blocks excluded): 0 when that is one piece or none. */
  readonly fragmentation: number;
}

/** The mutable counters behind a PoolStats snapshot. */
export class PoolCounters {
  inUseBytes = 0;
  requestedBytes = 0;
  reservedBytes = 0;
  peakInUseBytes = 0;
  peakRequestedBytes = 0;
  peakReservedBytes = 0;
  hits = 0;
  misses = 0;
  frees = 0;
  splits = 0;
  segmentsAllocated = 0;
  segmentsReleased = 0;

  use(bytes: number, requested: number): void {
    this.inUseBytes += bytes;
    this.requestedBytes += requested;
    if (this.inUseBytes > this.peakInUseBytes) this.peakInUseBytes = this.inUseBytes;
    if (this.requestedBytes > this.peakRequestedBytes) this.peakRequestedBytes = this.requestedBytes;
  }

  /** Counts a block returned: `bytes` of it, `requested` of them asked for. */
  free(bytes: number, requested: number): void {
    this.inUseBytes -= bytes;
    this.requestedBytes -= requested;
    this.frees++;
  }

  /** Counts `bytes` more reserved: a new segment, or (`extended`) an expandable one grown. */
  reserve(bytes: number, extended = false): void {
    this.reservedBytes += bytes;
    if (!extended) this.segmentsAllocated++;
    if (this.reservedBytes > this.peakReservedBytes) this.peakReservedBytes = this.reservedBytes;
  }

  resetPeak(): void {
    this.peakInUseBytes = this.inUseBytes;
    this.peakRequestedBytes = this.requestedBytes;
    this.peakReservedBytes = this.reservedBytes;
  }
}

export function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(2)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  if (n >= 2 ** 10) return `${(n / 2 ** 10).toFixed(1)} KiB`;
  return `${n} B`;
}

/** One line for logs: what is in use, cached and reserved, and how the cache has done. */
export function formatPoolStats(s: PoolStats): string {
  const limit = s.limitBytes === undefined ? "" : ` of limit ${formatBytes(s.limitBytes)}`;
  const hitRate = s.allocations === 0 ? "" : ` (${((100 * s.hits) / s.allocations).toFixed(1)}% hits)`;
  return `in use ${formatBytes(s.inUseBytes)} (peak ${formatBytes(s.peakInUseBytes)}), cached ${formatBytes(s.cachedBytes)}, ` +
    `reserved ${formatBytes(s.reservedBytes)}${limit} (peak ${formatBytes(s.peakReservedBytes)}); ` +
    `${s.allocations} allocations: ${s.hits} hits, ${s.misses} misses${hitRate}; ${s.frees} frees, ${s.splits} splits; ` +
    `segments ${s.segmentsAllocated} allocated, ${s.segmentsReleased} released; ${s.pendingBlocks} blocks wait for other streams; ` +
    `fragmentation ${(100 * s.fragmentation).toFixed(1)}%`;
}
