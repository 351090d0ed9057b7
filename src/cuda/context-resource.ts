// The base of every resource a CudaContext owns (streams, events, buffers). It ties the
// resource to its context, so that disposing the context frees what is left in order, and
// makes the release safe from every path: explicit dispose, context disposal and the leak
// finalizer each free at most once, and none frees on a device a sticky error has broken.
import { DisposedError, NativeResource } from "../ffi/index.ts";
import type { CudaContext } from "./context.ts";

/**
 * Disposal order within a context: events first (nothing depends on them), then memory (a
 * stream-ordered free needs its stream), then streams.
 */
export type ReleasePhase = "event" | "memory" | "stream";

/** The pool that pooled memory returns to; once it is closed, all its memory is freed. */
export interface MemoryOwner {
  readonly closed: boolean;
}

/**
 * Who frees a resource when the context goes: the context, in a phase of its disposal, or for
 * memory a pool hands out, the pool. The pool is tracked and frees all its memory when the
 * context goes, and tracking every pool buffer would cost as much as the rest of a pool hit.
 */
export type ReleaseOrder = ReleasePhase | MemoryOwner;

/** The outcome of a release, shared between the resource and its closure (which must not capture the resource). */
interface ReleaseState {
  released: boolean;
  status: number;
  untrack: () => void;
  /** The C call the release makes, for error messages. */
  readonly call: string;
}

/**
 * The release of a tracked resource: at most once, on its device, never after a sticky error.
 * Made outside the constructor, whose variables a closure would otherwise capture on every
 * construction, pool hits included.
 */
function releaseOnce(state: ReleaseState, context: CudaContext, free: () => number): () => void {
  // Not the context either: a leaked resource must not keep a leaked context alive.
  const { runtime, device } = context;
  return () => {
    if (state.released) return;
    state.released = true;
    state.untrack();
    // After a sticky error every call fails and the memory is gone with the context anyway.
    if (runtime.stickyError(device)) return;
    runtime.setCurrent(device);
    state.status = free();
  };
}

// Under module-private symbols rather than #private fields, as NativeResource's state and for the
// same reason: a pool hit constructs this class's part of every buffer (see ffi/resource.ts).
// One field for what frees it: its release's state (tracked by the context) or its pool (pooled
// memory); each field more is more garbage per pool hit.
const freedByKey = Symbol("freedBy");

/** Whether `freedBy` is a pool (its buffers are never tracked: no ReleaseState). */
const isOwner = (freedBy: ReleaseState | MemoryOwner): freedBy is MemoryOwner => (freedBy as Partial<ReleaseState>).call === undefined;

export abstract class ContextResource extends NativeResource {
  declare readonly context: CudaContext;
  /** Undefined for pooled memory, whose release is the pool's bookkeeping alone (no CUDA call). */
  private declare readonly [freedByKey]: ReleaseState | MemoryOwner;

  /**
   * @param free Frees the native resource and returns the CUDA status. It runs with the
   *   context's device current, and must capture neither the resource nor the context.
   * @param call The C call `free` makes, for error messages.
   */
  protected constructor(context: CudaContext, kind: string, order: ReleaseOrder, call: string, free: () => number) {
    // Pooled memory (a pool hit) takes the short way: nothing to track, `free` is the pool's own.
    const owner = typeof order === "string" ? undefined : order;
    const state: ReleaseState | undefined = owner ? undefined : { released: false, status: 0, untrack: () => {}, call };
    const release = state === undefined ? free : releaseOnce(state, context, free);
    super(kind, release);
    this.context = context;
    if (state && typeof order === "string") state.untrack = context.track(order, this, release);
    this[freedByKey] = state ?? owner!;
  }

  /** True once disposed, or freed with its context or pool. */
  override get disposed(): boolean {
    const freedBy = this[freedByKey];
    return super.disposed || (isOwner(freedBy) ? freedBy.closed : freedBy.released);
  }

  /** Throws unless this resource, its context and its device can be used. */
  assertUsable(): void {
    this.assertLive();
    const freedBy = this[freedByKey];
    if (isOwner(freedBy)) {
      if (freedBy.closed) throw new DisposedError(`${this.kind} (freed with its pool when the CudaContext was disposed)`);
    } else if (freedBy.released) throw new DisposedError(`${this.kind} (freed when its CudaContext was disposed)`);
    this.context.assertUsable();
  }

  /** assertUsable, then makes the context's device current: call it first in every method that reaches C. */
  protected activate(): void {
    this.assertUsable();
    this.context.runtime.setCurrent(this.context.device);
  }

  /** Frees the resource now; a failed free throws the CudaError after the resource is gone. */
  override dispose(): void {
    super.dispose();
    const state = this[freedByKey];
    if (!isOwner(state) && state.status !== 0) {
      const status = state.status;
      state.status = 0;
      this.context.check(status, state.call);
    }
  }
}
