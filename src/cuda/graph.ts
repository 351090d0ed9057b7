// CUDA Graphs: work captured once from a stream (cudaStreamBeginCapture … cudaStreamEndCapture),
// instantiated, and replayed by one cudaGraphLaunch per run. A launch costs the host about what
// one bare kernel launch does (around a microsecond), whatever issuing the captured work cost:
// for library calls whose own host path dominates, such as a small cuBLAS GEMM (~9 µs inside
// cublasLtMatmul on an H100), a graph is the way under that cost.
import { NativeResource, Out, type Pointer } from "../ffi/index.ts";
import type { CudaContext } from "./context.ts";
import { ContextResource } from "./context-resource.ts";
import { CudaArgumentError, CudaError, CudaStateError } from "./errors.ts";
import { CudaStream } from "./stream.ts";

/**
 * Which potentially unsafe calls (cudaMalloc, cudaFree…) a capture forbids while it lasts
 * (cudaStreamCaptureMode): "global", from every thread of the process (CUDA's default);
 * "threadLocal", from this thread only (other Workers may allocate); "relaxed", none.
 */
export type CaptureMode = "global" | "threadLocal" | "relaxed";

const captureModes: Readonly<Record<CaptureMode, number>> = { global: 0, threadLocal: 1, relaxed: 2 };

export interface CaptureOptions {
  /** Default "global". */
  readonly mode?: CaptureMode;
  /**
   * The resources the captured work reads or writes (buffers, a workspace): the graph keeps them
   * from being collected, and `launch()` refuses to run once one of them is disposed rather than
   * let the GPU use freed memory.
   */
  readonly uses?: readonly NativeResource[];
}

// cudaErrorStreamCapture* and cudaErrorCapturedEvent (driver_types.h): a call that a capture forbids.
const captureStatuses = new Set([900, 901, 902, 903, 904, 905, 906, 907, 908]);

const forbidden =
  "while a stream captures, CUDA refuses calls that wait for it or for the device (synchronize(), query(), cudaFree, " +
  "copies into JS memory such as read() and download()), allocations outside mode \"relaxed\", and work on the legacy " +
  "default stream while a blocking stream captures; the capture was ended and nothing was kept";

function describe(value: unknown): string {
  return value === null ? "null" : typeof value;
}

function checkUses(uses: unknown, what: string): readonly NativeResource[] {
  if (uses === undefined) return [];
  if (!Array.isArray(uses) || !uses.every((resource) => resource instanceof NativeResource)) {
    throw new CudaArgumentError(`${what}: uses must be an array of gpuffi resources (buffers, pool buffers, a Matrix's memory)`);
  }
  return [...uses];
}

/** Throws if a resource the graph's work uses is disposed: the GPU would use freed memory. */
function assertUsesLive(uses: readonly NativeResource[], what: string): void {
  for (const resource of uses) {
    if (resource.disposed) throw new CudaStateError(`${what}: the graph's work uses a ${resource.kind} that is disposed; capture the work again on live memory`);
  }
}

/** A CudaError of a call `fn` made that the capture forbade, said as such; any other error as it is. */
function captureError(error: unknown, context: CudaContext, what: string): unknown {
  if (!(error instanceof CudaError) || !captureStatuses.has(error.status)) return error;
  return new CudaError(error.status, error.call, context.runtime, `${error.call} was called inside ${what}: ${forbidden}`, { cause: error });
}

/**
 * An executable CUDA graph (cudaGraphExec_t): the work `CudaGraph.capture` recorded from a stream,
 * replayed by each `launch()`. The graph holds the addresses and values its work was issued with
 * (buffers, workspaces, host-mode scalars): change the contents of its buffers between launches,
 * not the buffers; capture again for anything else. Dispose it to destroy it.
 */
export class CudaGraph extends ContextResource {
  /** The cudaGraphExec_t. */
  readonly handle: Pointer;
  /** The stream it was captured on, where `launch()` runs it unless given another. */
  readonly stream: CudaStream;
  readonly #uses: readonly NativeResource[];

  private constructor(stream: CudaStream, handle: Pointer, uses: readonly NativeResource[]) {
    const { runtime } = stream.context;
    // Phase "event": nothing depends on an executable graph, and cudaGraphExecDestroy lets a
    // launch in flight finish (the context waits for the device first anyway).
    super(stream.context, "CudaGraph", "event", "cudaGraphExecDestroy", () => runtime.symbols.cudaGraphExecDestroy(handle));
    this.handle = handle;
    this.stream = stream;
    this.#uses = uses;
  }

