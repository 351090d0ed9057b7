// NcclCommunicator: one rank of an NCCL communicator, bound to one CudaContext, running
// collectives on device buffers (plain, pooled or managed) queued on a CudaStream. Every
// argument is checked in JS before NCCL sees it: a wrong count or offset in C would read or
// write past a buffer on the device, and a hang or a corrupted peer is all NCCL would report.
import { Out, type Pointer } from "../../ffi/index.ts";
import type { CudaContext } from "../context.ts";
import { ContextResource } from "../context-resource.ts";
import { CudaArgumentError, CudaStateError } from "../errors.ts";
import { CudaMemory, PinnedHostBuffer, checkRange } from "../memory.ts";
import { ncclUniqueIdBytes } from "./nccl-library.ts";
import { NcclError, NcclResult } from "./nccl-errors.ts";
import { type Nccl, type NcclUniqueId, nccl as defaultNccl } from "./nccl-runtime.ts";
import { type NcclDataTypeName, NcclReduceOp, type NcclReduceOpName, checkDataType, checkReduceOp } from "./nccl-types.ts";
import { type RendezvousOptions, rendezvous } from "./rendezvous.ts";
import type { CudaStream } from "../stream.ts";

export interface CommunicatorOptions {
  /** The NCCL library to use (tests inject one; default: this thread's, found by the locator). */
  readonly nccl?: Nccl;
}

export interface InitRankOptions extends CommunicatorOptions {
  /** The id rank 0 made with `Nccl.uniqueId()`; every rank passes the same bytes. */
  readonly uniqueId: NcclUniqueId;
  readonly rank: number;
  readonly nranks: number;
}

export interface ConnectOptions extends CommunicatorOptions, Omit<RendezvousOptions, "makeId"> {}

export interface CollectiveOptions {
  readonly dtype: NcclDataTypeName;
  /** The stream the collective is queued on; it must belong to the communicator's device. */
  readonly stream: CudaStream;
  /**
   * Elements: per rank for allReduce, broadcast and reduce; the receive count for reduceScatter
   * and the send count for allGather. Default: what the buffer that count describes holds.
   */
  readonly count?: number;
  /** Byte offsets into the buffers (default 0); multiples of the element size. */
  readonly sendOffset?: number;
  readonly recvOffset?: number;
}

export interface ReduceOptions extends CollectiveOptions {
  /** Default "sum". */
  readonly op?: NcclReduceOpName;
}

export interface RootOptions {
  /** The rank that sends (broadcast) or receives (reduce). */
  readonly root: number;
}

export interface SynchronizedOptions {
  /** Give up after this many milliseconds: the communicator is aborted and a CudaStateError thrown. */
  readonly timeoutMs?: number;
}

/** What one collective moves: validated buffers, counts and the place an in-place send must start. */
interface Layout {
  readonly send: CudaMemory | null;
  readonly recv: CudaMemory | null;
  readonly sendBytes: number;
  readonly recvBytes: number;
  /** Where the send range starts relative to the receive range when the call is in place. */
  readonly inPlaceDelta: number;
}

interface CommunicatorState {
  abort: boolean;
  status: number;
}

const yieldOnce = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** One rank of an NCCL communicator on one device. Dispose it (or its context) to destroy it. */
export class NcclCommunicator extends ContextResource {
  /** The ncclComm_t. */
  readonly handle: Pointer;
  readonly rank: number;
  /** The number of ranks. */
  readonly size: number;
  readonly nccl: Nccl;
  readonly #state: CommunicatorState;

  private constructor(context: CudaContext, library: Nccl, handle: Pointer, rank: number, size: number) {
    const state: CommunicatorState = { abort: false, status: NcclResult.success };
    const { symbols } = library;
    // The "event" phase is the first a context releases: the communicator goes before the
    // memory and streams its queued collectives use.
    super(context, "NcclCommunicator", "event", "ncclCommDestroy", () => {
      state.status = state.abort ? symbols.ncclCommAbort(handle) : symbols.ncclCommDestroy(handle);
      return 0;
    });
    this.handle = handle;
    this.rank = rank;
    this.size = size;
    this.nccl = library;
    this.#state = state;
  }

