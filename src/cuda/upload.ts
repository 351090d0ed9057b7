// Streamed uploads of model files to the GPU. Copies from pageable memory run at a fraction of
// PCIe speed (CUDA stages them through its own pinned buffer, synchronously), so the bytes reach
// the GPU from page-locked memory by one of three strategies:
//  - staged (default): file ranges are read into a ring of pinned staging buffers and copied from
//    there asynchronously on a stream. Each ring slot is its own pipeline: read into the slot,
//    queue the copy, record the slot's event; the slot is refilled only once that event says its
//    copy is done. With N slots, N reads (openFileReads: many at once on every runtime) and the
//    copies of finished reads overlap. Bound by the reads: page cache → pinned memory, a few GB/s
//    a thread.
//  - mapped: the file is mapped read-only and each page-aligned window of it is registered with
//    cudaHostRegister, copied straight from the page cache, and unregistered once its copy's
//    event completed. Registering window i + 1 (on the JS thread) overlaps the copy of window i;
//    no byte passes through the CPU's caches.
//  - hybrid: both at once over one upload, so that their rates may add up (staged is bound by
//    the reads, mapped by pinning pages; neither waits for the other's bottleneck). The ranges
//    are cut into chunks at file offsets that are multiples of the page-rounded chunk size, as
//    the mapped windows are, so that no two chunks share a page. One queue holds them in file
//    order: the staging ring takes one chunk at a time from the front (one read per chunk, then
//    the copies of its pieces), the mapped side takes runs of up to `windowChunks` chunks that
//    follow each other in the file from the back (one registration of the run's pages), until
//    the two meet: neither side is given a share, the faster one simply takes more. Staged copies
//    on the upload's stream, mapped on a second stream of its own. On the H200 host the rates did
//    not add (the registrations on the JS thread and the reads compete): it is not a default anywhere.
import { open, stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { type CudaContext, type CudaEvent, type CudaMemory, type CudaStream, type DeviceBuffer, type PinnedPool, RegisteredHostMemory, checkRange } from "./index.ts";
import { yieldOnce } from "./stream.ts";
import { type FfiCapabilities, type FileReads, GpuffiError, MappedFile, type Pointer, capabilities, openFileReads, pageSize } from "../ffi/index.ts";
import { SafetensorsFormatError, openGguf, openSafetensors } from "../formats/index.ts";

/** An upload was asked for something it cannot do: bad options, ranges outside the file, unknown tensors. */
export class UploadError extends GpuffiError {
  override name = "UploadError";
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERR_UPLOAD", message, options);
  }
}

/** One byte range of the file and where it goes. */
export interface UploadRange {
  /** Absolute offset in the file. */
  readonly offset: number;
  readonly byteLength: number;
  readonly target: CudaMemory;
  readonly targetOffset?: number;
}

/** How file bytes reach page-locked memory (see the top of upload.ts). */
export type UploadStrategy = "staged" | "mapped" | "hybrid";
export const uploadStrategies: readonly UploadStrategy[] = ["staged", "mapped", "hybrid"];

