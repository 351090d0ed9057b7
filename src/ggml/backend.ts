// Where graphs run: a backend on one device, the buffers that hold a context's tensors there, and
// the scheduler that allocates a graph's intermediate tensors and runs it, splitting it between
// backends where one cannot run an op.
import { NativeResource, type Pointer, capabilities } from "../ffi/index.ts";
import { GgmlError } from "./errors.ts";
import type { Ggml, GgmlBaseLibrary, GgmlDeviceInfo } from "./ggml.ts";
import { GgmlStatus } from "./graph-bindings.ts";
import type { ComputeGraph, GgmlContext } from "./context.ts";

/** A ggml backend (`ggml_backend_t`) started on one device. */
export class GgmlBackend extends NativeResource {
  /** @internal */
  readonly lib: GgmlBaseLibrary;

  /** @internal Made by {@link Ggml.backend}. */
  constructor(
    readonly ggml: Ggml,
    /** @internal ggml_backend_t */
    readonly handle: Pointer,
    readonly device: GgmlDeviceInfo,
  ) {
    const lib = ggml.base;
    super("GgmlBackend", () => lib.symbols.ggml_backend_free(handle));
    this.lib = lib;
  }

  /** `cpu`, `cuda:0`, … */
  get name(): string {
    return this.device.name;
  }

  get isCpu(): boolean {
    return this.device.type === "cpu";
  }

  /** Sets the CPU backend's thread count. */
  setThreads(threads: number): void {
    this.assertLive();
    if (!this.isCpu) throw new GgmlError("ERR_GGML_ARGUMENT", `${this.name} is not a CPU backend: it has no thread count`);
    this.ggml.setThreads(this, threads);
  }

  /** Waits for the backend's queued work. */
  synchronize(): void {
    this.assertLive();
    this.lib.symbols.ggml_backend_synchronize(this.handle);
  }

  /** @internal */
  get live(): Pointer {
    this.assertLive();
    return this.handle;
  }
}

/** Device memory holding every tensor of one context (`ggml_backend_alloc_ctx_tensors`). */
export class BackendBuffer extends NativeResource {
  /** @internal */
  constructor(
    private readonly lib: GgmlBaseLibrary,
    /** @internal ggml_backend_buffer_t */
    readonly handle: Pointer,
    readonly backend: GgmlBackend,
  ) {
    super("BackendBuffer", () => lib.symbols.ggml_backend_buffer_free(handle));
  }

  /** Allocates every tensor of `ctx` (made with `noAlloc`) on `backend`. */
  static allocate(ctx: GgmlContext, backend: GgmlBackend): BackendBuffer {
    const lib = backend.lib;
    const handle = lib.symbols.ggml_backend_alloc_ctx_tensors(ctx.live, backend.live);
    if (handle === 0) {
      throw new GgmlError("ERR_GGML_ALLOC", `could not allocate ${ctx.tensorBytes()} bytes for the tensors of a context on ${backend.name} (out of memory, or a context without tensors)`);
    }
    return new BackendBuffer(lib, handle, backend);
  }

  get byteLength(): number {
    this.assertLive();
    return this.lib.symbols.ggml_backend_buffer_get_size(this.handle);
  }

  /** The buffer's first byte: host memory for the CPU backend, device memory for CUDA. */
  get base(): Pointer {
    this.assertLive();
    return this.lib.symbols.ggml_backend_buffer_get_base(this.handle);
  }

  /** Sets every byte of the buffer to `value`. */
  clear(value = 0): void {
    this.assertLive();
    this.lib.symbols.ggml_backend_buffer_clear(this.handle, value);
  }
}

export interface SchedulerOptions {
  /** Nodes a graph may have (default 16384). */
  readonly graphSize?: number;
}

/**
 * `ggml_backend_sched`: allocates a graph's intermediate tensors on the first backend that can
 * run each op (backends in priority order; the last must be the CPU) and runs the graph. One
 * graph is allocated at a time: running another re-plans the allocation.
 */
export class Scheduler extends NativeResource {
  readonly #lib: GgmlBaseLibrary;
  readonly #handle: Pointer;
  #allocated: ComputeGraph | undefined;

  constructor(
    readonly backends: readonly GgmlBackend[],
    options: SchedulerOptions = {},
  ) {
    if (backends.length === 0) throw new GgmlError("ERR_GGML_ARGUMENT", "a scheduler needs at least one backend");
    if (!backends[backends.length - 1]!.isCpu) throw new GgmlError("ERR_GGML_ARGUMENT", "a scheduler's last backend must be the CPU (ggml requires it)");
    const lib = backends[0]!.lib;
    const graphSize = options.graphSize ?? 16384;
    const handles = new BigUint64Array(backends.map((b) => BigInt(b.live)));
    const handle = lib.symbols.ggml_backend_sched_new(handles, 0, backends.length, graphSize, false, true);
    if (handle === 0) throw new GgmlError("ERR_GGML_ALLOC", "ggml_backend_sched_new failed");
    super("Scheduler", () => lib.symbols.ggml_backend_sched_free(handle));
    this.#lib = lib;
    this.#handle = handle;
  }

  /** Plans and allocates `graph`'s intermediate tensors; inputs can be written after this. */
  allocate(graph: ComputeGraph): void {
    this.assertLive();
    if (this.#allocated === graph) return;
    this.#lib.symbols.ggml_backend_sched_reset(this.#handle);
    this.#allocated = undefined;
    if (!this.#lib.symbols.ggml_backend_sched_alloc_graph(this.#handle, graph.live)) {
      // What each backend's compute buffer would need, so the message says how far off it is.
      const sizes = new BigUint64Array(this.backends.length);
      this.#lib.symbols.ggml_backend_sched_reset(this.#handle);
      this.#lib.symbols.ggml_backend_sched_reserve_size(this.#handle, graph.live, sizes);
      const needed = this.backends.map((b, i) => `${(Number(sizes[i]) / 2 ** 30).toFixed(2)} GiB on ${b.name}`).join(", ");
      throw new GgmlError("ERR_GGML_ALLOC", `could not allocate a graph of ${graph.nodeCount} nodes: out of memory (its intermediate tensors need ${needed})`);
    }
    this.#allocated = graph;
  }

  /** Runs `graph` (allocated first if it is not the one allocated); off the JS thread where the runtime can. */
  async compute(graph: ComputeGraph): Promise<void> {
    this.allocate(graph);
    const status = capabilities.nonblockingCalls
      ? await this.#lib.async.ggml_backend_sched_graph_compute(this.#handle, graph.live)
      : this.#lib.symbols.ggml_backend_sched_graph_compute(this.#handle, graph.live);
    if (status !== GgmlStatus.success) throw new GgmlError("ERR_GGML_COMPUTE", `graph computation failed with ggml_status ${status}`);
  }

  /** How many pieces the last allocated graph was split into between backends (1: one backend ran all of it). */
  get splits(): number {
    this.assertLive();
    return this.#lib.symbols.ggml_backend_sched_get_n_splits(this.#handle);
  }

  /** Bytes of compute buffer the scheduler holds on `backend`. */
  bufferBytes(backend: GgmlBackend): number {
    this.assertLive();
    return this.#lib.symbols.ggml_backend_sched_get_buffer_size(this.#handle, backend.live);
  }
}
