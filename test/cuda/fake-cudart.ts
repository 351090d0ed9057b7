// A host-memory stand-in for libcudart, so that the CUDA layer's own logic (validation, state,
// disposal order, sticky errors, copies) runs on machines without a GPU. Allocations are real
// C heap memory (HostMemory), copies real memcpy through zero-copy views; it records every call.
// With `deferred: true` it models a GPU that is slow: work queued on a stream (copies, memsets,
// 2D copies) runs only when something waits for it (stream/event/device synchronize, cudaFree,
// a copy into pageable JS memory) or the test calls `runQueued()`, and events report NotReady
// until their stream got that far. Code that reads a staging buffer before synchronizing, or
// reuses one while a copy from it is still queued, then reads wrong data, as it would on a GPU.
// cudaHostRegister keeps a list of registered ranges (whole pages, as CUDA pins them); a queued
// copy from a range that was unregistered before it ran reads nothing and is listed in `faults`
// (its memory may be unmapped by then: reading it could crash the test).
// Stream capture: while a stream captures, the work submitted to it is recorded into a graph
// instead of queued; cudaGraphLaunch submits what the graph recorded as one operation of the
// launch stream, so deferred mode defers a launch like a copy. What the CUDA programming guide
// calls invalid during capture fails as CUDA fails it and invalidates the capture, whose end then
// returns cudaErrorStreamCaptureInvalidated and no graph: waiting for or querying the capturing
// stream (cudaErrorStreamCaptureUnsupported), the device while any stream captures
// (cudaDeviceSynchronize, cudaFree), copying from it into pageable JS memory, allocating while a
// capture not in mode relaxed is active, and using the legacy default stream while a blocking
// stream captures (cudaErrorStreamCaptureImplicit). Event records, stream-ordered allocations and
// copies from pageable JS memory on a capturing stream are not modelled: they throw.
import { HostMemory, nativeView, type Pointer } from "../../src/ffi/index.ts";
import { type CudartApi, CudaRuntime } from "../../src/cuda/index.ts";

export interface FakeCudart {
  readonly runtime: CudaRuntime;
  /** Every C call made, in order, e.g. `cudaMalloc`, `cudaFree`. */
  readonly calls: string[];
  /** Live allocations by address. */
  readonly live: Map<Pointer, HostMemory>;
  /** The status the next call of that name returns instead of running. */
  readonly failNext: Map<string, number>;
  /** Runs all queued stream work now (deferred mode), as a GPU catching up would. */
  runQueued(): void;
  /** Operations queued and not yet run (always 0 unless deferred). */
  readonly queuedOperations: number;
  /** Every cudaHostRegister that succeeded, in order. */
  readonly hostRegistrations: readonly HostRegistration[];
  /** Registrations not unregistered yet. */
  readonly liveRegistrations: number;
  /** What a GPU would have done wrong: copies from host memory unregistered before they ran. */
  readonly faults: string[];
  /**
   * Submits stream-ordered work as the fake's own copies do: run now, queued (deferred), or
   * recorded while `stream` captures; returns the cudaError_t of the submission. For fakes of
   * libraries that work on its streams (cuBLAS).
   */
  enqueue(stream: Pointer, op: () => void): number;
  /** Graphs from cudaStreamEndCapture not yet destroyed (cudaGraph_t → their operations). */
  readonly graphs: ReadonlyMap<Pointer, readonly (() => void)[]>;
  /** Executable graphs not yet destroyed (cudaGraphExec_t → their operations). */
  readonly graphExecs: ReadonlyMap<Pointer, readonly (() => void)[]>;
}

export interface HostRegistration {
  readonly ptr: Pointer;
  readonly byteLength: number;
  readonly flags: number;
  live: boolean;
}

export interface FakeCudartOptions {
  devices?: number;
  runtimeVersion?: number;
  driverVersion?: number;
  freeMemory?: number;
  /** Queue stream work until something waits for it (see above). Default false: everything runs at once. */
  deferred?: boolean;
  /** cudaDevAttrTexturePitchAlignment, which cudaMallocPitch rounds pitches to (default 512, as on the H100). */
  pitchAlignment?: number;
  /** cudaDevAttrHostRegisterReadOnlySupported (default true); without it cudaHostRegisterReadOnly fails with cudaErrorNotSupported. */
  readOnlyRegister?: boolean;
}

