// C → JS function pointers.
import { backend } from "./backend.ts";
import { NativeResource } from "./resource.ts";
import type { CallbackDefinition, CallbackFunction, CallbackHandle, Pointer } from "./types.ts";

export interface CallbackOptions {
  /**
   * Allow calls from threads other than the JS thread. Such calls are queued to the JS thread
   * and run when its event loop turns, while the calling thread waits: the JS thread must not
   * block on that thread meanwhile, or both deadlock. Bun: JSCallback `threadsafe` (marked
   * experimental by Bun). Deno: `UnsafeCallback.threadSafe`, which keeps the event loop alive
   * until disposed. Node (koffi): every callback is thread-safe this way.
   */
  readonly threadSafe?: boolean;
  /** Called with an exception the JS function threw (default: console.error). C then receives 0. */
  readonly onError?: (error: unknown) => void;
}

/**
 * A C function pointer (`.ptr`) that calls a JS function. It stays alive until disposed, even
 * if JS drops it, because C may still hold the pointer: dispose it once C no longer can.
 * An exception thrown by the JS function cannot unwind through C: it goes to `onError` and C
 * receives 0 (false for `bool`).
 */
export class NativeCallback<D extends CallbackDefinition> extends NativeResource implements CallbackHandle {
  readonly #ptr: Pointer;

  constructor(definition: D, fn: CallbackFunction<D>, options: CallbackOptions = {}) {
    const onError = options.onError ?? ((error: unknown) => console.error("gpuffi: a native callback threw; C receives 0:", error));
    const fallback = definition.result === "bool" ? false : 0;
    const guarded = (...args: never[]) => {
      try {
        return (fn as (...a: never[]) => unknown)(...args);
      } catch (error) {
        onError(error);
        return fallback;
      }
    };
    const made = backend.createCallback(definition, guarded, options.threadSafe ?? false);
    super("NativeCallback", () => {
      live.delete(made);
      made.close();
    }, false);
    live.add(made);
    this.#ptr = made.ptr;
  }

  /** The function pointer to hand to C. */
  get ptr(): Pointer {
    this.assertLive();
    return this.#ptr;
  }
}

// Strong references: nothing the runtime needs to call a callback may be collected before dispose.
const live = new Set<object>();

/** Creates a C function pointer that calls `fn`; see {@link NativeCallback}. */
export function createCallback<const D extends CallbackDefinition>(definition: D, fn: CallbackFunction<D>, options?: CallbackOptions): NativeCallback<D> {
  return new NativeCallback(definition, fn, options);
}