  /**
   * Joins communicator `uniqueId` as `rank` of `nranks` on the context's device
   * (ncclCommInitRank). Blocks until every rank has joined.
   */
  static initRank(context: CudaContext, options: InitRankOptions): NcclCommunicator {
    const { uniqueId, rank, nranks } = options;
    checkRankCount(nranks, "NcclCommunicator.initRank");
    checkRank(rank, nranks, "rank", "NcclCommunicator.initRank");
    if (!(uniqueId instanceof Uint8Array) || uniqueId.byteLength !== ncclUniqueIdBytes) {
      throw new CudaArgumentError(`NcclCommunicator.initRank: uniqueId must be the ${ncclUniqueIdBytes}-byte Uint8Array from Nccl.uniqueId(), got ${describe(uniqueId)}`);
    }
    const library = options.nccl ?? defaultNccl();
    context.activate();
    library.registerRuntime(context.runtime);
    const out = Out.pointer();
    library.check(library.symbols.ncclCommInitRank(out.buffer, nranks, { internal: uniqueId }, rank), "ncclCommInitRank", 0, `rank ${rank} of ${nranks} on device ${context.device}`);
    return new NcclCommunicator(context, library, out.value, rank, nranks);
  }

  /**
   * One communicator over several devices of this process (ncclCommInitAll): rank i runs on
   * `contexts[i]`'s device. Issue their collectives inside `nccl.group()`.
   */
  static initAll(contexts: readonly CudaContext[], options: CommunicatorOptions = {}): NcclCommunicator[] {
    if (!Array.isArray(contexts) || contexts.length === 0) throw new CudaArgumentError("NcclCommunicator.initAll: expected a non-empty array of CudaContexts");
    const devices = contexts.map((context) => context.device);
    if (new Set(devices).size !== devices.length) throw new CudaArgumentError(`NcclCommunicator.initAll: each device may appear once, got devices ${devices.join(", ")}`);
    for (const context of contexts) context.assertUsable();
    const library = options.nccl ?? defaultNccl();
    for (const context of contexts) library.registerRuntime(context.runtime);
    const out = new BigUint64Array(contexts.length);
    const status = library.symbols.ncclCommInitAll(out, contexts.length, Int32Array.from(devices));
    // ncclCommInitAll visits every device; the cached current device is stale.
    library.invalidateDevices();
    library.check(status, "ncclCommInitAll", 0, `devices ${devices.join(", ")}`);
    return contexts.map((context, rank) => new NcclCommunicator(context, library, Number(out[rank]), rank, contexts.length));
  }

  /**
   * Rendezvous and init in one: rank 0 makes the unique id and serves it on host:port, the
   * other ranks fetch it from there (see rendezvous.ts), then every rank joins.
   */
  static async connect(context: CudaContext, options: ConnectOptions): Promise<NcclCommunicator> {
    checkRankCount(options.nranks, "NcclCommunicator.connect");
    checkRank(options.rank, options.nranks, "rank", "NcclCommunicator.connect");
    context.assertUsable();
    const library = options.nccl ?? defaultNccl();
    const uniqueId = await rendezvous({ ...options, makeId: () => library.uniqueId() });
    return NcclCommunicator.initRank(context, { uniqueId, rank: options.rank, nranks: options.nranks, nccl: library });
  }

  /**
   * Finalizes the communicators of one process together and destroys them: NCCL's intra-node
   * teardown must see every local rank, so finalizing them one by one from one thread would wait
   * for ranks that are not being finalized yet.
   */
  static disposeAll(communicators: readonly NcclCommunicator[]): void {
    if (communicators.length === 0) return;
    const library = communicators[0]!.nccl;
    for (const communicator of communicators) {
      communicator.assertUsable();
      if (communicator.nccl !== library) throw new CudaArgumentError("NcclCommunicator.disposeAll: the communicators come from different NCCL libraries");
    }
    library.group(() => {
      for (const communicator of communicators) communicator.#call("ncclCommFinalize", library.symbols.ncclCommFinalize(communicator.handle));
    });
    for (const communicator of communicators) communicator.dispose();
  }

  /** The device NCCL runs this rank on (ncclCommCuDevice). */
  cudaDevice(): number {
    this.assertUsable();
    const out = Out.i32();
    this.#call("ncclCommCuDevice", this.nccl.symbols.ncclCommCuDevice(this.handle, out.buffer));
    return out.value;
  }

  /** The error an asynchronous operation hit (a lost peer, a network failure), or undefined. */
  asyncError(): NcclError | undefined {
    this.assertUsable();
    const out = Out.i32();
    this.#call("ncclCommGetAsyncError", this.nccl.symbols.ncclCommGetAsyncError(this.handle, out.buffer));
    if (out.value === NcclResult.success || out.value === NcclResult.inProgress) return undefined;
    return new NcclError(out.value, "an asynchronous NCCL operation", this.nccl.errorString(out.value), this.nccl.symbols.ncclGetLastError(this.handle) || undefined);
  }