export interface UploadOptions {
  /**
   * "staged": read into pinned staging buffers; "mapped": register the mapped file's pages;
   * "hybrid": both at once, sharing the work (on the H200 host no faster than staged; never the default).
   * Default: staged where file reads run in parallel or when a `pool` is given, else mapped
   * (see {@link defaultUploadStrategy}).
   */
  readonly strategy?: UploadStrategy;
  /**
   * Bytes per staging buffer, or per registered window of the mapped file (rounded up to whole
   * pages). Hybrid: bytes per chunk of the shared queue, rounded up to whole pages: the size of
   * a staging buffer and of one read, and the unit the mapped side's windows are made of.
   * Default 8 MiB staged and hybrid, 64 MiB mapped.
   */
  readonly chunkBytes?: number;
  /**
   * Chunks in flight (default 32 staged, 4 mapped). Staged: staging buffers in the ring, each
   * read into (at most `reads` at once), then copied from (2 is plain double buffering); reads from the page cache run at a few
   * GB/s per thread, so more slots go faster up to the reading threads (on Node, reader threads
   * up to the machine's cores). On the H100 host, Bun: 25 GB/s with 32 MiB × 8, 38–40 GB/s with
   * 8 MiB × 32 or 4 MiB × 64. Mapped: windows registered at once; the oldest is unregistered
   * when its copy is done. Hybrid: staging buffers of the staged side (default 32); its mapped
   * side keeps up to 4 windows registered.
   */
  readonly slots?: number;
  /**
   * Staged and hybrid: file reads in flight at most (default: the slots, but no more than the
   * machine's cores). Slots beyond it wait for a read while others' copies run. On the H200 host
   * (16 cores) reads from the page cache into pinned memory ran fastest 16 at a time, from JS
   * (Bun: 51 GB/s against 46 at 64) as from C threads (60 against 47).
   */
  readonly reads?: number;
  /**
   * Hybrid only: the most chunks one registered window of the mapped side spans (a run of
   * chunks that follow each other in the file; larger windows cost less per byte to pin).
   * Default: 64 MiB of chunks (8 with the default chunk size).
   */
  readonly windowChunks?: number;
  /** Staged and hybrid: take the staging buffers from this pool instead of allocating them (cudaHostAlloc is slow: reuse a pool across uploads). */
  readonly pool?: PinnedPool;
  /**
   * The stream to copy on (default: a new one). The upload waits for it before returning.
   * Hybrid: its staged copies go to this stream, its mapped copies to a stream the upload makes,
   * which first waits for the work queued here before the upload began; both have drained when
   * the upload returns.
   */
  readonly stream?: CudaStream;
  readonly onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface UploadStats {
  readonly bytes: number;
  /** Copies queued. */
  readonly chunks: number;
  readonly seconds: number;
  /** The strategy, chunk size and slots used (the options, or the defaults); hybrid: the staged side's chunk size and ring. */
  readonly strategy: UploadStrategy;
  readonly chunkBytes: number;
  readonly slots: number;
  /** Staged and hybrid: file reads in flight at most (the option, or the default). */
  readonly reads?: number;
  /** Hybrid: chunks per window of the mapped side (the option, or the default). */
  readonly windowChunks?: number;
  /** Hybrid: bytes the mapped side copied (the staged side copied the rest): how the work split. */
  readonly mappedBytes?: number;
}

/**
 * What an upload does when not told: staged reads where many file reads run at once (every
 * runtime since openFileReads), else the mapped file, which reads nothing. On the H100 host, from
 * the page cache, staged went 38–40 GB/s on Bun (8 MiB × 32) but 16 on Node and 4.7 on Deno when
 * Node's reads shared libuv's 4 threads and Deno's one file handle; mapped 19–25 GB/s on all
 * three, best with large windows (64 MiB × 4, 256 MiB × 2). Hybrid: staged's ring, next to
 * mapped windows of 64 MiB (windowChunks), 4 of them at once; on the H200 host (2026-12-02) no
 * faster than staged: 25–31 GB/s against staged's 30–35 (the registrations on the JS thread and
 * the reads compete), where the reads alone ran at 38.6 GB/s on Deno and 51.9 from C threads.
 */
const defaults: Readonly<Record<UploadStrategy, { chunkBytes: number; slots: number }>> = {
  staged: { chunkBytes: 8 * 2 ** 20, slots: 32 },
  mapped: { chunkBytes: 64 * 2 ** 20, slots: 4 },
  hybrid: { chunkBytes: 8 * 2 ** 20, slots: 32 },
};

/** The strategy an upload uses by default on this runtime (see {@link FfiCapabilities.parallelFileReads}). */
export function defaultUploadStrategy(): UploadStrategy {
  return capabilities.parallelFileReads ? "staged" : "mapped";
}

/** What every strategy gets: checked options and the stream to copy on. */
interface Pipeline {
  readonly chunkBytes: number;
  readonly slots: number;
  /** Staged and hybrid: file reads in flight at most. */
  readonly reads: number;
  /** Hybrid: chunks per registered window of the mapped side. */
  readonly windowChunks: number;
  readonly pool: PinnedPool | undefined;
  readonly stream: CudaStream;
  /** Bytes in all ranges. */
  readonly total: number;
  /** Counts bytes whose copies are queued. */
  readonly queued: (bytes: number) => void;
}

/** What a strategy did: the copies it queued, and (hybrid) the bytes its mapped side copied. */
interface Outcome {
  readonly chunks: number;
  readonly mappedBytes?: number;
}

/** A piece of a range: `length` bytes from `at` within it. */
interface Chunk {
  readonly range: UploadRange;
  readonly at: number;
  readonly length: number;
}

/** File bytes [start, end) and the pieces of ranges within them: what one read or one registration serves. */
interface Span {
  readonly start: number;
  readonly end: number;
  readonly pieces: readonly Chunk[];
}

function spanOf(pieces: readonly Chunk[]): Span {
  let start = Infinity;
  let end = 0;
  for (const { range, at, length } of pieces) {
    start = Math.min(start, range.offset + at);
    end = Math.max(end, range.offset + at + length);
  }
  return { start, end, pieces };
}

const spanLength = (span: Span) => span.end - span.start;

/** Queues the copies of `span`'s pieces from `source`, whose byte 0 is the file's byte `sourceStart`; returns the bytes. */
function copySpan(span: Span, source: CudaMemory, sourceStart: number, stream: CudaStream): number {
  let bytes = 0;
  for (const { range, at, length } of span.pieces) {
    range.target.copyFrom(source, { srcOffset: range.offset + at - sourceStart, dstOffset: (range.targetOffset ?? 0) + at, byteLength: length, stream });
    bytes += length;
  }
  return bytes;
}

/**
 * The spans one side of an upload works through. `take` hands each out once; `close` (on a
 * failure) ends them for every side that shares them, at its next take.
 */
interface Work {
  take(): Span | undefined;
  close(): void;
}

function workOf(spans: Iterable<Span>): Work {
  const iterator = spans[Symbol.iterator]();
  let closed = false;
  return {
    take: () => {
      const next = closed ? undefined : iterator.next();
      return next === undefined || next.done ? undefined : next.value;
    },
    close: () => void (closed = true),
  };
}

/** The ranges cut into chunks of at most `chunkBytes`, each range from its own start (staged). */
function* chunksOf(ranges: readonly UploadRange[], chunkBytes: number): Generator<Span> {
  for (const range of ranges) {
    for (let at = 0; at < range.byteLength; at += chunkBytes) yield spanOf([{ range, at, length: Math.min(chunkBytes, range.byteLength - at) }]);
  }
}

async function readFully(file: FileReads, into: Pointer, length: number, position: number): Promise<void> {
  for (let done = 0; done < length;) {
    const bytesRead = await file.read(into + done, length - done, position + done);
    if (bytesRead === 0) throw new UploadError(`the file ended at byte ${position + done} while reading ${length} bytes at ${position}`);
    done += bytesRead;
  }
}

interface Slot {
  readonly staging: CudaMemory;
  readonly event: CudaEvent;
  pending: boolean;
}

/**
 * Staging ring: `count` pinned buffers of `size` bytes, each a worker that reads the next span
 * of `work` into its buffer (one read per span) and queues the copies of its pieces on the
 * pipeline's stream. Resolves with the copies queued. After a failure `work` is closed (every
 * worker, and any other side sharing it, stops at its next take), every read settles and the
 * stream drains before any buffer is freed.
 */
async function stageSpans(context: CudaContext, path: string, pipeline: Pipeline, work: Work, size: number, count: number): Promise<number> {
  const { stream } = pipeline;
  const file = await openFileReads(path, Math.min(pipeline.reads, count));
  const slots: Slot[] = [];
  let chunks = 0;
  try {
    for (let i = 0; i < count; i++) {
      const staging = pipeline.pool ? pipeline.pool.alloc(size, { stream }) : context.allocPinned(size);
      slots.push({ staging, event: context.createEvent({ timing: false }), pending: false });
    }
    // A read still in flight would write into freed pinned memory: all workers settle before the finally.
    const results = await Promise.allSettled(slots.map(async (slot) => {
      const staging = slot.staging.address();
      for (let span = work.take(); span !== undefined; span = work.take()) {
        // The staging buffer may still be the source of a queued copy: wait for it before
        // overwriting. Asked first: a copy is mostly done by then, and a wait off the JS thread
        // holds a thread (on Node, one of libuv's four) for nothing.
        if (slot.pending && !slot.event.query()) await slot.event.synchronized();
        await readFully(file, staging, spanLength(span), span.start);
        // Pending from the first copy queued: should a later call fail, the finally drains the stream.
        slot.pending = true;
        const bytes = copySpan(span, slot.staging, span.start, stream);
        slot.event.record(stream);
        chunks += span.pieces.length;
        pipeline.queued(bytes);
      }
    }).map((worker) => worker.catch((error: unknown) => {
      work.close();
      throw error;
    })));
    const failed = results.find((r) => r.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    await stream.synchronized();
    for (const slot of slots) slot.pending = false;
    return chunks;
  } finally {
    // Copies may still read the staging buffers (after an error): let the stream drain before freeing them.
    try {
      if (slots.some((s) => s.pending)) stream.synchronize();
    } finally {
      for (const slot of slots) {
        slot.event.dispose();
        slot.staging.dispose();
      }
      await file.close();
    }
  }
}

async function uploadStaged(context: CudaContext, path: string, ranges: readonly UploadRange[], pipeline: Pipeline): Promise<Outcome> {
  const longest = Math.max(0, ...ranges.map((r) => r.byteLength));
  const size = Math.max(1, Math.min(pipeline.chunkBytes, longest));
  const count = Math.min(pipeline.slots, Math.ceil(pipeline.total / size) || 1);
  return { chunks: await stageSpans(context, path, pipeline, workOf(chunksOf(ranges, size)), size, count) };
}

/** The pieces of the ranges that fall into window `index` of the file, bytes [index·window, (index + 1)·window). */
interface Window {
  readonly index: number;
  readonly pieces: readonly Chunk[];
}

/**
 * The ranges cut at the boundaries of `window`-byte windows of the file, the non-empty windows
 * in file order. Ranges may overlap and come in any order; a window serves all the pieces that
 * fall into it (one registration, or one read).
 */
function windowsOf(ranges: readonly UploadRange[], window: number): Window[] {
  const windows = new Map<number, Chunk[]>();
  for (const range of ranges) {
    for (let at = 0; at < range.byteLength;) {
      const index = Math.floor((range.offset + at) / window);
      const length = Math.min(range.byteLength - at, (index + 1) * window - (range.offset + at));
      const pieces = windows.get(index) ?? [];
      pieces.push({ range, at, length });
      windows.set(index, pieces);
      at += length;
    }
  }
  return [...windows.keys()].sort((a, b) => a - b).map((index) => ({ index, pieces: windows.get(index)! }));
}

/** `bytes` rounded up to whole pages: windows of such a size never share a page. */
const pageWindow = (bytes: number) => Math.ceil(bytes / pageSize()) * pageSize();

interface Registration {
  readonly memory: RegisteredHostMemory;
  readonly event: CudaEvent;
}

/**
 * Mapped windows: registers the page-rounded bytes of each span of `work` in `file` (at most
 * `slots` at once), queues the copies of its pieces from there on the pipeline's stream, and
 * unregisters it once its copies are done. The spans must not share a page (CUDA pins whole
 * pages and refuses a page registered twice): cut them at page multiples. Resolves with the
 * copies queued and their bytes. After a failure the stream drains before anything is
 * unregistered.
 */
async function registerSpans(context: CudaContext, file: MappedFile, pipeline: Pipeline, work: Work, slots: number): Promise<Outcome> {
  const { stream } = pipeline;
  const page = pageSize();
  const inFlight: Registration[] = [];
  const events: CudaEvent[] = [];
  const idle: CudaEvent[] = [];
  const retire = async ({ memory, event }: Registration) => {
    await event.synchronized();
    memory.dispose();
    idle.push(event);
  };
  let chunks = 0;
  let bytes = 0;
  try {
    for (let span = work.take(); span !== undefined; span = work.take()) {
      if (inFlight.length >= slots) await retire(inFlight.shift()!);
      // The last page may run past the end of the file; the mapping covers it.
      const start = Math.floor(span.start / page) * page;
      const end = Math.ceil(span.end / page) * page;
      const memory = RegisteredHostMemory.register(context, file.ptr + start, end - start, { readOnly: true });
      let event = idle.pop();
      if (event === undefined) events.push((event = context.createEvent({ timing: false })));
      inFlight.push({ memory, event });
      const copied = copySpan(span, memory, start, stream);
      event.record(stream);
      chunks += span.pieces.length;
      bytes += copied;
      pipeline.queued(copied);
      // A turn of the event loop per window: where the wait for a copy finds it done (always,
      // once registering is the slower part) and waits are polled (Bun), this loop would never
      // yield, blocking the event loop and, in a hybrid, the staged side's reads until the end.
      await yieldOnce();
    }
    while (inFlight.length > 0) await retire(inFlight.shift()!);
    return { chunks, mappedBytes: bytes };
  } finally {
    // After an error, queued copies may still read registered pages: drain the stream before
    // unregistering them (and before the mapping goes).
    try {
      if (inFlight.length > 0) stream.synchronize();
    } finally {
      for (const { memory } of inFlight) memory.dispose();
      for (const event of events) event.dispose();
    }
  }
}

async function uploadMapped(context: CudaContext, path: string, ranges: readonly UploadRange[], pipeline: Pipeline): Promise<Outcome> {
  using file = MappedFile.open(path);
  const spans = windowsOf(ranges, pageWindow(pipeline.chunkBytes)).map((w) => spanOf(w.pieces));
  const { chunks } = await registerSpans(context, file, pipeline, workOf(spans), pipeline.slots);
  return { chunks };
}

/**
 * Hybrid's shared work: the windows of the file (chunk-sized, at page multiples), taken one at a
 * time from the front by the staged side and in runs of up to `run` consecutive windows from the
 * back by the mapped side, until the two meet. Closing it (a failure on either side) ends both.
 */
class MeetingQueue {
  private front = 0;
  private back: number;

  constructor(private readonly windows: readonly Window[]) {
    this.back = windows.length;
  }

  close(): void {
    this.back = this.front;
  }

  /** The staged side's work: one window per take. */
  fromFront(): Work {
    return { take: () => (this.front < this.back ? spanOf(this.windows[this.front++]!.pieces) : undefined), close: () => this.close() };
  }

  /** The mapped side's work: up to `run` windows per take that follow each other in the file (no gap, so no page registered for nothing). */
  fromBack(run: number): Work {
    const take = () => {
      if (this.front >= this.back) return undefined;
      const end = this.back;
      do this.back--;
      while (this.back > this.front && end - this.back < run && this.windows[this.back - 1]!.index === this.windows[this.back]!.index - 1);
      return spanOf(this.windows.slice(this.back, end).flatMap((w) => w.pieces));
    };
    return { take, close: () => this.close() };
  }
}

/** Windows the hybrid's mapped side keeps registered at once: the mapped strategy's default. */
const hybridMappedSlots = defaults.mapped.slots;

/**
 * Both at once over one upload: staged on the pipeline's stream, mapped on a stream of its own
 * that first waits for the work queued on the pipeline's stream so far (it may be the caller's,
 * whose earlier work the copies must follow). Both streams have drained when it returns.
 */
async function uploadHybrid(context: CudaContext, path: string, ranges: readonly UploadRange[], pipeline: Pipeline): Promise<Outcome> {
  const window = pageWindow(pipeline.chunkBytes);
  const windows = windowsOf(ranges, window);
  const queue = new MeetingQueue(windows);
  // The staging buffers need hold no more than the longest chunk (a reduce: there may be millions of chunks).
  const longest = windows.reduce((n, w) => Math.max(n, spanLength(spanOf(w.pieces))), 1);
  using file = MappedFile.open(path);
  using mappedStream = context.createStream();
  using started = pipeline.stream.record({ timing: false });
  mappedStream.waitEvent(started);
  // A failure on either side (setting up included) closes the queue: the other side stops at its next take.
  const side = <T>(running: Promise<T>) => running.catch((error: unknown) => {
    queue.close();
    throw error;
  });
  const [staged, mapped] = await Promise.allSettled([
    side(stageSpans(context, path, pipeline, queue.fromFront(), Math.min(window, longest), Math.min(pipeline.slots, windows.length || 1))),
    side(registerSpans(context, file, { ...pipeline, stream: mappedStream }, queue.fromBack(pipeline.windowChunks), hybridMappedSlots)),
  ]);
  if (staged.status === "rejected") throw staged.reason;
  if (mapped.status === "rejected") throw mapped.reason;
  return { chunks: staged.value + mapped.value.chunks, mappedBytes: mapped.value.mappedBytes };
}

const strategies = { staged: uploadStaged, mapped: uploadMapped, hybrid: uploadHybrid } as const;

/** `a`, `a or b`, `a, b or c`. */
function alternatives(names: readonly string[]): string {
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} or ${names.at(-1)!}`;
}

function positiveInteger(value: unknown, name: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) throw new UploadError(`${name} must be a positive integer, got ${String(value)}`);
  return value;
}

/** Checks every range against the file's size and its target before anything is queued. */
function checkRanges(ranges: readonly UploadRange[], path: string, fileSize: number): void {
  for (const [i, range] of ranges.entries()) {
    const { offset, byteLength } = range;
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(byteLength) || byteLength < 0) {
      throw new UploadError(`range ${i}: offset and byteLength must be whole numbers ≥ 0, got ${String(offset)} and ${String(byteLength)}`);
    }
    if (offset + byteLength > fileSize) throw new UploadError(`range ${i}: bytes [${offset}, ${offset + byteLength}) lie beyond the end of ${path} (${fileSize} bytes)`);
    checkRange(`range ${i}: target`, range.targetOffset ?? 0, byteLength, range.target.byteLength);
  }
}

/** Copies `ranges` of the file at `path` into their device targets (see {@link UploadStrategy}). */
export async function uploadFileRanges(context: CudaContext, path: string, ranges: readonly UploadRange[], options: UploadOptions = {}): Promise<UploadStats> {
  // A staging pool asks for staging.
  const strategy = options.strategy ?? (options.pool ? "staged" : defaultUploadStrategy());
  if (!uploadStrategies.includes(strategy)) throw new UploadError(`strategy must be ${alternatives(uploadStrategies.map((s) => `"${s}"`))}, got ${JSON.stringify(strategy)}`);
  const chunkBytes = positiveInteger(options.chunkBytes ?? defaults[strategy].chunkBytes, "chunkBytes");
  const slots = positiveInteger(options.slots ?? defaults[strategy].slots, "slots");
  if (strategy === "mapped" && options.pool !== undefined) throw new UploadError("pool is for the staged strategy: the mapped one registers the file's own pages and stages nothing");
  if (strategy !== "hybrid" && options.windowChunks !== undefined) throw new UploadError(`windowChunks is for the hybrid strategy: the ${strategy} one has no mapped side next to its ${strategy === "staged" ? "ring" : "windows"}`);
  if (strategy === "mapped" && options.reads !== undefined) throw new UploadError("reads is for the staged and hybrid strategies: the mapped one reads nothing, it registers the file's own pages");
  const reads = positiveInteger(options.reads ?? Math.min(slots, availableParallelism()), "reads");
  const windowChunks = positiveInteger(options.windowChunks ?? Math.max(1, Math.round(defaults.mapped.chunkBytes / chunkBytes)), "windowChunks");
  checkRanges(ranges, path, (await stat(path)).size);
  const total = ranges.reduce((n, r) => n + r.byteLength, 0);
  const started = performance.now();
  const stream = options.stream ?? context.createStream();
  let done = 0;
  try {
    const { chunks, mappedBytes } = await strategies[strategy](context, path, ranges, {
      chunkBytes,
      slots,
      reads,
      windowChunks,
      pool: options.pool,
      stream,
      total,
      queued: (bytes) => options.onProgress?.((done += bytes), total),
    });
    const seconds = (performance.now() - started) / 1000;
    return { bytes: total, chunks, seconds, strategy, chunkBytes, slots, ...(strategy === "mapped" ? {} : { reads }), ...(strategy === "hybrid" ? { windowChunks, mappedBytes } : {}) };
  } finally {
    if (options.stream === undefined) stream.dispose();
  }
}

/** A tensor's place in a GGUF or safetensors file. */
export interface FileTensor {
  readonly name: string;
  readonly offset: number;
  readonly byteLength: number;
}

/** The tensors of a GGUF or safetensors file (told apart by the GGUF magic) with their absolute data ranges. */
export async function fileTensors(path: string): Promise<FileTensor[]> {
  const handle = await open(path, "r");
  const magic = new Uint8Array(4);
  try {
    await handle.read(magic, 0, 4, 0);
  } finally {
    await handle.close();
  }
  if (new TextDecoder().decode(magic) === "GGUF") {
    await using file = await openGguf(path);
    return file.tensors.map((t) => ({ name: t.name, offset: file.header.dataOffset + t.offset, byteLength: t.byteLength }));
  }
  let file;
  try {
    file = await openSafetensors(path);
  } catch (error) {
    if (!(error instanceof SafetensorsFormatError)) throw error;
    throw new UploadError(`${path} is neither a GGUF file (it does not start with "GGUF") nor a safetensors file (${error.message})`, { cause: error });
  }
  await using opened = file;
  return opened.tensors.map((t) => ({ name: t.name, offset: opened.header.dataOffset + t.dataOffsets[0], byteLength: t.byteLength }));
}

/** What {@link uploadTensors} made: one device buffer per tensor, in the order asked for. */
export interface UploadedTensors {
  readonly buffers: Map<string, DeviceBuffer>;
  readonly stats: UploadStats;
}

/**
 * Uploads the tensors of a GGUF or safetensors file (all, or those named) into one new device
 * buffer each. On failure every buffer made so far is freed.
 */
export async function uploadTensors(
  context: CudaContext,
  path: string,
  options: UploadOptions & { readonly names?: readonly string[] } = {},
): Promise<UploadedTensors> {
  const all = await fileTensors(path);
  const wanted = options.names === undefined ? all : options.names.map((name) => {
    const tensor = all.find((t) => t.name === name);
    if (tensor === undefined) throw new UploadError(`no tensor named "${name}" in ${path}`);
    return tensor;
  });
  const buffers = new Map<string, DeviceBuffer>();
  try {
    // CUDA cannot allocate zero bytes; a zero-byte tensor gets a one-byte buffer and no copy.
    for (const t of wanted) buffers.set(t.name, context.alloc(Math.max(t.byteLength, 1)));
    const stats = await uploadFileRanges(context, path, wanted.map((t) => ({ offset: t.offset, byteLength: t.byteLength, target: buffers.get(t.name)! })), options);
    return { buffers, stats };
  } catch (error) {
    for (const buffer of buffers.values()) buffer.dispose();
    throw error;
  }
}
