// CUDA streams and events, and the awaitable wait that keeps the JS event loop free: where the
// runtime's FFI runs calls off the JS thread (Deno's nonblocking symbols, koffi's async calls on
// Node) the blocking cudaStreamSynchronize/cudaEventSynchronize runs there; elsewhere (Bun),
// or when asked to, gpuffi polls cudaStreamQuery/cudaEventQuery with a growing back-off.
import { Out, type Pointer } from "../ffi/index.ts";
import type { CudaContext } from "./context.ts";
import { ContextResource } from "./context-resource.ts";
import { CudaArgumentError, CudaStateError, CudaStatus } from "./errors.ts";

export interface WaitOptions {
  /** Poll with back-off even where an off-thread wait exists (it never occupies a thread). */
  readonly poll?: boolean;
}

/** @internal Resolves after one turn of the event loop (timers and I/O callbacks run meanwhile). */
export const yieldOnce: () => Promise<void> = typeof setImmediate === "function"
  ? () => new Promise((resolve) => setImmediate(resolve))
  : () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * Waits for `query` to stop answering cudaErrorNotReady. The first polls only yield to the event
 * loop (short waits stay short); then the delay doubles from 1 ms up to 8 ms.
 */
async function pollUntilDone(query: () => number): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const status = query();
    if (status !== CudaStatus.notReady) return status;
    if (attempt < 16) await yieldOnce();
    else await new Promise((resolve) => setTimeout(resolve, Math.min(2 ** (attempt - 16), 8)));
  }
}

/** The query / blocking wait / off-thread wait that streams and events each have. */
interface Completion {
  readonly queryName: "cudaStreamQuery" | "cudaEventQuery";
  readonly syncName: "cudaStreamSynchronize" | "cudaEventSynchronize";
}
const streamCompletion: Completion = { queryName: "cudaStreamQuery", syncName: "cudaStreamSynchronize" };
const eventCompletion: Completion = { queryName: "cudaEventQuery", syncName: "cudaEventSynchronize" };

/** query(), synchronize() and synchronized() of a stream or an event, written once. */
abstract class Awaitable extends ContextResource {
  abstract readonly handle: Pointer;
  /** @internal */
  protected abstract readonly completion: Completion;

  /** True when the work queued (or captured) so far has completed. */
  query(): boolean {
    this.activate();
    const status = this.context.runtime.symbols[this.completion.queryName](this.handle);
    if (status === CudaStatus.notReady) return false;
    this.context.check(status, this.completion.queryName);
    return true;
  }

  /** Blocks the JS thread until that work has completed. */
  synchronize(): void {
    this.activate();
    this.context.check(this.context.runtime.symbols[this.completion.syncName](this.handle), this.completion.syncName);
  }

  /** Resolves when that work has completed, without blocking the event loop. */
  async synchronized(options: WaitOptions = {}): Promise<void> {
    this.activate();
    const { runtime } = this.context;
    const { queryName, syncName } = this.completion;
    const offThread = options.poll ? undefined : runtime.api.async[syncName];
    const handle = this.handle;
    const status = offThread
      ? await offThread(handle)
      : await pollUntilDone(() => (this.activate(), runtime.symbols[queryName](handle)));
    this.context.check(status, offThread ? syncName : queryName);
  }
}

export interface StreamOptions {
  /** cudaStreamNonBlocking: the stream does not synchronize with the legacy default stream. */
  readonly nonBlocking?: boolean;
}

/** A CUDA stream of one context's device. */
export class CudaStream extends Awaitable {
  /** The cudaStream_t. */
  readonly handle: Pointer;
  /** @internal */
  protected readonly completion = streamCompletion;
  readonly #liveAllocations: { count: number };

  private constructor(context: CudaContext, handle: Pointer, liveAllocations: { count: number }) {
    const runtime = context.runtime;
    super(context, "CudaStream", "stream", "cudaStreamDestroy", () => runtime.symbols.cudaStreamDestroy(handle));
    this.handle = handle;
    this.#liveAllocations = liveAllocations;
  }

  /** Use {@link CudaContext.createStream}. */
  static create(context: CudaContext, options: StreamOptions = {}): CudaStream {
    context.activate();
    const out = Out.pointer();
    context.check(context.runtime.symbols.cudaStreamCreateWithFlags(out.buffer, options.nonBlocking ? 1 : 0), "cudaStreamCreateWithFlags");
    return new CudaStream(context, out.value, { count: 0 });
  }

