// Reads of one file into native memory, many at once, on every runtime. Streamed uploads
// (src/cuda/upload.ts) read model files into pinned staging buffers this way: page cache →
// memory runs at a few GB/s per thread, so their speed is the number of reads in flight.
//  - Bun runs node:fs reads on a pool of its own: each read takes a file handle no other read is
//    using (Deno's node:fs runs one read at a time per handle).
//  - Deno: pread(2) as a nonblocking FFI call, on Deno's blocking threads, straight into the
//    native memory. Through node:fs handles Deno read the page cache at 39–42 GB/s on the H200
//    host where 16 C threads read 52 (bench/upload.bench.ts shows both).
//  - Node runs them on libuv's pool, 4 threads unless UV_THREADPOOL_SIZE said otherwise before
//    the first file operation (which module loading makes: a library cannot raise it), and
//    koffi's async calls share those threads. So reads run on worker threads of gpuffi's own,
//    each a synchronous pread into a view of the native memory.
import { availableParallelism } from "node:os";
import { open, type FileHandle } from "node:fs/promises";
import { createRequire } from "node:module";
import { backend } from "./backend.ts";
import { FfiArgumentError } from "./errors.ts";
import { type NativeLibrary, openLibrary } from "./library.ts";
import { failedCall, libcMappingSymbols, mappingConstants } from "./mapped-file.ts";
import { runtimeName } from "./runtime.ts";
import { type Pointer, defineSymbols } from "./types.ts";

/** An open file whose bytes are read into native memory, up to `concurrency` reads at once. */
export interface FileReads extends AsyncDisposable {
  /**
   * Reads up to `length` bytes at `position` into the native memory at `ptr` (which must stay
   * valid until the promise settles); resolves with the bytes read, fewer only at the end of the file.
   */
  read(ptr: Pointer, length: number, position: number): Promise<number>;
  /** Closes the file; reads still in flight must have settled. */
  close(): Promise<void>;
}

/** How reads reach the file: this runtime's best (default), or its node:fs file handles (for comparison). */
export type FileReadMethod = "default" | "handles";

/** Opens `path` for reads into native memory, `concurrency` of them at a time. */
export async function openFileReads(path: string, concurrency: number, method: FileReadMethod = "default"): Promise<FileReads> {
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new FfiArgumentError(`openFileReads: concurrency must be a positive integer, got ${concurrency}`);
  if (method === "handles") return await HandleReads.open(path, concurrency);
  if (runtimeName === "node") return await WorkerReads.open(path, concurrency);
  return runtimeName === "deno" ? await PreadReads.open(path, concurrency) : await HandleReads.open(path, concurrency);
}

function checkRead(ptr: Pointer, length: number, position: number): void {
  for (const [name, value] of [["ptr", ptr], ["length", length], ["position", position]] as const) {
    if (!Number.isSafeInteger(value) || value < 0) throw new FfiArgumentError(`FileReads.read: ${name} must be a whole number ≥ 0, got ${value}`);
  }
  if (ptr === 0 && length > 0) throw new FfiArgumentError("FileReads.read: NULL destination");
}

/** Bun: node:fs reads, each on a file handle no other read in flight uses. */
class HandleReads implements FileReads {
  readonly #idle: FileHandle[] = [];
  readonly #all: FileHandle[] = [];
  readonly #waiting: ((handle: FileHandle) => void)[] = [];

  private constructor(readonly path: string, readonly concurrency: number) {}

  static async open(path: string, concurrency: number): Promise<HandleReads> {
    const reads = new HandleReads(path, concurrency);
    // The first handle now, so that a missing file fails here.
    const first = await open(path, "r");
    reads.#all.push(first);
    reads.#idle.push(first);
    return reads;
  }

