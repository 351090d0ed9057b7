// A SegmentSource for the pool's core without a GPU: segments are address ranges of a virtual
// device of fixed capacity (no memory behind them, so property tests run fast), and events are
// completed by the test, so the stream rule can be checked at every step.
import type { PoolEvent, SegmentSource } from "../../src/cuda/index.ts";

export interface HostEvent extends PoolEvent {
  readonly stream: string;
  /** The clock when it was recorded. */
  readonly recordedAt: number;
  done: boolean;
}

export class HostSource implements SegmentSource<string> {
  /** A logical clock: every free and event record ticks it. */
  clock = 0;
  /** When synchronize() last ran. */
  syncedAt = -1;
  used = 0;
  readonly events: HostEvent[] = [];
  readonly segments = new Map<number, number>();
  grows = 0;
  #next = 0x10000;

  /** Expandable segments (ExpandableSource): ranges reserved far apart, mapped in steps of this. */
  readonly granularity = 2 ** 21;

  constructor(public capacity = Infinity) {}

  /** An expandable range with `bytes` mapped, or undefined when the virtual device is full. */
  reserve(bytes: number): number | undefined {
    const ptr = this.grow(bytes);
    if (ptr !== undefined) this.#next = ptr + 2 ** 40;
    return ptr;
  }

  /** Unmaps the range at `ptr` down to `bytes`, rounded up to the granularity; returns the bytes still mapped. */
  shrink(ptr: number, bytes: number): number {
    const mapped = this.segments.get(ptr);
    if (mapped === undefined || this.syncedAt < 0) throw new Error(`bad shrink of 0x${ptr.toString(16)}`);
    const kept = Math.min(mapped, Math.ceil(bytes / this.granularity) * this.granularity);
    this.segments.set(ptr, kept);
    this.used -= mapped - kept;
    return kept;
  }

  /** Maps the range at `ptr` up to `bytes`; false when the virtual device is full. */
  extend(ptr: number, bytes: number): boolean {
    const mapped = this.segments.get(ptr);
    if (mapped === undefined || bytes < mapped || bytes % this.granularity !== 0) throw new Error(`bad extend of 0x${ptr.toString(16)} to ${bytes} bytes`);
    if (this.used + bytes - mapped > this.capacity) return false;
    this.segments.set(ptr, bytes);
    this.used += bytes - mapped;
    return true;
  }

  /** A segment of `bytes`, or undefined when the virtual device is full. */
  grow(bytes: number): number | undefined {
    if (this.used + bytes > this.capacity) return undefined;
    this.grows++;
    const ptr = this.#next;
    // A gap between segments: blocks of two segments must never merge.
    this.#next += bytes + 4096;
    this.used += bytes;
    this.segments.set(ptr, bytes);
    return ptr;
  }

  free(ptr: number): void {
    const bytes = this.segments.get(ptr);
    if (bytes === undefined) throw new Error(`free of an unknown segment 0x${ptr.toString(16)}`);
    if (this.syncedAt < 0) throw new Error("a segment was freed without synchronize()");
    this.segments.delete(ptr);
    this.used -= bytes;
  }

  synchronize(): void {
    for (const event of this.events) event.done = true;
    this.syncedAt = ++this.clock;
  }

  recordEvent(stream: string): PoolEvent {
    const event: HostEvent = { stream, recordedAt: ++this.clock, done: false, query: () => event.done, release: () => {} };
    this.events.push(event);
    return event;
  }

  /** True when everything `stream` queued before `time` is known complete: a completed event recorded on it since, or a synchronize. */
  completedSince(stream: string, time: number): boolean {
    return this.syncedAt > time || this.events.some((e) => e.stream === stream && e.recordedAt > time && e.done);
  }
}
