// Streamed uploads of model files to the GPU. Copies from pageable memory run at a fraction of
// PCIe speed (CUDA stages them through its own pinned buffer, synchronously), so file ranges are
// read straight into a ring of pinned staging buffers and copied from there asynchronously on a
// stream. Each ring slot is its own pipeline: read into the slot, queue the copy, record the
// slot's event; the slot is refilled only once that event says its copy is done. With N slots,
// N reads (spread over the runtime's I/O threads) and the copies of finished reads overlap, so
// throughput is bound by the disk (or page-cache memcpy) and PCIe, not by pageable copies.
import { open, type FileHandle } from "node:fs/promises";
import { type CudaContext, type CudaEvent, type CudaMemory, type CudaStream, type DeviceBuffer, type PinnedPool } from "../cuda/index.ts";
import { openGguf, openSafetensors } from "../formats/index.ts";

/** One byte range of the file and where it goes. */
export interface UploadRange {
  /** Absolute offset in the file. */
  readonly offset: number;
  readonly byteLength: number;
  readonly target: CudaMemory;
  readonly targetOffset?: number;
}

export interface UploadOptions {
  /** Bytes per staging buffer (default 32 MiB). */
  readonly chunkBytes?: number;
  /**
   * Staging buffers in the ring, each with one read in flight (default 8; 2 is plain double
   * buffering). Reads from the page cache run at a few GB/s per thread, so more slots go faster
   * up to the runtime's I/O threads (on Node: UV_THREADPOOL_SIZE, default 4).
   */
  readonly slots?: number;
  /** Take the staging buffers from this pool instead of allocating them (cudaHostAlloc is slow: reuse a pool across uploads). */
  readonly pool?: PinnedPool;
  /** The stream to copy on (default: a new one). The upload waits for it before returning. */
  readonly stream?: CudaStream;
  readonly onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface UploadStats {
  readonly bytes: number;
  readonly chunks: number;
  readonly seconds: number;
}

const DEFAULT_CHUNK = 32 * 2 ** 20;
const DEFAULT_SLOTS = 8;

interface Chunk {
  readonly range: UploadRange;
  /** Offset within the range. */
  readonly at: number;
  readonly length: number;
}

function* chunksOf(ranges: readonly UploadRange[], chunkBytes: number): Generator<Chunk> {
  for (const range of ranges) {
    for (let at = 0; at < range.byteLength; at += chunkBytes) yield { range, at, length: Math.min(chunkBytes, range.byteLength - at) };
  }
}

async function readFully(file: FileHandle, into: Uint8Array, length: number, position: number): Promise<void> {
  for (let done = 0; done < length;) {
    const { bytesRead } = await file.read(into, done, length - done, position + done);
    if (bytesRead === 0) throw new RangeError(`the file ended at byte ${position + done} while reading ${length} bytes at ${position}`);
    done += bytesRead;
  }
}

interface Slot {
  readonly staging: CudaMemory & { bytes(): Uint8Array };
  readonly event: CudaEvent;
  pending: boolean;
}

/** Copies `ranges` of the file at `path` into their device targets through pinned staging buffers. */
export async function uploadFileRanges(context: CudaContext, path: string, ranges: readonly UploadRange[], options: UploadOptions = {}): Promise<UploadStats> {
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK;
  const slotCount = options.slots ?? DEFAULT_SLOTS;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) throw new RangeError(`chunkBytes must be a positive integer, got ${chunkBytes}`);
  if (!Number.isSafeInteger(slotCount) || slotCount < 1) throw new RangeError(`slots must be a positive integer, got ${slotCount}`);
  const total = ranges.reduce((n, r) => n + r.byteLength, 0);
  const started = performance.now();
  const file = await open(path, "r");
  const stream = options.stream ?? context.createStream();
  const slots: Slot[] = [];
  let done = 0;
  let chunks = 0;
  try {
    const longest = Math.max(0, ...ranges.map((r) => r.byteLength));
    const size = Math.max(1, Math.min(chunkBytes, longest));
    for (let i = 0; i < Math.min(slotCount, Math.ceil(total / size) || 1); i++) {
      const staging = options.pool ? options.pool.alloc(size, { stream }) : context.allocPinned(size);
      slots.push({ staging, event: context.createEvent({ timing: false }), pending: false });
    }
    const queue = chunksOf(ranges, size);
    let stop = false;
    // One worker per slot; the generator hands each chunk to exactly one of them. After a failure
    // the others stop at their next chunk, and all are settled before any staging buffer is freed
    // (a read still in flight would write into freed pinned memory).
    const results = await Promise.allSettled(slots.map(async (slot) => {
      const bytes = slot.staging.bytes();
      for (let next = queue.next(); !next.done && !stop; next = queue.next()) {
        const { range, at, length } = next.value;
        // The staging buffer may still be the source of a queued copy: wait for it before overwriting.
        if (slot.pending) await slot.event.synchronized();
        await readFully(file, bytes, length, range.offset + at);
        range.target.copyFrom(slot.staging, { srcOffset: 0, dstOffset: (range.targetOffset ?? 0) + at, byteLength: length, stream });
        slot.event.record(stream);
        slot.pending = true;
        chunks++;
        options.onProgress?.((done += length), total);
      }
    }).map((worker) => worker.catch((error: unknown) => {
      stop = true;
      throw error;
    })));
    const failed = results.find((r) => r.status === "rejected");
    if (failed !== undefined) throw failed.reason;
    await stream.synchronized();
    for (const slot of slots) slot.pending = false;
    return { bytes: total, chunks, seconds: (performance.now() - started) / 1000 };
  } finally {
    // Copies may still read the staging buffers (after an error): let the stream drain before freeing them.
    try {
      if (slots.some((s) => s.pending)) stream.synchronize();
    } finally {
      for (const slot of slots) {
        slot.event.dispose();
        slot.staging.dispose();
      }
      if (options.stream === undefined) stream.dispose();
      await file.close();
    }
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
  await using file = await openSafetensors(path);
  return file.tensors.map((t) => ({ name: t.name, offset: file.header.dataOffset + t.dataOffsets[0], byteLength: t.byteLength }));
}

/**
 * Uploads the tensors of a GGUF or safetensors file (all, or those named) into one new device
 * buffer each. On failure every buffer made so far is freed.
 */
export async function uploadTensors(
  context: CudaContext,
  path: string,
  options: UploadOptions & { readonly names?: readonly string[] } = {},
): Promise<Map<string, DeviceBuffer>> {
  const all = await fileTensors(path);
  const wanted = options.names === undefined ? all : options.names.map((name) => {
    const tensor = all.find((t) => t.name === name);
    if (tensor === undefined) throw new RangeError(`no tensor named "${name}" in ${path}`);
    return tensor;
  });
  const buffers = new Map<string, DeviceBuffer>();
  try {
    // CUDA cannot allocate zero bytes; a zero-byte tensor gets a one-byte buffer and no copy.
    for (const t of wanted) buffers.set(t.name, context.alloc(Math.max(t.byteLength, 1)));
    await uploadFileRanges(context, path, wanted.map((t) => ({ offset: t.offset, byteLength: t.byteLength, target: buffers.get(t.name)! })), options);
    return buffers;
  } catch (error) {
    for (const buffer of buffers.values()) buffer.dispose();
    throw error;
  }
}
