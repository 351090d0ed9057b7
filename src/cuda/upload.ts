// Streamed uploads of model files to the GPU. Copies from pageable memory run at a fraction of
// PCIe speed (CUDA stages them through its own pinned buffer, synchronously), so the bytes reach
// the GPU from page-locked memory by one of two strategies:
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
import { open, stat } from "node:fs/promises";
import { type CudaContext, type CudaEvent, type CudaMemory, type CudaStream, type DeviceBuffer, type PinnedPool, RegisteredHostMemory, checkRange } from "./index.ts";
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
export type UploadStrategy = "staged" | "mapped";
export const uploadStrategies: readonly UploadStrategy[] = ["staged", "mapped"];

export interface UploadOptions {
  /**
   * "staged": read into pinned staging buffers; "mapped": register the mapped file's pages.
   * Default: staged on Bun or when a `pool` is given, else mapped (see {@link defaultUploadStrategy}).
   */
  readonly strategy?: UploadStrategy;
  /**
   * Bytes per staging buffer, or per registered window of the mapped file (rounded up to whole
   * pages). Default 8 MiB staged, 64 MiB mapped.
   */
  readonly chunkBytes?: number;
  /**
   * Chunks in flight (default 32 staged, 4 mapped). Staged: staging buffers in the ring, each
   * with one read in flight (2 is plain double buffering); reads from the page cache run at a few
   * GB/s per thread, so more slots go faster up to the reading threads (on Node, reader threads
   * up to the machine's cores). On the H100 host, Bun: 25 GB/s with 32 MiB × 8, 38–40 GB/s with
   * 8 MiB × 32 or 4 MiB × 64. Mapped: windows registered at once; the oldest is unregistered
   * when its copy is done.
   */
  readonly slots?: number;
  /** Staged: take the staging buffers from this pool instead of allocating them (cudaHostAlloc is slow: reuse a pool across uploads). */
  readonly pool?: PinnedPool;
  /** The stream to copy on (default: a new one). The upload waits for it before returning. */
  readonly stream?: CudaStream;
  readonly onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface UploadStats {
  readonly bytes: number;
  /** Copies queued. */
  readonly chunks: number;
  readonly seconds: number;
  /** The strategy, chunk size and slots used (the options, or the defaults). */
  readonly strategy: UploadStrategy;
  readonly chunkBytes: number;
  readonly slots: number;
}

/**
 * What an upload does when not told: staged reads where many file reads run at once (every
 * runtime since openFileReads), else the mapped file, which reads nothing. On the H100 host, from
 * the page cache, staged went 38–40 GB/s on Bun (8 MiB × 32) but 16 on Node and 4.7 on Deno when
 * Node's reads shared libuv's 4 threads and Deno's one file handle; mapped 19–25 GB/s on all
 * three, best with large windows (64 MiB × 4, 256 MiB × 2).
 */
const defaults: Readonly<Record<UploadStrategy, { chunkBytes: number; slots: number }>> = {
  staged: { chunkBytes: 8 * 2 ** 20, slots: 32 },
  mapped: { chunkBytes: 64 * 2 ** 20, slots: 4 },
};

/** The strategy an upload uses by default on this runtime (see {@link FfiCapabilities.parallelFileReads}). */
export function defaultUploadStrategy(): UploadStrategy {
  return capabilities.parallelFileReads ? "staged" : "mapped";
}

/** What both strategies get: checked options and the stream to copy on. */
interface Pipeline {
  readonly chunkBytes: number;
  readonly slots: number;
  readonly pool: PinnedPool | undefined;
  readonly stream: CudaStream;
  /** Bytes in all ranges. */
  readonly total: number;
  /** Counts bytes whose copies are queued. */
  readonly queued: (bytes: number) => void;
}

/** A piece of a range: `length` bytes from `at` within it. */
interface Chunk {
  readonly range: UploadRange;
  readonly at: number;
  readonly length: number;
}

function copyChunk(chunk: Chunk, source: CudaMemory, srcOffset: number, stream: CudaStream): void {
  const { range, at, length } = chunk;
  range.target.copyFrom(source, { srcOffset, dstOffset: (range.targetOffset ?? 0) + at, byteLength: length, stream });
}

function* chunksOf(ranges: readonly UploadRange[], chunkBytes: number): Generator<Chunk> {
  for (const range of ranges) {
    for (let at = 0; at < range.byteLength; at += chunkBytes) yield { range, at, length: Math.min(chunkBytes, range.byteLength - at) };
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

async function uploadStaged(context: CudaContext, path: string, ranges: readonly UploadRange[], pipeline: Pipeline): Promise<number> {
  const { stream, total } = pipeline;
  const file = await openFileReads(path, pipeline.slots);
  const slots: Slot[] = [];
  let chunks = 0;
  try {
    const longest = Math.max(0, ...ranges.map((r) => r.byteLength));
    const size = Math.max(1, Math.min(pipeline.chunkBytes, longest));
    for (let i = 0; i < Math.min(pipeline.slots, Math.ceil(total / size) || 1); i++) {
      const staging = pipeline.pool ? pipeline.pool.alloc(size, { stream }) : context.allocPinned(size);
      slots.push({ staging, event: context.createEvent({ timing: false }), pending: false });
    }
    const queue = chunksOf(ranges, size);
    let stop = false;
    // One worker per slot; the generator hands each chunk to exactly one of them. After a failure
    // the others stop at their next chunk, and all are settled before any staging buffer is freed
    // (a read still in flight would write into freed pinned memory).
    const results = await Promise.allSettled(slots.map(async (slot) => {
      const staging = slot.staging.address();
      for (let next = queue.next(); !next.done && !stop; next = queue.next()) {
        const chunk = next.value;
        // The staging buffer may still be the source of a queued copy: wait for it before
        // overwriting. Asked first: a copy is mostly done by then, and a wait off the JS thread
        // holds a thread (on Node, one of libuv's four) for nothing.
        if (slot.pending && !slot.event.query()) await slot.event.synchronized();
        await readFully(file, staging, chunk.length, chunk.range.offset + chunk.at);
        copyChunk(chunk, slot.staging, 0, stream);
        slot.event.record(stream);
        slot.pending = true;
        chunks++;
        pipeline.queued(chunk.length);
      }
    }).map((worker) => worker.catch((error: unknown) => {
      stop = true;
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

/**
 * The ranges cut at the boundaries of `window`-byte windows of the file (window i covers bytes
 * [i·window, (i + 1)·window)), grouped by window in file order. Ranges may overlap and come in
 * any order; a window is registered once for all the pieces that fall into it.
 */
function windowsOf(ranges: readonly UploadRange[], window: number): Chunk[][] {
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
  return [...windows.keys()].sort((a, b) => a - b).map((index) => windows.get(index)!);
}

interface Registration {
  readonly memory: RegisteredHostMemory;
  readonly event: CudaEvent;
}

async function uploadMapped(context: CudaContext, path: string, ranges: readonly UploadRange[], pipeline: Pipeline): Promise<number> {
  const { stream } = pipeline;
  const page = pageSize();
  using file = MappedFile.open(path);
  // Window bounds are page multiples, so the ranges registered for two windows never share a
  // page (CUDA pins whole pages and refuses a page registered twice). The last page may run
  // past the end of the file; the mapping covers it.
  const window = Math.ceil(pipeline.chunkBytes / page) * page;
  const inFlight: Registration[] = [];
  const events: CudaEvent[] = [];
  const idle: CudaEvent[] = [];
  const retire = async ({ memory, event }: Registration) => {
    await event.synchronized();
    memory.dispose();
    idle.push(event);
  };
  let chunks = 0;
  try {
    for (const pieces of windowsOf(ranges, window)) {
      if (inFlight.length >= pipeline.slots) await retire(inFlight.shift()!);
      const start = Math.floor(Math.min(...pieces.map((p) => p.range.offset + p.at)) / page) * page;
      const end = Math.ceil(Math.max(...pieces.map((p) => p.range.offset + p.at + p.length)) / page) * page;
      const memory = RegisteredHostMemory.register(context, file.ptr + start, end - start, { readOnly: true });
      let event = idle.pop();
      if (event === undefined) events.push((event = context.createEvent({ timing: false })));
      inFlight.push({ memory, event });
      for (const piece of pieces) copyChunk(piece, memory, piece.range.offset + piece.at - start, stream);
      event.record(stream);
      chunks += pieces.length;
      pipeline.queued(pieces.reduce((n, p) => n + p.length, 0));
    }
    while (inFlight.length > 0) await retire(inFlight.shift()!);
    return chunks;
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

const strategies = { staged: uploadStaged, mapped: uploadMapped } as const;

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
  if (!uploadStrategies.includes(strategy)) throw new UploadError(`strategy must be ${uploadStrategies.map((s) => `"${s}"`).join(" or ")}, got ${JSON.stringify(strategy)}`);
  const chunkBytes = positiveInteger(options.chunkBytes ?? defaults[strategy].chunkBytes, "chunkBytes");
  const slots = positiveInteger(options.slots ?? defaults[strategy].slots, "slots");
  if (strategy === "mapped" && options.pool !== undefined) throw new UploadError("pool is for the staged strategy: the mapped one registers the file's own pages and stages nothing");
  checkRanges(ranges, path, (await stat(path)).size);
  const total = ranges.reduce((n, r) => n + r.byteLength, 0);
  const started = performance.now();
  const stream = options.stream ?? context.createStream();
  let done = 0;
  try {
    const chunks = await strategies[strategy](context, path, ranges, {
      chunkBytes,
      slots,
      pool: options.pool,
      stream,
      total,
      queued: (bytes) => options.onProgress?.((done += bytes), total),
    });
    return { bytes: total, chunks, seconds: (performance.now() - started) / 1000, strategy, chunkBytes, slots };
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