  /**
   * Resolves when `stream`'s work is done, watching the communicator meanwhile: if NCCL reports
   * an asynchronous error (a peer died) or `timeoutMs` passes, the communicator is aborted, which
   * ends its stuck kernels, and the error is thrown. `stream.synchronized()` would wait forever.
   */
  async synchronized(stream: CudaStream, options: SynchronizedOptions = {}): Promise<void> {
    this.#streamHandle(stream, "synchronized");
    const { timeoutMs } = options;
    if (timeoutMs !== undefined && (typeof timeoutMs !== "number" || !(timeoutMs > 0))) {
      throw new CudaArgumentError(`NcclCommunicator.synchronized: timeoutMs must be a positive number, got ${String(timeoutMs)}`);
    }
    const deadline = timeoutMs === undefined ? Infinity : performance.now() + timeoutMs;
    for (let attempt = 0; ; attempt++) {
      if (stream.query()) return;
      const error = this.asyncError();
      if (error) {
        this.abort();
        throw error;
      }
      if (performance.now() > deadline) {
        this.abort();
        throw new CudaStateError(`NcclCommunicator.synchronized: rank ${this.rank}'s stream did not finish within ${timeoutMs} ms; the communicator was aborted (is every rank issuing the same collectives?)`);
      }
      // Short waits stay short; long ones poll every 8 ms at most.
      if (attempt < 16) await yieldOnce();
      else await new Promise((resolve) => setTimeout(resolve, Math.min(2 ** (attempt - 16), 8)));
    }
  }