  async #acquire(): Promise<FileHandle> {
    const idle = this.#idle.pop();
    if (idle !== undefined) return idle;
    if (this.#all.length < this.concurrency) {
      const handle = await open(this.path, "r");
      this.#all.push(handle);
      return handle;
    }
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  #release(handle: FileHandle): void {
    const next = this.#waiting.shift();
    if (next !== undefined) next(handle);
    else this.#idle.push(handle);
  }

  async read(ptr: Pointer, length: number, position: number): Promise<number> {
    checkRead(ptr, length, position);
    if (length === 0) return 0;
    const into = new Uint8Array(backend.view(ptr, length));
    const handle = await this.#acquire();
    try {
      let done = 0;
      while (done < length) {
        const { bytesRead } = await handle.read(into, done, length - done, position + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return done;
    } finally {
      this.#release(handle);
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.#all.splice(0).map((handle) => handle.close()));
    this.#idle.length = 0;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

// ----- Deno: pread off the JS thread ----------------------------------------------------------

export const libcReads = defineSymbols({
  // <unistd.h> ssize_t pread(int fd, void *buf, size_t count, off_t offset);
  pread: { parameters: ["i32", "ptr", "usize", "isize"], result: "isize", nonblocking: true },
});

let libcRead: NativeLibrary<typeof libcReads> | undefined;

/**
 * Deno: one descriptor of the file, opened by libc (a node:fs handle's fd is Deno's own number),
 * read with pread calls that Deno runs on its blocking threads, up to `concurrency` at once.
 */
class PreadReads implements FileReads {
  #inFlight = 0;
  readonly #waiting: (() => void)[] = [];
  #fd: number;

  private constructor(readonly path: string, fd: number, readonly concurrency: number) {
    this.#fd = fd;
  }

  static async open(path: string, concurrency: number): Promise<PreadReads> {
    // node:fs first, for its errors (ENOENT, EACCES, EISDIR with their codes); then libc's descriptor.
    await (await open(path, "r")).close();
    libcRead ??= openLibrary("libc", "libc.so.6", libcReads);
    const fd = libcMappingSymbols().open(path, mappingConstants.O_RDONLY | mappingConstants.O_CLOEXEC);
    if (fd < 0) failedCall("open", path);
    return new PreadReads(path, fd, concurrency);
  }

  async read(ptr: Pointer, length: number, position: number): Promise<number> {
    checkRead(ptr, length, position);
    if (this.#fd < 0) throw new FfiArgumentError(`FileReads.read: ${this.path} was closed`);
    if (length === 0) return 0;
    // A finished read hands its place to the first waiting one.
    if (this.#inFlight < this.concurrency) this.#inFlight++;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      let done = 0;
      while (done < length) {
        const n = await libcRead!.async.pread(this.#fd, ptr + done, length - done, position + done);
        // errno lives on the thread that ran the call: the same range through node:fs says what went wrong.
        if (n < 0) return done + await this.#readThroughFs(ptr + done, length - done, position + done);
        if (n === 0) break;
        done += n;
      }
      return done;
    } finally {
      const next = this.#waiting.shift();
      if (next === undefined) this.#inFlight--;
      else next();
    }
  }

  async #readThroughFs(ptr: Pointer, length: number, position: number): Promise<number> {
    const handle = await open(this.path, "r");
    try {
      const { bytesRead } = await handle.read(new Uint8Array(backend.view(ptr, length)), 0, length, position);
      return bytesRead;
    } finally {
      await handle.close();
    }
  }

  close(): Promise<void> {
    if (this.#fd >= 0) libcMappingSymbols().close(this.#fd);
    this.#fd = -1;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

// ----- Node: worker threads ---------------------------------------------------------------------

interface ReadRequest {
  readonly id: number;
  readonly fd: number;
  readonly ptr: Pointer;
  readonly length: number;
  readonly position: number;
}
type ReadReply = { readonly id: number; readonly done: number } | { readonly id: number; readonly error: { message: string; code?: string } };

// CommonJS, evaluated in each worker: a synchronous pread loop into a koffi view of the memory.
const workerSource = (koffiPath: string) => `
const { parentPort } = require("node:worker_threads");
const { readSync } = require("node:fs");
const koffi = require(${JSON.stringify(koffiPath)});
parentPort.on("message", ({ id, fd, ptr, length, position }) => {
  try {
    const into = new Uint8Array(koffi.view(ptr, length));
    let done = 0;
    while (done < length) {
      const n = readSync(fd, into, done, length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    parentPort.postMessage({ id, done });
  } catch (error) {
    parentPort.postMessage({ id, error: { message: String(error && error.message), code: error && error.code } });
  }
});`;

type NodeWorker = import("node:worker_threads").Worker;

interface Reader {
  readonly worker: NodeWorker;
  /** The requests posted to it and not answered yet, in order. */
  readonly outstanding: Set<number>;
}

/**
 * The process's reader threads, made as reads ask for them (at most one fewer than the
 * machine's cores) and kept for later uploads: starting a worker costs tens of milliseconds. An
 * idle one does not keep the process alive. A read is posted at once to the reader with the
 * fewest outstanding, whose port queues it: a reader goes from one read to the next without
 * waiting for the JS thread, which may be busy.
 */
class ReaderPool {
  readonly #readers: Reader[] = [];
  readonly #pending = new Map<number, { resolve: (done: number) => void; reject: (error: Error) => void }>();
  #nextId = 0;
  #source: string | undefined;

  constructor(readonly Worker: typeof import("node:worker_threads").Worker) {}

  read(size: number, request: Omit<ReadRequest, "id">): Promise<number> {
    const id = this.#nextId++;
    return new Promise<number>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      const reader = this.#leastBusy(size);
      reader.outstanding.add(id);
      // Referenced while it has work: an awaited read keeps the process alive.
      if (reader.outstanding.size === 1) reader.worker.ref();
      reader.worker.postMessage({ id, ...request } satisfies ReadRequest);
    });
  }

  /** The reader with the fewest reads outstanding; a new one while all are busy and `size` allows. */
  #leastBusy(size: number): Reader {
    let best: Reader | undefined;
    for (const reader of this.#readers) if (best === undefined || reader.outstanding.size < best.outstanding.size) best = reader;
    // A core is left to the JS thread, which hands out the reads and queues the copies of
    // finished ones. One reader already read 12–13 GB/s from the page cache on the CI box.
    const most = Math.min(size, Math.max(1, availableParallelism() - 1));
    if (best !== undefined && (best.outstanding.size === 0 || this.#readers.length >= most)) return best;
    this.#source ??= workerSource(createRequire(import.meta.url).resolve("koffi"));
    const worker = new this.Worker(this.#source, { eval: true });
    worker.unref();
    const reader: Reader = { worker, outstanding: new Set() };
    worker.on("message", (reply: ReadReply) => this.#settle(reader, reply));
    worker.on("error", (error) => this.#fail(reader, error));
    worker.on("exit", () => this.#fail(reader, new Error("a gpuffi file reader thread exited")));
    this.#readers.push(reader);
    return reader;
  }

  #settle(reader: Reader, reply: ReadReply): void {
    reader.outstanding.delete(reply.id);
    if (reader.outstanding.size === 0) reader.worker.unref();
    const pending = this.#pending.get(reply.id);
    this.#pending.delete(reply.id);
    if ("error" in reply) {
      pending?.reject(Object.assign(new Error(reply.error.message), reply.error.code === undefined ? {} : { code: reply.error.code }));
    } else {
      pending?.resolve(reply.done);
    }
  }

  #fail(reader: Reader, error: Error): void {
    const at = this.#readers.indexOf(reader);
    if (at < 0) return;
    this.#readers.splice(at, 1);
    for (const id of reader.outstanding) {
      this.#pending.get(id)?.reject(error);
      this.#pending.delete(id);
    }
    reader.outstanding.clear();
  }
}

let readerPool: ReaderPool | undefined;

/** Node: one file descriptor, read by the reader threads (pread needs no file position of its own). */
class WorkerReads implements FileReads {
  private constructor(readonly handle: FileHandle, readonly concurrency: number, readonly pool: ReaderPool) {}

  static async open(path: string, concurrency: number): Promise<WorkerReads> {
    readerPool ??= new ReaderPool((await import("node:worker_threads")).Worker);
    return new WorkerReads(await open(path, "r"), concurrency, readerPool);
  }

  async read(ptr: Pointer, length: number, position: number): Promise<number> {
    checkRead(ptr, length, position);
    if (length === 0) return 0;
    return this.pool.read(this.concurrency, { fd: this.handle.fd, ptr, length, position });
  }

  close(): Promise<void> {
    return this.handle.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
