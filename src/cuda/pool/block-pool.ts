// The bookkeeping every gpuffi pool shares, after CuPy's SingleDeviceMemoryPool: segments taken
// from the memory below are cut into blocks, reused best-fit from per-stream free lists, split
// and merged; a byte limit fails before the driver is asked, and a driver OOM frees the cache
// and retries once. Cached memory goes back to the driver only then and on trim(), never on a
// miss: cudaFree synchronizes the device, and a loop whose sizes vary would pay a
// cudaMalloc/cudaFree pair (~96 µs on the H100) on every new largest size (PyTorch and CuPy keep
// their cache the same way). An expandable arena (ArenaSpec.extend) is one segment that grows in
// place instead, and trim() unmaps its free end. It knows nothing about CUDA: a SegmentSource
// supplies memory and events, so the same code runs on the GPU and, in tests, on host memory
// with events the test completes.
//
// The stream rule (PyTorch's caching allocator, record_stream included): a block freed on stream
// S goes back to S's free list and is reused at once by allocations on S, since S runs its work
// in order. Another stream T may take it only after an event on S has completed. The event is
// recorded when T first asks (one event for all of S's free blocks, never one per free on the
// hot path): recorded at or after the free, it completes only after everything S queued before
// the free. A block also used on other streams (recordStream), or host-visible memory (pinned
// staging buffers, which the CPU writes outside any stream), gets events recorded at free time
// on every stream that used it and is reused by nobody until they all completed. A stream's
// list may absorb free neighbours from the list for every stream (any stream may take those),
// never the other way round.
import type { Pointer } from "../../ffi/index.ts";
import { CudaArgumentError, CudaOutOfMemoryError, CudaStateError } from "../errors.ts";
import { PoolCounters, type PoolStats, formatBytes, formatPoolStats } from "./stats.ts";

/** A point in one stream's work, as the pool sees a CUDA event. */
export interface PoolEvent {
  /** True once the work captured by the event has completed. */
  query(): boolean;
  /** Hands the event back to its source, which may record it again. */
  release(): void;
}

/** The memory and events below a pool: CUDA on the GPU, host memory in tests. */
export interface SegmentSource<S> {
  /** Captures the work queued on `stream` so far. */
  recordEvent(stream: S): PoolEvent;
  /** Waits until all queued work of the device has completed. */
  synchronize(): void;
  /** Gives a segment back to the driver; called only after synchronize(). */
  free(ptr: Pointer): void;
}

/** One shape of memory: the unit blocks are cut in, and how to get a segment. */
export interface ArenaSpec {
  /** Bytes per unit: 256 for linear memory, the pitch for pitched rows (learned at the first grow). */
  bytesPerUnit: number;
  /** Units of a new segment that must hold `units` (larger segments are split for later requests). */
  segmentUnits(units: number): number;
  /** A new segment of `units` units, or undefined when the driver is out of memory. */
  grow(units: number): Pointer | undefined;
  /**
   * Expandable arenas (one segment that grows in place, see expandable.ts): maps memory onto the
   * end of the segment at `ptr` until it has `units` units; false when the driver is out of memory.
   */
  extend?(ptr: Pointer, units: number): boolean;
  /** Expandable arenas: unmaps what it can above `units` units (the device is idle); returns the units still mapped. */
  shrink?(ptr: Pointer, units: number): number;
}

class Segment<S> {
  first!: Block<S>;
  constructor(readonly arena: Arena<S>, readonly ptr: Pointer, public units: number) {}

  get last(): Block<S> {
    let block = this.first;
    while (block.next) block = block.next;
    return block;
  }
}

/** A piece of a segment: in use, in a free list, or waiting for events (pending). */
export class Block<S> {
  prev: Block<S> | undefined;
  next: Block<S> | undefined;
  /** The free list holding the block; undefined while it is in use or pending. */
  list: FreeList<S> | undefined;
  inUse = false;
  requestedBytes = 0;
  /** The stream it was allocated on. */
  stream!: S;
  /** Other streams that used it (recordStream). */
  otherStreams: S[] | undefined;
  /** Returns the block to its pool, made once per block and shared by every buffer it backs. */
  release: (() => number) | undefined;
  readonly ptr: Pointer;
  readonly #unitBytes: number;

  constructor(readonly segment: Segment<S>, readonly offset: number, public units: number) {
    this.#unitBytes = segment.arena.spec.bytesPerUnit;
    this.ptr = segment.ptr + offset * this.#unitBytes;
  }