  /**
   * The NCCL op for `options.op`. With one rank an average is the sum: NCCL 2.28 on the H100
   * machine left the last 3 of 100,003 float32 elements of a one-rank ncclAvg unwritten (float16
   * and the integer types were exact), so gpuffi asks for ncclSum there.
   */
  #reduceOp(options: ReduceOptions, what: string): number {
    const op = checkReduceOp(options.op ?? "sum", what);
    return this.size === 1 && op === NcclReduceOp.avg ? NcclReduceOp.sum : op;
  }

  /** Sum (or `op`) of every rank's `send` into every rank's `recv` (in place when they are the same range). */
  allReduce(send: CudaMemory, recv: CudaMemory, options: ReduceOptions): void {
    const what = "NcclCommunicator.allReduce";
    checkOptions(options, what);
    const op = this.#reduceOp(options, what);
    this.#run(what, send, recv, options, (es, count) => ({ send, recv, sendBytes: count * es, recvBytes: count * es, inPlaceDelta: 0 }), "send",
      (s, r, count, dtype, stream) => this.nccl.symbols.ncclAllReduce(s, r, count, dtype, op, this.handle, stream), "ncclAllReduce");
  }

  /** `root`'s `send` into every rank's `recv`. `send` is read on the root only and may be null elsewhere. */
  broadcast(send: CudaMemory | null, recv: CudaMemory, options: CollectiveOptions & RootOptions): void {
    const what = "NcclCommunicator.broadcast";
    checkOptions(options, what);
    const root = options.root;
    checkRank(root, this.size, "root", what);
    const source = this.#required(send, this.rank === root, "send", `${what} (rank ${this.rank} is the root)`);
    this.#run(what, source, recv, options, (es, count) => ({ send: source, recv, sendBytes: source ? count * es : 0, recvBytes: count * es, inPlaceDelta: 0 }), "recv",
      (s, r, count, dtype, stream) => this.nccl.symbols.ncclBroadcast(source ? s : r, r, count, dtype, root, this.handle, stream), "ncclBroadcast");
  }

  /** Sum (or `op`) of every rank's `send` into `root`'s `recv`; `recv` may be null on the other ranks. */
  reduce(send: CudaMemory, recv: CudaMemory | null, options: ReduceOptions & RootOptions): void {
    const what = "NcclCommunicator.reduce";
    checkOptions(options, what);
    const op = this.#reduceOp(options, what);
    const root = options.root;
    checkRank(root, this.size, "root", what);
    const target = this.#required(recv, this.rank === root, "recv", `${what} (rank ${this.rank} is the root)`);
    this.#run(what, send, target, options, (es, count) => ({ send, recv: target, sendBytes: count * es, recvBytes: target ? count * es : 0, inPlaceDelta: 0 }), "send",
      (s, r, count, dtype, stream) => this.nccl.symbols.ncclReduce(s, r, count, dtype, op, root, this.handle, stream), "ncclReduce");
  }

  /**
   * Reduces `size` blocks of `count` elements across ranks; rank i receives block i. In place
   * when `recv` is block `rank` of `send`.
   */
  reduceScatter(send: CudaMemory, recv: CudaMemory, options: ReduceOptions): void {
    const what = "NcclCommunicator.reduceScatter";
    checkOptions(options, what);
    const op = this.#reduceOp(options, what);
    this.#run(what, send, recv, options, (es, count) => ({ send, recv, sendBytes: this.size * count * es, recvBytes: count * es, inPlaceDelta: -this.rank * count * es }), "recv",
      (s, r, count, dtype, stream) => this.nccl.symbols.ncclReduceScatter(s, r, count, dtype, op, this.handle, stream), "ncclReduceScatter");
  }

  /** Every rank's `count` elements, in rank order, into every rank's `recv`. In place when `send` is block `rank` of `recv`. */
  allGather(send: CudaMemory, recv: CudaMemory, options: CollectiveOptions): void {
    const what = "NcclCommunicator.allGather";
    checkOptions(options, what);
    this.#run(what, send, recv, options, (es, count) => ({ send, recv, sendBytes: count * es, recvBytes: this.size * count * es, inPlaceDelta: this.rank * count * es }), "send",
      (s, r, count, dtype, stream) => this.nccl.symbols.ncclAllGather(s, r, count, dtype, this.handle, stream), "ncclAllGather");
  }

  /** Waits for outstanding operations and flushes NCCL's state (ncclCommFinalize); dispose afterwards. */
  finalize(): void {
    this.activate();
    this.#call("ncclCommFinalize", this.nccl.symbols.ncclCommFinalize(this.handle));
  }

  /**
   * Ends the communicator at once (ncclCommAbort): its pending operations are cancelled and it
   * is disposed. For error paths, e.g. a peer that died; a no-op on a disposed communicator.
   */
  abort(): void {
    if (this.disposed) return;
    this.#state.abort = true;
    this.dispose();
  }

  /** Destroys the communicator (ncclCommDestroy); a failed destroy throws an NcclError after it is gone. */
  override dispose(): void {
    super.dispose();
    const status = this.#state.status;
    if (status !== NcclResult.success) {
      this.#state.status = NcclResult.success;
      this.nccl.check(status, this.#state.abort ? "ncclCommAbort" : "ncclCommDestroy");
    }
  }

  #call(call: string, status: number): void {
    this.nccl.check(status, call, this.handle, `rank ${this.rank} of ${this.size} on device ${this.context.device}`);
  }

  #streamHandle(stream: CudaStream, what: string): Pointer {
    if (!stream || typeof (stream as { handleFor?: unknown }).handleFor !== "function") {
      throw new CudaArgumentError(`NcclCommunicator.${what}: a CudaStream is required, got ${describe(stream)}`);
    }
    this.activate();
    return stream.handleFor(this.context.device, `NcclCommunicator.${what}`);
  }

  /** A buffer that must be given on this rank (`needed`), or null where NCCL ignores it. */
  #required(memory: CudaMemory | null | undefined, needed: boolean, name: string, what: string): CudaMemory | null {
    if (memory === null || memory === undefined) {
      if (needed) throw new CudaArgumentError(`${what}: ${name} is required`);
      return null;
    }
    return memory;
  }

  #checkBuffer(memory: unknown, name: string, what: string): void {
    if (!(memory instanceof CudaMemory) || memory instanceof PinnedHostBuffer) {
      throw new CudaArgumentError(`${what}: ${name} must be device memory (a DeviceBuffer, a pool's buffer or a ManagedBuffer), got ${describe(memory)}`);
    }
    if (memory.device !== this.context.device) {
      throw new CudaArgumentError(`${what}: ${name} is on device ${memory.device}, but rank ${this.rank} runs on device ${this.context.device}`);
    }
  }

  /**
   * Validates a collective and queues it: dtype, buffers and their device, offsets aligned to
   * the element, the count (given, or what the `countFrom` buffer holds), both ranges in their
   * buffers, no overlap other than NCCL's in-place form, the stream's device; then the C call.
   */
  #run(
    what: string,
    send: CudaMemory | null,
    recv: CudaMemory | null,
    options: CollectiveOptions,
    layoutOf: (elementSize: number, count: number) => Layout,
    countFrom: "send" | "recv",
    call: (send: Pointer, recv: Pointer, count: number, dtype: number, stream: Pointer) => number,
    callName: string,
  ): void {
    this.assertUsable();
    const dtype = checkDataType(options.dtype, what, this.nccl.version.code);
    const es = dtype.bytes;
    if (send !== null) this.#checkBuffer(send, "send", what);
    if (recv !== null) this.#checkBuffer(recv, "recv", what);
    const sendOffset = checkOffset(options.sendOffset, es, "sendOffset", what);
    const recvOffset = checkOffset(options.recvOffset, es, "recvOffset", what);
    const count = options.count ?? defaultCount(countFrom === "send" ? send : recv, countFrom === "send" ? sendOffset : recvOffset, es, this.size, layoutOf, countFrom, options.dtype, what);
    if (typeof count !== "number" || !Number.isSafeInteger(count) || count < 0) {
      throw new CudaArgumentError(`${what}: count must be a whole number of elements ≥ 0, got ${String(count)}`);
    }
    const layout = layoutOf(es, count);
    if (layout.send) checkRange(`${what} (send)`, sendOffset, layout.sendBytes, layout.send.byteLength);
    if (layout.recv) checkRange(`${what} (recv)`, recvOffset, layout.recvBytes, layout.recv.byteLength);
    const stream = this.#streamHandle(options.stream, what.slice(what.indexOf(".") + 1));
    const s = layout.send ? layout.send.address(sendOffset, layout.sendBytes) : 0;
    const r = layout.recv ? layout.recv.address(recvOffset, layout.recvBytes) : 0;
    if (layout.send && layout.recv && s < r + layout.recvBytes && r < s + layout.sendBytes && s - r !== layout.inPlaceDelta) {
      throw new CudaArgumentError(`${what}: the send and receive ranges overlap, and not in NCCL's in-place layout (send must start ${layout.inPlaceDelta} bytes after recv)`);
    }
    this.#call(callName, call(s, r, count, dtype.code, stream));
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (ArrayBuffer.isView(value)) return `${value.constructor.name} of ${value.byteLength} bytes`;
  return typeof value === "object" ? (value.constructor?.name ?? "object") : `${typeof value} ${String(value)}`;
}