  /** The handle for a call on this stream's device, after checking that it can be used there. */
  handleFor(device: number, what: string): Pointer {
    this.activate();
    if (device !== this.context.device) {
      throw new CudaArgumentError(`${what}: the stream belongs to device ${this.context.device}, but the operation is on device ${device}`);
    }
    return this.handle;
  }

  /** Counts a stream-ordered allocation made on this stream; returns the function that uncounts it. */
  retainAllocation(): () => void {
    const live = this.#liveAllocations;
    live.count++;
    return () => void live.count--;
  }

  /** Makes later work on this stream wait for `event` (which may belong to another device). */
  waitEvent(event: CudaEvent): void {
    event.assertUsable();
    this.activate();
    this.context.check(this.context.runtime.symbols.cudaStreamWaitEvent(this.handle, event.handle, 0), "cudaStreamWaitEvent");
  }

  /** Records a new event here: a point that other streams or the host can wait for. */
  record(options: EventOptions = {}): CudaEvent {
    const event = CudaEvent.create(this.context, options);
    event.record(this);
    return event;
  }

  override dispose(): void {
    if (!this.disposed && this.#liveAllocations.count > 0) {
      throw new CudaStateError(
        `this CudaStream still has ${this.#liveAllocations.count} live buffer(s) allocated on it with cudaMallocAsync; ` +
          "dispose them first (their stream-ordered free needs the stream)",
      );
    }
    super.dispose();
  }
}

export interface EventOptions {
  /** Record timestamps for elapsedTime (default true). Events without timing are cheaper. */
  readonly timing?: boolean;
  /** cudaEventBlockingSync: a waiting thread sleeps instead of spinning. */
  readonly blockingSync?: boolean;
}

/** A CUDA event of one context's device. */
export class CudaEvent extends Awaitable {
  /** The cudaEvent_t. */
  readonly handle: Pointer;
  readonly timing: boolean;
  /** @internal */
  protected readonly completion = eventCompletion;
  #recorded = false;

  private constructor(context: CudaContext, handle: Pointer, timing: boolean) {
    const runtime = context.runtime;
    super(context, "CudaEvent", "event", "cudaEventDestroy", () => runtime.symbols.cudaEventDestroy(handle));
    this.handle = handle;
    this.timing = timing;
  }

  /** Use {@link CudaContext.createEvent}. */
  static create(context: CudaContext, options: EventOptions = {}): CudaEvent {
    context.activate();
    const timing = options.timing ?? true;
    // cudaEventBlockingSync = 1, cudaEventDisableTiming = 2.
    const flags = (options.blockingSync ? 1 : 0) | (timing ? 0 : 2);
    const out = Out.pointer();
    context.check(context.runtime.symbols.cudaEventCreateWithFlags(out.buffer, flags), "cudaEventCreateWithFlags");
    return new CudaEvent(context, out.value, timing);
  }

  /** Captures the work queued on `stream` so far (default: the legacy default stream). */
  record(stream?: CudaStream): void {
    this.activate();
    const handle = stream ? stream.handleFor(this.context.device, "CudaEvent.record") : 0;
    this.context.check(this.context.runtime.symbols.cudaEventRecord(this.handle, handle), "cudaEventRecord");
    this.#recorded = true;
  }

  /** Milliseconds between `start` and this event; both must be recorded, completed and timed. */
  elapsedSince(start: CudaEvent): number {
    start.assertUsable();
    this.activate();
    for (const [event, name] of [[start, "start"], [this, "end"]] as const) {
      if (!event.timing) throw new CudaArgumentError(`elapsedSince: the ${name} event was created with timing: false`);
      if (!event.#recorded) throw new CudaArgumentError(`elapsedSince: the ${name} event was never recorded`);
    }
    if (start.context.device !== this.context.device) {
      throw new CudaArgumentError(`elapsedSince: the events belong to devices ${start.context.device} and ${this.context.device}`);
    }
    const ms = Out.f32();
    this.context.check(this.context.runtime.symbols.cudaEventElapsedTime(ms.buffer, start.handle, this.handle), "cudaEventElapsedTime");
    return ms.value;
  }
}
