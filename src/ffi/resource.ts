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
// (a microtask) or once it holds `batchSize`; those disposed meanwhile are never registered, and
// one disposed while it is the last in the batch leaves it at once, so a loop that makes and
// disposes a resource per iteration keeps the batch at one and never walks it. A resource leaked
// before then is held until the batch is registered, and collected after.
const batchSize = 1024;

// A resource's state lives under these module-private symbols, assigned in the constructor, not
// in #private fields: V8 defines a base class's declared fields in an initializer that it does not
// inline into a subclass's constructor (about 10 ns per class of the chain on every construction,
// three to four times that once many resource classes share the base), while plain assignments
// are inlined. Nothing outside this module holds the symbols, so only it can reach a release.
const releaseKey = Symbol("release");
const kindKey = Symbol("kind");

// The batch is filled in place and emptied by registerBatch (an array grown anew for every batch
// cost V8 a reallocation every few pushes).
const unregistered: (NativeResource | undefined)[] = new Array(batchSize).fill(undefined);
let unregisteredCount = 0;
// Whether registerBatch is queued: the batch can empty (disposals) and fill again before it runs.
let batchScheduled = false;

/** Registers the batch of new resources that are still alive. */
function registerBatch(): void {
  const count = unregisteredCount;
  unregisteredCount = 0;
  batchScheduled = false;
  for (let i = 0; i < count; i++) {
    const resource = unregistered[i]!;
    unregistered[i] = undefined;
    const release = resource[releaseKey];
    if (release === undefined) continue;
    registry.register(resource, { kind: resource[kindKey], release }, resource);
  }
}

/**
 * Base class for every object that owns one native resource. Subclasses pass a `release`
 * closure that must not capture the object itself (or the finalizer could never run), call
 * `assertLive()` before each use, and get `dispose()` / `Symbol.dispose` for free.
 */
export abstract class NativeResource implements Disposable {
  private declare [releaseKey]: (() => void) | undefined;
  private declare readonly [kindKey]: string;

  /**
   * @param collectLeaks Free the resource when the object is garbage-collected undisposed. Turn
   *   it off where C may still hold the resource after JS lets go of it (callbacks, libraries):
   *   those live until disposed.
   */
  protected constructor(kind: string, release: () => void, collectLeaks = true) {
    this[kindKey] = kind;
    this[releaseKey] = release;
    if (!collectLeaks) return;
    const size = unregisteredCount++;
    unregistered[size] = this;
    if (!batchScheduled) {
      batchScheduled = true;
      queueMicrotask(registerBatch);
    } else if (size + 1 >= batchSize) registerBatch();
  }

  /** What the resource is, for messages: `DeviceBuffer`, `CudaStream`… */
  get kind(): string {
    return this[kindKey];
  }

  /** True once disposed; every further use throws {@link DisposedError}. */
  get disposed(): boolean {
    return this[releaseKey] === undefined;
  }

  /** Throws {@link DisposedError} if this resource was disposed. */
  protected assertLive(): void {
    if (this[releaseKey] === undefined) throw new DisposedError(this[kindKey]);
  }

  /**
   * Frees the native resource now. A second call throws {@link DisposedError}: freeing twice is a
   * bug in the caller that C would not report.
   */
  dispose(): void {
    const release = this[releaseKey];
    if (release === undefined) throw new DisposedError(this[kindKey]);
    this[releaseKey] = undefined;
    // The last of the batch leaves it; any other is unregistered, which is nothing for one still
    // waiting in the batch (registerBatch skips the disposed) or made with collectLeaks off. No
    // flag says which: every field is a few bytes more of garbage per pool hit.
    if (unregisteredCount > 0 && unregistered[unregisteredCount - 1] === this) unregistered[--unregisteredCount] = undefined;
    else registry.unregister(this);
    release();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
