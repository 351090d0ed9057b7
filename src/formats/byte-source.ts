// Random access to a model file's bytes, from a path (read lazily through a node:fs file
// handle, which Bun, Deno and Node all provide) or from bytes already in memory.
import { open, type FileHandle } from "node:fs/promises";

/** Bytes that can be read by range. Callers bounds-check against `size` before reading. */
export interface ByteSource extends AsyncDisposable {
  readonly size: number;
  /** Reads exactly `length` bytes at `offset` (both within `size`). */
  read(offset: number, length: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/** A path, or the file's bytes in memory. */
export type ByteInput = string | Uint8Array;

class MemorySource implements ByteSource {
  constructor(private readonly bytes: Uint8Array) {}
  get size(): number {
    return this.bytes.length;
  }
  read(offset: number, length: number): Promise<Uint8Array> {
    return Promise.resolve(this.bytes.subarray(offset, offset + length));
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

class FileSource implements ByteSource {
  constructor(
    private readonly handle: FileHandle,
    readonly size: number,
  ) {}
  async read(offset: number, length: number): Promise<Uint8Array> {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(out, done, length - done, offset + done);
      // The file shrank under us; report it rather than looping forever.
      if (bytesRead === 0) throw new Error(`file ended at byte ${offset + done} while reading ${length} bytes at ${offset}`);
      done += bytesRead;
    }
    return out;
  }
  close(): Promise<void> {
    return this.handle.close();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Opens a path for ranged reads, or wraps in-memory bytes (which are not copied). */
export async function openByteSource(input: ByteInput): Promise<ByteSource> {
  if (typeof input !== "string") return new MemorySource(input);
  const handle = await open(input, "r");
  try {
    return new FileSource(handle, (await handle.stat()).size);
  } catch (error) {
    await handle.close();
    throw error;
  }
}