function checkOptions(options: unknown, what: string): void {
  if (!options || typeof options !== "object") throw new CudaArgumentError(`${what}: options with dtype and stream are required`);
}

function checkRankCount(nranks: unknown, what: string): asserts nranks is number {
  if (typeof nranks !== "number" || !Number.isSafeInteger(nranks) || nranks < 1 || nranks > 0x7fffffff) {
    throw new CudaArgumentError(`${what}: nranks must be a whole number ≥ 1, got ${String(nranks)}`);
  }
}

function checkRank(rank: unknown, nranks: number, name: string, what: string): asserts rank is number {
  if (typeof rank !== "number" || !Number.isSafeInteger(rank) || rank < 0 || rank >= nranks) {
    throw new CudaArgumentError(`${what}: ${name} must be a whole number in [0, ${nranks}), got ${String(rank)}`);
  }
}

function checkOffset(offset: unknown, elementSize: number, name: string, what: string): number {
  if (offset === undefined) return 0;
  if (typeof offset !== "number" || !Number.isSafeInteger(offset) || offset < 0 || offset % elementSize !== 0) {
    throw new CudaArgumentError(`${what}: ${name} must be a byte offset ≥ 0 and a multiple of the element size (${elementSize}), got ${String(offset)}`);
  }
  return offset;
}

/** The count a buffer implies: its bytes after the offset over the bytes one count unit takes there. */
function defaultCount(
  memory: CudaMemory | null,
  offset: number,
  elementSize: number,
  size: number,
  layoutOf: (elementSize: number, count: number) => Layout,
  side: "send" | "recv",
  dtype: string,
  what: string,
): number {
  if (memory === null) throw new CudaArgumentError(`${what}: pass count (the ${side} buffer that would imply it is null on this rank)`);
  const unit = side === "send" ? layoutOf(elementSize, 1).sendBytes : layoutOf(elementSize, 1).recvBytes;
  const available = memory.byteLength - offset;
  if (available < 0 || available % unit !== 0) {
    throw new CudaArgumentError(`${what}: the ${side} buffer's ${available} bytes after the offset are not a whole number of ${unit / elementSize} × ${dtype} (of ${size} ranks); pass count`);
  }
  return available / unit;
}