  get bytes(): number {
    return this.units * this.#unitBytes;
  }
}

/**
 * Free blocks ordered by (size, address), so the first fit is the best fit, and blocks parked
 * by size: returned on the list's stream and not merged yet. A loop that frees and allocates the
 * same size takes the parked block back without splitting and merging its neighbours; parked
 * blocks are merged in (unparked) as soon as a request of another size misses.
 */
class FreeList<S> {
  readonly blocks: Block<S>[] = [];
  readonly #parked = new Map<number, Block<S>[]>();
  #parkedCount = 0;
  // The size parked or taken last and its stack: a loop of one size finds it without a map lookup.
  #lastUnits = -1;
  #lastParked: Block<S>[] | undefined;

  /**
   * @param shared For a stream's list, the arena's list for every stream: its free neighbours are
   *   merged in too (a block every stream may take may be taken by this one), so that memory
   *   split off for one stream joins its neighbours again when that stream frees it.
   */
  constructor(readonly shared?: FreeList<S>) {}

  #lowerBound(units: number, ptr: Pointer): number {
    const blocks = this.blocks;
    let lo = 0;
    let hi = blocks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const b = blocks[mid]!;
      if (b.units < units || (b.units === units && b.ptr < ptr)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  insert(block: Block<S>): void {
    this.blocks.splice(this.#lowerBound(block.units, block.ptr), 0, block);
    block.list = this;
  }

  remove(block: Block<S>): void {
    this.blocks.splice(this.#lowerBound(block.units, block.ptr), 1);
    block.list = undefined;
  }

  bestFit(units: number): Block<S> | undefined {
    return this.blocks[this.#lowerBound(units, -1)];
  }

  /** Puts a free block in the list, merged with its neighbours where they are free in it (or in `shared`). */
  insertMerged(block: Block<S>): void {
    let b = block;
    const prev = b.prev;
    if (prev && prev.list && (prev.list === this || prev.list === this.shared)) {
      prev.list.remove(prev);
      prev.units += b.units;
      prev.next = b.next;
      if (b.next) b.next.prev = prev;
      b = prev;
    }
    const next = b.next;
    if (next && next.list && (next.list === this || next.list === this.shared)) {
      next.list.remove(next);
      b.units += next.units;
      b.next = next.next;
      if (next.next) next.next.prev = b;
    }
    this.insert(b);
  }

  #parkedOf(units: number, create: boolean): Block<S>[] | undefined {
    if (units === this.#lastUnits) return this.#lastParked;
    let same = this.#parked.get(units);
    if (same === undefined && create) this.#parked.set(units, (same = []));
    if (same !== undefined) {
      this.#lastUnits = units;
      this.#lastParked = same;
    }
    return same;
  }

  #clearParked(): void {
    this.#parked.clear();
    this.#parkedCount = 0;
    this.#lastUnits = -1;
    this.#lastParked = undefined;
  }

  park(block: Block<S>): void {
    this.#parkedOf(block.units, true)!.push(block);
    this.#parkedCount++;
  }

  /** A parked block of exactly `units`, taken out of the list. */
  takeParked(units: number): Block<S> | undefined {
    if (this.#parkedCount === 0) return undefined;
    const block = this.#parkedOf(units, false)?.pop();
    if (block) this.#parkedCount--;
    return block;
  }

  /** Merges the parked blocks into the sorted list. */
  unpark(): void {
    if (this.#parkedCount === 0) return;
    const parked = [...this.#parked.values()];
    this.#clearParked();
    for (const blocks of parked) for (const block of blocks) this.insertMerged(block);
  }

  /** The largest free block, parked or not. */
  largest(): number {
    let units = this.blocks[this.blocks.length - 1]?.units ?? 0;
    for (const [size, blocks] of this.#parked) if (blocks.length > 0 && size > units) units = size;
    return units;
  }

  /** Empties the list, returning its blocks, parked ones too (they then belong to no list). */
  drain(): Block<S>[] {
    const blocks = this.blocks.splice(0);
    for (const b of blocks) b.list = undefined;
    for (const parked of this.#parked.values()) blocks.push(...parked);
    this.#clearParked();
    return blocks;
  }
}

/** The segments of one shape and their free lists: one per stream, and one for every stream. */
export class Arena<S> {
  readonly shared: FreeList<S> = new FreeList<S>();
  readonly segments: Set<Segment<S>> = new Set();
  readonly #byStream = new Map<S, FreeList<S>>();
  // The stream looked up last and its list: a loop on one stream finds it without a map lookup.
  #lastStream: S | undefined;
  #lastList: FreeList<S> | undefined;
  constructor(readonly spec: ArenaSpec) {}

  /** Each stream's own free list. */
  get byStream(): ReadonlyMap<S, FreeList<S>> {
    return this.#byStream;
  }

  /** `stream`'s free list, if it has one. */
  listOf(stream: S): FreeList<S> | undefined {
    if (this.#lastList !== undefined && stream === this.#lastStream) return this.#lastList;
    const list = this.#byStream.get(stream);
    if (list !== undefined) {
      this.#lastStream = stream;
      this.#lastList = list;
    }
    return list;
  }

  /** `stream`'s free list, made on first use. */
  listFor(stream: S): FreeList<S> {
    let list = this.listOf(stream);
    if (list === undefined) {
      this.#byStream.set(stream, (list = new FreeList<S>(this.shared)));
      this.#lastStream = stream;
      this.#lastList = list;
    }
    return list;
  }

  /** Forgets `stream`'s list (its blocks were moved elsewhere). */
  dropList(stream: S): void {
    this.#byStream.delete(stream);
    if (stream === this.#lastStream) this.#lastList = undefined;
  }

  /** Forgets every stream's list. */
  dropLists(): void {
    this.#byStream.clear();
    this.#lastList = undefined;
  }
}

/** A pool ran out: its limit, or the driver after the cache was released. Carries the pool's stats. */
export class PoolOutOfMemoryError extends CudaOutOfMemoryError {
  constructor(device: number, requestedBytes: number, message: string, readonly stats: PoolStats, readonly reason: "limit" | "driver") {
    super(device, requestedBytes, message);
  }
}

export interface BlockPoolOptions {
  /** For messages, e.g. `DevicePool (device 0)`. */
  readonly name: string;
  readonly device: number;
  /** Most bytes the pool may reserve; undefined for no limit. */
  readonly limit?: number | undefined;
  /** Host-visible memory: every free waits for an event before any reuse (see the stream rule). */
  readonly hostAccessible?: boolean;
}

interface Pending<S> {
  readonly events: PoolEvent[];
  readonly blocks: Block<S>[];
  /** Where the blocks go once the events completed: their stream's free list, or (none) every stream's. */
  readonly owner?: { readonly stream: S };
  /** The stream whose free list was moved behind the event (#fromOtherStreams). */
  readonly from?: { readonly stream: S };
}

export function checkLimit(limit: unknown): asserts limit is number | undefined {
  if (limit !== undefined && (typeof limit !== "number" || !Number.isSafeInteger(limit) || limit <= 0)) {
    throw new CudaArgumentError(`a pool limit must be a positive whole number of bytes or undefined, got ${String(limit)}`);
  }
}

export class BlockPool<S> {
  readonly #counters = new PoolCounters();
  readonly #arenas: Arena<S>[] = [];
  #pending: Pending<S>[] = [];
  #limit: number | undefined;
  #live = 0;
  #closed = false;
  readonly #hostAccessible: boolean;

  constructor(readonly source: SegmentSource<S>, readonly options: BlockPoolOptions) {
    checkLimit(options.limit);
    this.#limit = options.limit;
    this.#hostAccessible = options.hostAccessible ?? false;
  }

  arena(spec: ArenaSpec): Arena<S> {
    const arena = new Arena<S>(spec);
    this.#arenas.push(arena);
    return arena;
  }

  get limit(): number | undefined {
    return this.#limit;
  }

  set limit(limit: number | undefined) {
    checkLimit(limit);
    this.#limit = limit;
  }

  /** Blocks handed out and not yet returned. */
  get liveBlocks(): number {
    return this.#live;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** A block of exactly `units` units for `stream`, from the cache or a new segment. */
  allocate(arena: Arena<S>, units: number, requestedBytes: number, stream: S): Block<S> {
    if (this.#closed) throw new CudaStateError(`${this.options.name} was disposed`);
    const block = this.#cached(arena, units, stream) ?? this.#grow(arena, units, requestedBytes, stream);
    return this.#take(block, units, requestedBytes, stream);
  }

  /** Marks `block` as used on `stream` too: its reuse then waits for that stream's work. */
  recordStream(block: Block<S>, stream: S): void {
    if (stream === block.stream || block.otherStreams?.includes(stream)) return;
    (block.otherStreams ??= []).push(stream);
  }

  /**
   * How a buffer returns `block`: a closure over the pool and the block only (a leaked buffer's
   * finalizer must not keep the buffer alive), made once per block and reused by every buffer it backs.
   */
  releaseOf(block: Block<S>): () => number {
    // The closure is made apart: a function that may make one allocates its captured variables'
    // context on every call, made or not (48 bytes a pool hit, a third of its garbage).
    return block.release ?? this.#makeRelease(block);
  }

  #makeRelease(block: Block<S>): () => number {
    return (block.release = () => (this.free(block), 0));
  }

  /** Returns a block; a closed pool (its segments already freed) ignores it. */
  free(block: Block<S>): void {
    if (this.#closed) return;
    if (!block.inUse) this.#returnedTwice(block);
    block.inUse = false;
    this.#live--;
    this.#counters.free(block.bytes, block.requestedBytes);
    if (this.#hostAccessible || block.otherStreams) this.#freeAfterEvents(block);
    else block.segment.arena.listFor(block.stream).park(block);
  }

  // The rare paths of free() and allocate() are methods of their own, here and below: V8 inlines
  // a pool hit's calls only up to a budget of bytecode, which their code would otherwise take.
  #returnedTwice(block: Block<S>): never {
    throw new CudaStateError(`${this.options.name}: a block at 0x${block.ptr.toString(16)} was returned twice`);
  }

  /** Frees a block that waits for events before reuse: host-visible memory, or a block other streams used. */
  #freeAfterEvents(block: Block<S>): void {
    if (this.#hostAccessible) {
      const streams = [block.stream, ...(block.otherStreams ?? [])];
      this.#pending.push({ events: streams.map((s) => this.source.recordEvent(s)), blocks: [block] });
    } else {
      // Its own stream's work needs no event: once the others completed, it is that stream's again.
      this.#pending.push({ events: block.otherStreams!.map((s) => this.source.recordEvent(s)), blocks: [block], owner: { stream: block.stream } });
    }
  }

  /**
   * Waits for the device, then gives every segment without a block in use back to the driver.
   * Returns the bytes released.
   */
  releaseCached(): number {
    if (this.#closed) return 0;
    this.source.synchronize();
    this.#collect(true);
    return this.#arenas.reduce((released, arena) => released + this.#releaseIdle(arena), 0);
  }

  /** Frees every segment, in use or not (the pool's owner is going away). */
  close(): void {
    if (this.#closed) return;
    this.source.synchronize();
    this.#collect(true);
    for (const arena of this.#arenas) for (const segment of arena.segments) this.#releaseSegment(segment);
    this.#closed = true;
  }

  resetPeak(): void {
    this.#counters.resetPeak();
  }

  stats(): PoolStats {
    const c = this.#counters;
    let largest = 0;
    let reusable = 0;
    for (const arena of this.#arenas) {
      for (const list of [arena.shared, ...arena.byStream.values()]) {
        // Fragmentation counts merged blocks: neighbours parked apart are not fragmented.
        list.unpark();
        largest = Math.max(largest, list.largest() * arena.spec.bytesPerUnit);
        for (const b of list.blocks) reusable += b.bytes;
      }
    }
    const cachedBytes = c.reservedBytes - c.inUseBytes;
    return {
      inUseBytes: c.inUseBytes,
      requestedBytes: c.requestedBytes,
      cachedBytes,
      reservedBytes: c.reservedBytes,
      peakInUseBytes: c.peakInUseBytes,
      peakRequestedBytes: c.peakRequestedBytes,
      peakReservedBytes: c.peakReservedBytes,
      limitBytes: this.#limit,
      allocations: c.hits + c.misses,
      hits: c.hits,
      misses: c.misses,
      frees: c.frees,
      splits: c.splits,
      segmentsAllocated: c.segmentsAllocated,
      segmentsReleased: c.segmentsReleased,
      pendingBlocks: this.#pending.reduce((n, p) => n + p.blocks.length, 0),
      fragmentation: reusable === 0 ? 0 : 1 - largest / reusable,
    };
  }

  toString(): string {
    return `${this.options.name}: ${formatPoolStats(this.stats())}`;
  }

  #cached(arena: Arena<S>, units: number, stream: S): Block<S> | undefined {
    const parked = arena.listOf(stream)?.takeParked(units);
    if (parked) {
      this.#counters.hits++;
      return parked;
    }
    return this.#bestCached(arena, units, stream);
  }

  /** The best fit among the free blocks `stream` may take (#cached when no block of the size is parked). */
  #bestCached(arena: Arena<S>, units: number, stream: S): Block<S> | undefined {
    const own = arena.listOf(stream);
    own?.unpark();
    let block = own?.bestFit(units) ?? arena.shared.bestFit(units);
    if (!block && (this.#pending.length > 0 || arena.byStream.size > (own ? 1 : 0))) {
      this.#collect(false);
      block = arena.shared.bestFit(units) ?? this.#fromOtherStreams(arena, units, stream);
    }
    if (block) this.#counters.hits++;
    return block;
  }

  /**
   * Moves other streams' free lists that could serve the request behind an event on their stream.
   * A stream whose earlier list still waits for its event keeps its new one: otherwise, while the
   * device is busy, two streams taking turns would each take the other's blocks away at every
   * turn and grow a segment each time (no cached memory is released on a miss to pay for that).
   */
  #fromOtherStreams(arena: Arena<S>, units: number, stream: S): Block<S> | undefined {
    let moved = false;
    for (const [other, list] of arena.byStream) {
      if (other === stream || list.largest() < units) continue;
      if (this.#pending.some((p) => p.from?.stream === other)) continue;
      this.#pending.push({ events: [this.source.recordEvent(other)], blocks: list.drain(), from: { stream: other } });
      arena.dropList(other);
      moved = true;
    }
    if (!moved) return undefined;
    this.#collect(false);
    return arena.shared.bestFit(units);
  }

  /** Makes blocks whose events have all completed (all of them after a synchronize) free for every stream. */
  #collect(synchronized: boolean): void {
    if (this.#pending.length === 0) return;
    const waiting: Pending<S>[] = [];
    for (const entry of this.#pending) {
      if (!synchronized && !entry.events.every((e) => e.query())) {
        waiting.push(entry);
        continue;
      }
      for (const event of entry.events) event.release();
      for (const block of entry.blocks) {
        const arena = block.segment.arena;
        (entry.owner && !synchronized ? arena.listFor(entry.owner.stream) : arena.shared).insertMerged(block);
      }
    }
    this.#pending = waiting;
  }

  /** Hands out `units` of `block`, leaving the rest free where the block was. */
  #take(block: Block<S>, units: number, requestedBytes: number, stream: S): Block<S> {
    const from = block.list;
    from?.remove(block);
    if (block.units > units) this.#split(block, units, from);
    block.inUse = true;
    block.stream = stream;
    block.otherStreams = undefined;
    block.requestedBytes = requestedBytes;
    this.#live++;
    this.#counters.use(block.bytes, requestedBytes);
    return block;
  }

  /** Cuts `block` (out of the free list `from`) to `units`, leaving the rest free there. */
  #split(block: Block<S>, units: number, from: FreeList<S> | undefined): void {
    const rest = new Block(block.segment, block.offset + units, block.units - units);
    rest.prev = block;
    rest.next = block.next;
    if (block.next) block.next.prev = rest;
    block.next = rest;
    block.units = units;
    this.#counters.splits++;
    (from ?? block.segment.arena.shared).insertMerged(rest);
  }

  /** A new segment, within the limit: over it, or when the driver fails, the cache is released first. */
  #grow(arena: Arena<S>, units: number, requestedBytes: number, stream: S): Block<S> {
    const spec = arena.spec;
    const counters = this.#counters;
    const room = () => (this.#limit === undefined ? Infinity : Math.floor((this.#limit - counters.reservedBytes) / spec.bytesPerUnit));
    // The least a new segment can have; an expandable one grows in whole steps of its granularity.
    const minimal = spec.extend ? spec.segmentUnits(units) : units;
    if (minimal > room()) {
      this.releaseCached();
      const block = this.#cached(arena, units, stream);
      if (block) return block;
      if (minimal > room()) throw this.#outOfMemory(requestedBytes, "limit");
    }
    if (spec.extend) {
      const extended = this.#extendArena(arena, units, requestedBytes, stream);
      if (extended) return extended;
    }
    let segmentUnits = Math.max(minimal, Math.min(spec.segmentUnits(units), room()));
    let ptr = spec.grow(segmentUnits);
    if (ptr === undefined) {
      this.releaseCached();
      const block = this.#cached(arena, units, stream);
      if (block) return block;
      segmentUnits = minimal;
      ptr = spec.grow(minimal);
      if (ptr === undefined) throw this.#outOfMemory(requestedBytes, "driver");
    }
    const segment = new Segment(arena, ptr, segmentUnits);
    segment.first = new Block(segment, 0, segmentUnits);
    arena.segments.add(segment);
    counters.reserve(segmentUnits * spec.bytesPerUnit);
    counters.misses++;
    return segment.first;
  }

  /**
   * An expandable arena's segment grown, with the cache released and one retry when the driver is
   * out of memory. Undefined when the arena has no segment (any more): the caller makes one.
   */
  #extendArena(arena: Arena<S>, units: number, requestedBytes: number, stream: S): Block<S> | undefined {
    const [segment] = arena.segments;
    if (!segment) return undefined;
    const block = this.#extend(segment, units, stream);
    if (block) return block;
    this.releaseCached();
    const cached = this.#cached(arena, units, stream);
    if (cached) return cached;
    const [kept] = arena.segments;
    if (!kept) return undefined;
    const again = this.#extend(kept, units, stream);
    if (!again) throw this.#outOfMemory(requestedBytes, "driver");
    return again;
  }

  /**
   * Grows an expandable arena's segment in place: onto its last block where that is free for
   * `stream`, else by a new block at its end. Undefined when the driver is out of memory. It
   * adds at most spec.segmentUnits(units), which #grow checked against the limit.
   */
  #extend(segment: Segment<S>, units: number, stream: S): Block<S> | undefined {
    const arena = segment.arena;
    const last = segment.last;
    const list = last.list === arena.shared || last.list === arena.listOf(stream) ? last.list : undefined;
    const added = arena.spec.segmentUnits(units - (list ? last.units : 0));
    if (!arena.spec.extend!(segment.ptr, segment.units + added)) return undefined;
    const offset = segment.units;
    segment.units += added;
    this.#counters.reserve(added * arena.spec.bytesPerUnit, true);
    this.#counters.misses++;
    if (list) {
      list.remove(last);
      last.units += added;
      list.insert(last);
      return last;
    }
    const block = new Block(segment, offset, added);
    block.prev = last;
    last.next = block;
    return block;
  }

  /** After a synchronize: merges the arena's free lists into one and releases its wholly free segments. */
  #releaseIdle(arena: Arena<S>): number {
    for (const list of arena.byStream.values()) for (const block of list.drain()) arena.shared.insertMerged(block);
    arena.dropLists();
    let released = 0;
    for (const segment of arena.segments) {
      const first = segment.first;
      if (!first.next && first.list === arena.shared) {
        arena.shared.remove(first);
        released += this.#releaseSegment(segment);
      } else if (arena.spec.shrink) {
        released += this.#shrink(segment, arena.spec.shrink);
      }
    }
    return released;
  }

  /** Unmaps the free end of an expandable segment; returns the bytes released. */
  #shrink(segment: Segment<S>, shrink: (ptr: Pointer, units: number) => number): number {
    const last = segment.last;
    const shared = segment.arena.shared;
    if (last.list !== shared) return 0;
    const freed = segment.units - shrink(segment.ptr, last.offset);
    if (freed <= 0) return 0;
    shared.remove(last);
    last.units -= freed;
    segment.units -= freed;
    if (last.units > 0) shared.insert(last);
    else last.prev!.next = undefined;
    const bytes = freed * segment.arena.spec.bytesPerUnit;
    this.#counters.reservedBytes -= bytes;
    return bytes;
  }

  #releaseSegment(segment: Segment<S>): number {
    const bytes = segment.units * segment.arena.spec.bytesPerUnit;
    segment.arena.segments.delete(segment);
    this.source.free(segment.ptr);
    this.#counters.reservedBytes -= bytes;
    this.#counters.segmentsReleased++;
    return bytes;
  }

  #outOfMemory(requestedBytes: number, reason: "limit" | "driver"): PoolOutOfMemoryError {
    const stats = this.stats();
    const { name, device } = this.options;
    const message = reason === "limit"
      ? `${name}: ${formatBytes(requestedBytes)} would take the pool past its limit of ${formatBytes(this.#limit!)} ` +
        `with ${formatBytes(stats.inUseBytes)} in use, after it released every cached block. ` +
        "Dispose buffers you no longer need or raise the pool's limit."
      : `${name}: device ${device} could not allocate ${formatBytes(requestedBytes)}, even after the pool gave its cached blocks back ` +
        `to the driver and retried (${formatBytes(stats.inUseBytes)} in use). Dispose buffers you no longer need, use smaller ` +
        "batches, set a limit on each pool that shares the device, or look for other processes with nvidia-smi.";
    return new PoolOutOfMemoryError(device, requestedBytes, `${message}\n  ${formatPoolStats(stats)}`, stats, reason);
  }
}