const hostPage = 4096;
const cudaHostRegisterReadOnly = 0x08;
const cudaStreamNonBlocking = 0x01;
// cudaStreamCaptureModeRelaxed: the capture forbids no potentially unsafe call (cudaMalloc).
const captureModeRelaxed = 2;
// cudaError_t (driver_types.h).
const invalidValue = 1;
const invalidResourceHandle = 400;
const illegalState = 401;
const captureUnsupported = 900;
const captureInvalidated = 901;
const captureImplicit = 906;

const errorNames: Record<number, string> = { 0: "cudaSuccess", 1: "cudaErrorInvalidValue", 2: "cudaErrorMemoryAllocation", 12: "cudaErrorInvalidPitchValue", 100: "cudaErrorNoDevice", 400: "cudaErrorInvalidResourceHandle", 401: "cudaErrorIllegalState", 600: "cudaErrorNotReady", 700: "cudaErrorIllegalAddress", 712: "cudaErrorHostMemoryAlreadyRegistered", 713: "cudaErrorHostMemoryNotRegistered", 801: "cudaErrorNotSupported", 900: "cudaErrorStreamCaptureUnsupported", 901: "cudaErrorStreamCaptureInvalidated", 906: "cudaErrorStreamCaptureImplicit" };

/** A capture in progress: the work recorded so far, and whether a call CUDA refuses during capture has invalidated it. */
interface Capture {
  readonly ops: (() => void)[];
  readonly mode: number;
  /** The stream is not cudaStreamNonBlocking, so the legacy default stream may not be used while it captures. */
  readonly blocking: boolean;
  invalidated: boolean;
}

