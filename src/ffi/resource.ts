// Ownership of native resources: explicit disposal as the house style (`using`), a
// FinalizationRegistry as the safety net for what users leak, and a disposed state that makes
// every later use throw instead of handing a dangling handle to C.
import { DisposedError } from "./errors.ts";

interface Held {
  readonly kind: string;
  readonly release: () => void;
}

export type LeakReporter = (kind: string, count: number) => void;

const warnedKinds = new Set<string>();
const leakCounts = new Map<string, number>();

let reportLeak: LeakReporter = (kind, count) => {
  if (warnedKinds.has(kind)) return;
  warnedKinds.add(kind);
  console.warn(
    `gpuffi: a ${kind} was garbage-collected without being disposed (${count} so far); it has been freed now. ` +
      `Dispose it with \`using\` or .dispose() to free native memory when you are done. (This warning is shown once per kind.)`,
  );
};

const registry = new FinalizationRegistry<Held>((held) => {
  const count = (leakCounts.get(held.kind) ?? 0) + 1;
  leakCounts.set(held.kind, count);
  try {
    held.release();
  } finally {
    reportLeak(held.kind, count);
  }
});

/** Replaces the leak warning, e.g. to route it to a logger or to count leaks in tests. Returns the previous one. */
export function setLeakReporter(reporter: LeakReporter): LeakReporter {
  const previous = reportLeak;
  reportLeak = reporter;
  return previous;
}

/** How many resources of each kind the finalizer had to free so far. */
export function leakStatistics(): ReadonlyMap<string, number> {
  return leakCounts;
}

// Registering with the FinalizationRegistry costs about as much as a whole pool hit, and most
// resources are disposed soon after they are made (a pool buffer often within one loop
// iteration). So new resources wait in a batch that is registered at the end of the current job
// (a microtask) or once it holds `batchSize`; those disposed meanwhile are never registered. A
// resource leaked before then is held until the batch is registered, and collected after.
const batchSize = 1024;

/**
 * Base class for every object that owns one native resource. Subclasses pass a `release`
 * closure that must not capture the object itself (or the finalizer could never run), call
 * `assertLive()` before each use, and get `dispose()` / `Symbol.dispose` for free.
 */
// The batch is filled in place and emptied by registerBatch (an array grown anew for every batch
// cost V8 a reallocation every few pushes); module variables, not static private fields, which
// cost a brand check on every construction.
const unregistered: (NativeResource | undefined)[] = new Array(batchSize).fill(undefined);
let unregisteredCount = 0;
// Set by the class below, which alone can read a resource's release and kind.
let registerResource: (resource: NativeResource) => void;

/** Registers the batch of new resources that are still alive. */
function registerBatch(): void {
  const count = unregisteredCount;
  unregisteredCount = 0;
  for (let i = 0; i < count; i++) {
    const resource = unregistered[i]!;
    unregistered[i] = undefined;
    registerResource(resource);
  }
}

export abstract class NativeResource implements Disposable {
  static {
    registerResource = (resource) => {
      const release = resource.#release;
      if (release === undefined) return;
      registry.register(resource, { kind: resource.#kind, release }, resource);
      resource.#registered = true;
    };
  }

  #release: (() => void) | undefined;
  readonly #kind: string;
  #registered = false;

  /**
   * @param collectLeaks Free the resource when the object is garbage-collected undisposed. Turn
   *   it off where C may still hold the resource after JS lets go of it (callbacks, libraries):
   *   those live until disposed.
   */
  protected constructor(kind: string, release: () => void, collectLeaks = true) {
    this.#kind = kind;
    this.#release = release;
    if (!collectLeaks) return;
    const size = unregisteredCount++;
    unregistered[size] = this;
    if (size === 0) queueMicrotask(registerBatch);
    else if (size + 1 >= batchSize) registerBatch();
  }

  /** What the resource is, for messages: `DeviceBuffer`, `CudaStream`… */
  get kind(): string {
    return this.#kind;
  }

  /** True once disposed; every further use throws {@link DisposedError}. */
  get disposed(): boolean {
    return this.#release === undefined;
  }

  /** Throws {@link DisposedError} if this resource was disposed. */
  protected assertLive(): void {
    if (this.#release === undefined) throw new DisposedError(this.#kind);
  }

  /**
   * Frees the native resource now. A second call throws {@link DisposedError}: freeing twice is a
   * bug in the caller that C would not report.
   */
  dispose(): void {
    const release = this.#release;
    if (release === undefined) throw new DisposedError(this.#kind);
    this.#release = undefined;
    if (this.#registered) registry.unregister(this);
    release();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
