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

/** The outcome of a release, shared between the resource and its closure (which must not capture the resource). */
interface ReleaseState {
  released: boolean;
  status: number;
  untrack: () => void;
}

export abstract class ContextResource extends NativeResource {
  readonly #state: ReleaseState;
  readonly #kind: string;
  readonly #call: string;

  /**
   * @param free Frees the native resource and returns the CUDA status. It runs with the
   *   context's device current, and must capture neither the resource nor the context.
   * @param call The C call `free` makes, for error messages.
   */
  protected constructor(readonly context: CudaContext, kind: string, phase: ReleasePhase, call: string, free: () => number) {
    const state: ReleaseState = { released: false, status: 0, untrack: () => {} };
    // Not the context either: a leaked resource must not keep a leaked context alive.
    const { runtime, device } = context;
    const release = () => {
      if (state.released) return;
      state.released = true;
      state.untrack();
      // After a sticky error every call fails and the memory is gone with the context anyway.
      if (runtime.stickyError(device)) return;
      runtime.setCurrent(device);
      state.status = free();
    };
    super(kind, release);
    state.untrack = context.track(phase, this, release);
    this.#state = state;
    this.#kind = kind;
    this.#call = call;
  }

  /** Throws unless this resource, its context and its device can be used. */
  assertUsable(): void {
    this.assertLive();
    if (this.#state.released) throw new DisposedError(`${this.#kind} (freed when its CudaContext was disposed)`);
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
    if (this.#state.status !== 0) {
      const status = this.#state.status;
      this.#state.status = 0;
      this.context.check(status, this.#call);
    }
  }
}