export function fakeCudart(options: FakeCudartOptions = {}): FakeCudart {
  const calls: string[] = [];
  const pitchAlignment = options.pitchAlignment ?? 512;
  // Stream work: one FIFO per stream handle (0: the legacy default stream), with counts of
  // operations queued and run so far, so that an event knows how far its stream must get.
  const queues = new Map<Pointer, { ops: (() => void)[]; queued: number; ran: number }>();
  const queueOf = (stream: Pointer) => {
    let queue = queues.get(stream);
    if (!queue) queues.set(stream, (queue = { ops: [], queued: 0, ran: 0 }));
    return queue;
  };
  const runStream = (stream: Pointer) => {
    const queue = queueOf(stream);
    for (const op of queue.ops.splice(0)) {
      op();
      queue.ran++;
    }
  };
  const runAll = () => {
    for (const stream of queues.keys()) runStream(stream);
  };
  // The legacy default stream orders with the others: its work waits for theirs and theirs for its.
  const waitFor = (stream: Pointer) => (stream === 0 ? runAll() : (runStream(0), runStream(stream)));
  const captures = new Map<Pointer, Capture>();
  const nonBlockingStreams = new Set<Pointer>();
  const graphs = new Map<Pointer, readonly (() => void)[]>();
  const graphExecs = new Map<Pointer, readonly (() => void)[]>();
  /** Invalidates the captures `hit` and returns `status`; 0 when there are none. */
  const refuse = (hit: readonly Capture[], status: number) => {
    for (const capture of hit) capture.invalidated = true;
    return hit.length === 0 ? 0 : status;
  };
  /** Waiting for (or querying) `stream`, or work on the legacy stream, against the captures in progress. */
  const conflictOn = (stream: Pointer) =>
    stream === 0
      ? refuse([...captures.values()].filter((capture) => capture.blocking), captureImplicit)
      : refuse(captures.has(stream) ? [captures.get(stream)!] : [], captureUnsupported);
  /** A call that waits for the whole device: it conflicts with every capture. */
  const deviceWide = () => refuse([...captures.values()], captureUnsupported);
  /** A potentially unsafe call (an allocation): refused by every capture not in mode relaxed. */
  const unsafe = () => refuse([...captures.values()].filter((capture) => capture.mode !== captureModeRelaxed), captureUnsupported);
  const unmodelled = (stream: Pointer, what: string) => {
    if (captures.has(stream)) throw new Error(`the fake libcudart does not model ${what} on a capturing stream`);
  };
  const enqueue = (stream: Pointer, op: () => void) => {
    const capture = captures.get(stream);
    if (capture) {
      if (capture.invalidated) return captureInvalidated;
      capture.ops.push(op);
      return 0;
    }
    const conflict = stream === 0 ? conflictOn(0) : 0;
    if (conflict !== 0) return conflict;
    if (!options.deferred) return (op(), 0);
    if (stream === 0) runAll();
    else runStream(0);
    const queue = queueOf(stream);
    queue.ops.push(op);
    queue.queued++;
    return 0;
  };
  const eventMarks = new Map<Pointer, { stream: Pointer; at: number }>();
  const eventDone = (event: Pointer) => {
    const mark = eventMarks.get(event);
    return !mark || queueOf(mark.stream).ran >= mark.at;
  };
  /** True when [ptr, ptr + n) lies inside one live allocation. */
  const inAllocation = (ptr: Pointer, n: number) => {
    for (const memory of live.values()) if (memory.ptr <= ptr && ptr + n <= memory.ptr + memory.byteLength) return true;
    return false;
  };
  const live = new Map<Pointer, HostMemory>();
  const failNext = new Map<string, number>();
  const handles = new Set<Pointer>();
  let nextHandle = 0x1000;
  const writeOut = (out: ArrayBufferView | null, value: number) => {
    new BigUint64Array(out!.buffer, out!.byteOffset, 1)[0] = BigInt(value);
  };
  const writeInt = (out: ArrayBufferView | null, value: number) => {
    new Int32Array(out!.buffer, out!.byteOffset, 1)[0] = value;
  };
  const allocate = (out: ArrayBufferView | null, size: number) => {
    const memory = HostMemory.alloc(size);
    live.set(memory.ptr, memory);
    writeOut(out, memory.ptr);
    return 0;
  };
  const release = (ptr: Pointer) => {
    runAll();
    const memory = live.get(ptr);
    if (!memory) return 1;
    live.delete(ptr);
    memory.dispose();
    return 0;
  };
  const alloc = (out: ArrayBufferView | null, size: number) => unsafe() || allocate(out, size);
  // cudaFree and cudaFreeHost wait for the device first.
  const free = (ptr: Pointer) => deviceWide() || release(ptr);
  const handle = (out: ArrayBufferView | null) => {
    const h = nextHandle++;
    handles.add(h);
    writeOut(out, h);
    return 0;
  };
  const destroy = (h: Pointer) => (handles.delete(h) ? 0 : 400);
  const readOnlyRegister = options.readOnlyRegister ?? true;
  const hostRegistrations: HostRegistration[] = [];
  const faults: string[] = [];
  const pagesOf = (ptr: Pointer, n: number) => [Math.floor(ptr / hostPage) * hostPage, Math.ceil((ptr + n) / hostPage) * hostPage] as const;
  const registrationAt = (ptr: Pointer, n: number) =>
    hostRegistrations.find((r) => r.live && r.ptr <= ptr && ptr + n <= r.ptr + r.byteLength);
  const hostRegister = (ptr: Pointer, n: number, flags: number) => {
    if (n === 0) return 1;
    if (flags & cudaHostRegisterReadOnly && !readOnlyRegister) return 801;
    const [start, end] = pagesOf(ptr, n);
    const overlaps = hostRegistrations.some((r) => {
      const [rStart, rEnd] = pagesOf(r.ptr, r.byteLength);
      return r.live && start < rEnd && rStart < end;
    });
    if (overlaps) return 712;
    hostRegistrations.push({ ptr, byteLength: n, flags, live: true });
    return 0;
  };
  const hostUnregister = (ptr: Pointer) => {
    const registration = hostRegistrations.find((r) => r.live && r.ptr === ptr);
    if (!registration) return 713;
    registration.live = false;
    return 0;
  };
  const memcpy = (dst: Pointer, src: Pointer, n: number, _kind?: number, stream: Pointer = 0) => {
    const registered = registrationAt(src, n);
    return enqueue(stream, () => {
      if (registered && !registered.live) return void faults.push(`a copy of ${n} bytes from 0x${src.toString(16)} ran after its memory was unregistered`);
      new Uint8Array(nativeView(dst, n)).set(new Uint8Array(nativeView(src, n)));
    });
  };
  // cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, kind, stream): `height` rows of
  // `width` bytes, each row `spitch` after the last in the source and `dpitch` in the destination.
  const memcpy2D = (dst: Pointer, dpitch: number, src: Pointer, spitch: number, width: number, height: number, _kind: number, stream: Pointer) => {
    if (width > dpitch || width > spitch) return 12;
    if (width === 0 || height === 0) return 0;
    if (!inAllocation(dst, (height - 1) * dpitch + width) || !inAllocation(src, (height - 1) * spitch + width)) return 1;
    return enqueue(stream, () => {
      for (let row = 0; row < height; row++) new Uint8Array(nativeView(dst + row * dpitch, width)).set(new Uint8Array(nativeView(src + row * spitch, width)));
    });
  };
  // cudaMemset2DAsync(devPtr, pitch, value, width, height, stream).
  const memset2D = (ptr: Pointer, pitch: number, value: number, width: number, height: number, stream: Pointer) => {
    if (width > pitch) return 12;
    if (width === 0 || height === 0) return 0;
    if (!inAllocation(ptr, (height - 1) * pitch + width)) return 1;
    return enqueue(stream, () => {
      for (let row = 0; row < height; row++) new Uint8Array(nativeView(ptr + row * pitch, width)).fill(value & 0xff);
    });
  };
  // cudaMallocPitch(devPtr, pitch, width, height): rows rounded up to the pitch alignment.
  const mallocPitch = (out: ArrayBufferView | null, pitchOut: ArrayBufferView | null, width: number, height: number) => {
    if (width === 0 || height === 0) return 1;
    const pitch = Math.ceil(width / pitchAlignment) * pitchAlignment;
    writeOut(pitchOut, pitch);
    return alloc(out, pitch * height);
  };
  let currentDevice = 0;
  const bytesOf = (view: ArrayBufferView | null) => new Uint8Array(view!.buffer, view!.byteOffset, view!.byteLength);
  const implementation: Record<string, (...args: never[]) => unknown> = {
    cudaGetErrorName: (status: number) => errorNames[status] ?? `cudaError${status}`,
    cudaGetErrorString: (status: number) => `fake error ${status}`,
    cudaRuntimeGetVersion: (out: ArrayBufferView) => (writeInt(out, options.runtimeVersion ?? 13000), 0),
    cudaDriverGetVersion: (out: ArrayBufferView) => (writeInt(out, options.driverVersion ?? 13000), 0),
    cudaGetDeviceCount: (out: ArrayBufferView) => ((options.devices ?? 2) === 0 ? 100 : (writeInt(out, options.devices ?? 2), 0)),
    cudaSetDevice: (device: number) => ((currentDevice = device), 0),
    // cudaGetDevice with the out-parameter as an address (CudaRuntime.currentDevice).
    cudaGetDeviceAt: (out: Pointer) => (new Int32Array(nativeView(out, 4))[0] = currentDevice, 0),
    cudaDeviceSynchronize: () => deviceWide() || (runAll(), 0),
    cudaGetLastError: () => 0,
    // cudaDevAttrTexturePitchAlignment (51) and HostRegisterReadOnlySupported (113); every other attribute reads 0.
    cudaDeviceGetAttribute: (out: ArrayBufferView, attribute: number) => (writeInt(out, attribute === 51 ? pitchAlignment : attribute === 113 ? Number(readOnlyRegister) : 0), 0),
    cudaMemGetInfo: (free: ArrayBufferView, total: ArrayBufferView) => (writeOut(free, options.freeMemory ?? 2 ** 30), writeOut(total, 2 ** 31), 0),
    cudaMalloc: alloc,
    cudaMallocAsync: (out: ArrayBufferView, size: number, stream: Pointer) => (unmodelled(stream, "cudaMallocAsync"), allocate(out, size)),
    cudaMallocManaged: alloc,
    cudaHostAlloc: alloc,
    cudaMallocPitch: mallocPitch,
    cudaFree: free,
    cudaFreeAsync: (ptr: Pointer, stream: Pointer) => (unmodelled(stream, "cudaFreeAsync"), release(ptr)),
    cudaFreeHost: free,
    cudaHostRegister: hostRegister,
    cudaHostUnregister: hostUnregister,
    cudaStreamCreateWithFlags: (out: ArrayBufferView, flags: number) => {
      if (flags & cudaStreamNonBlocking) nonBlockingStreams.add(nextHandle);
      return handle(out);
    },
    cudaEventCreateWithFlags: handle,
    cudaStreamDestroy: destroy,
    cudaEventDestroy: destroy,
    cudaStreamSynchronize: (stream: Pointer) => conflictOn(stream) || (waitFor(stream), 0),
    cudaStreamQuery: (stream: Pointer) => conflictOn(stream) || (queueOf(stream).ops.length === 0 && (stream !== 0 || queueOf(0).ops.length === 0) ? 0 : 600),
    cudaStreamBeginCapture: (stream: Pointer, mode: number) => {
      // "Capture may not be initiated if stream is cudaStreamLegacy."
      if (stream === 0) return captureUnsupported;
      if (!handles.has(stream) || ![0, 1, 2].includes(mode)) return invalidValue;
      if (captures.has(stream)) return illegalState;
      captures.set(stream, { ops: [], mode, blocking: !nonBlockingStreams.has(stream), invalidated: false });
      return 0;
    },
    cudaStreamEndCapture: (stream: Pointer, out: ArrayBufferView) => {
      const capture = captures.get(stream);
      if (!capture) return illegalState;
      captures.delete(stream);
      if (capture.invalidated) return (writeOut(out, 0), captureInvalidated);
      const graph = nextHandle++;
      graphs.set(graph, capture.ops);
      writeOut(out, graph);
      return 0;
    },
    // gpuffi instantiates with flags 0; the fake takes nothing else.
    cudaGraphInstantiateWithFlags: (out: ArrayBufferView, graph: Pointer, flags: number | bigint) => {
      const ops = graphs.get(graph);
      if (!ops) return invalidResourceHandle;
      if (BigInt(flags) !== 0n) return invalidValue;
      const exec = nextHandle++;
      graphExecs.set(exec, [...ops]);
      writeOut(out, exec);
      return 0;
    },
    cudaGraphLaunch: (exec: Pointer, stream: Pointer) => {
      const ops = graphExecs.get(exec);
      if (!ops) return invalidResourceHandle;
      return enqueue(stream, () => {
        for (const op of ops) op();
      });
    },
    cudaGraphExecDestroy: (exec: Pointer) => (graphExecs.delete(exec) ? 0 : invalidResourceHandle),
    cudaGraphDestroy: (graph: Pointer) => (graphs.delete(graph) ? 0 : invalidResourceHandle),
    cudaEventRecord: (event: Pointer, stream: Pointer) => (unmodelled(stream, "cudaEventRecord"), eventMarks.set(event, { stream, at: queueOf(stream).queued }), 0),
    cudaEventQuery: (event: Pointer) => (eventDone(event) ? 0 : 600),
    // Later work on `stream` waits for the event: in deferred mode a queued operation that first
    // runs the event's stream (all of it: a GPU may be further along than the event, never behind).
    cudaStreamWaitEvent: (stream: Pointer, event: Pointer) => {
      const mark = eventMarks.get(event);
      return enqueue(stream, () => void (mark && mark.stream !== stream && waitFor(mark.stream)));
    },
    cudaEventSynchronize: (event: Pointer) => {
      const mark = eventMarks.get(event);
      if (mark) waitFor(mark.stream);
      return 0;
    },
    cudaMemcpyAsync: memcpy,
    cudaMemcpy2DAsync: memcpy2D,
    cudaMemsetAsync: (ptr: Pointer, value: number, n: number, stream: Pointer) => enqueue(stream, () => new Uint8Array(nativeView(ptr, n)).fill(value)),
    cudaMemset2DAsync: memset2D,
  };
  const symbols = new Proxy({}, {
    get: (_, name: string) => (...args: never[]) => {
      calls.push(name);
      const failure = failNext.get(name);
      if (failure !== undefined) {
        failNext.delete(name);
        return failure;
      }
      const fn = implementation[name];
      if (!fn) throw new Error(`the fake libcudart does not implement ${name}`);
      return fn(...args);
    },
  });
  const traced = <A extends unknown[]>(name: string, fn: (...args: A) => number) => (...args: A) => {
    calls.push(name);
    return fn(...args);
  };
  const api: CudartApi = {
    path: "/fake/libcudart.so",
    symbols: symbols as CudartApi["symbols"],
    async: {},
    // From pageable JS memory: CUDA stages the bytes before returning, the device write is queued.
    copyToDevice: traced("cudaMemcpyAsync", (dst: Pointer, src: ArrayBufferView | null, n: number, _kind: number, stream: Pointer) => {
      unmodelled(stream ?? 0, "a copy from pageable JS memory");
      const staged = bytesOf(src).slice(0, n);
      return enqueue(stream ?? 0, () => new Uint8Array(nativeView(dst, n)).set(staged));
    }),
    // Into pageable JS memory: returns once the data landed, after the stream's earlier work.
    copyToHost: traced("cudaMemcpyAsync", (dst: ArrayBufferView | null, src: Pointer, n: number, _kind: number, stream: Pointer) => {
      const refused = conflictOn(stream ?? 0);
      if (refused !== 0) return refused;
      waitFor(stream ?? 0);
      bytesOf(dst).set(new Uint8Array(nativeView(src, n)));
      return 0;
    }),
    prefetch: traced("cudaMemPrefetchAsync", () => 0),
    advise: traced("cudaMemAdvise", () => 0),
  };
  return {
    runtime: new CudaRuntime(api),
    calls,
    live,
    failNext,
    runQueued: runAll,
    get queuedOperations() {
      let n = 0;
      for (const queue of queues.values()) n += queue.ops.length;
      return n;
    },
    hostRegistrations,
    get liveRegistrations() {
      return hostRegistrations.filter((r) => r.live).length;
    },
    faults,
    enqueue,
    graphs,
    graphExecs,
  };
}