  /**
   * Runs `fn` with `stream` capturing: the work `fn` queues on the stream is recorded, not run.
   * Then instantiates what was recorded and returns it, ready to launch. `fn` must be
   * synchronous and queue its work on `stream` (give a CublasHandle that stream); calls CUDA
   * cannot capture fail inside `fn` (or at the end) with a CudaError that says so. If `fn`
   * throws, the capture is ended, nothing is kept and the error is rethrown.
   */
  static capture(stream: CudaStream, fn: () => void, options: CaptureOptions = {}): CudaGraph {
    const what = "CudaGraph.capture";
    if (!(stream instanceof CudaStream)) {
      throw new CudaArgumentError(`${what}: expected a CudaStream, got ${describe(stream)}; CUDA cannot capture the legacy default stream, so capture on one from context.createStream()`);
    }
    if (typeof fn !== "function") throw new CudaArgumentError(`${what}: expected a function that queues the work to capture, got ${describe(fn)}`);
    const mode = options.mode ?? "global";
    if (typeof mode !== "string" || !Object.hasOwn(captureModes, mode)) {
      throw new CudaArgumentError(`${what}: mode must be "global", "threadLocal" or "relaxed", got ${JSON.stringify(mode)}`);
    }
    const uses = checkUses(options.uses, what);
    const { context } = stream;
    const handle = stream.handleFor(context.device, what);
    assertUsesLive(uses, what);
    if (context.launchBlocking) {
      throw new CudaStateError(`${what}: the context was created with launchBlocking, which waits for the stream after every operation, and a capturing stream cannot be waited for`);
    }
    const { symbols } = context.runtime;
    context.check(symbols.cudaStreamBeginCapture(handle, captureModes[mode]), "cudaStreamBeginCapture", `${what} (mode "${mode}")`);
    let failure: { error: unknown } | undefined;
    try {
      const result: unknown = fn();
      if (typeof (result as PromiseLike<unknown> | undefined)?.then === "function") {
        // The refusal below is the error to report; the promise's own rejection would go unhandled.
        (result as PromiseLike<unknown>).then(undefined, () => {});
        failure = { error: new CudaArgumentError(`${what}: fn returned a promise, but the capture ends when fn returns, so work after an await would not be captured; pass a synchronous function`) };
      }
    } catch (error) {
      failure = { error };
    }
    const out = Out.pointer();
    const status = symbols.cudaStreamEndCapture(handle, out.buffer);
    const graph = out.value;
    if (failure || status !== 0) {
      // An invalidated capture ends with a NULL graph; one ended after fn failed is discarded.
      if (graph !== 0) symbols.cudaGraphDestroy(graph);
      // The failure is thrown below: leave no stale last error behind for libraries that check
      // cudaGetLastError after their own launches (llama.cpp's CUDA backend does).
      symbols.cudaGetLastError();
      if (failure) throw captureError(failure.error, context, what);
      context.check(status, "cudaStreamEndCapture", `${what}: a call inside fn invalidated the capture: ${forbidden}`);
    }
    const exec = Out.pointer();
    const instantiated = symbols.cudaGraphInstantiateWithFlags(exec.buffer, graph, 0);
    const destroyed = symbols.cudaGraphDestroy(graph);
    if (instantiated === 0 && destroyed !== 0) symbols.cudaGraphExecDestroy(exec.value);
    context.check(instantiated, "cudaGraphInstantiateWithFlags", what);
    context.check(destroyed, "cudaGraphDestroy", what);
    return new CudaGraph(stream, exec.value, uses);
  }

  /** Queues the captured work once (one cudaGraphLaunch) on `stream`, by default the capture stream; any stream of the graph's device will do. */
  launch(stream: CudaStream = this.stream): void {
    const what = "CudaGraph.launch";
    this.activate();
    if (!(stream instanceof CudaStream)) throw new CudaArgumentError(`${what}: expected a CudaStream (or nothing, for the capture stream), got ${describe(stream)}`);
    const handle = stream.handleFor(this.context.device, what);
    assertUsesLive(this.#uses, what);
    this.context.check(this.context.runtime.symbols.cudaGraphLaunch(this.handle, handle), "cudaGraphLaunch", what);
  }
}
