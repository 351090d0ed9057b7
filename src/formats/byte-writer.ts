// A growable little-endian byte buffer for building file headers, and a sequential file writer.
import { open, type FileHandle } from "node:fs/promises";

export class ByteWriter {
  private buffer = new Uint8Array(4096);
  private view = new DataView(this.buffer.buffer);
  length = 0;

  private reserve(n: number): number {
    if (this.length + n > this.buffer.length) {
      const bigger = new Uint8Array(Math.max(this.buffer.length * 2, this.length + n));
      bigger.set(this.buffer.subarray(0, this.length));
      this.buffer = bigger;
      this.view = new DataView(bigger.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  /** Reserves `n` bytes and returns the view to write them through (reserving may replace it). */
  private at(n: number): DataView {
    this.reserve(n);
    return this.view;
  }

  u8(v: number): void { this.at(1).setUint8(this.length - 1, v); }
  i8(v: number): void { this.at(1).setInt8(this.length - 1, v); }
  u16(v: number): void { this.at(2).setUint16(this.length - 2, v, true); }
  i16(v: number): void { this.at(2).setInt16(this.length - 2, v, true); }
  u32(v: number): void { this.at(4).setUint32(this.length - 4, v, true); }
  i32(v: number): void { this.at(4).setInt32(this.length - 4, v, true); }
  f32(v: number): void { this.at(4).setFloat32(this.length - 4, v, true); }
  f64(v: number): void { this.at(8).setFloat64(this.length - 8, v, true); }
  u64(v: bigint | number): void { this.at(8).setBigUint64(this.length - 8, BigInt(v), true); }
  i64(v: bigint | number): void { this.at(8).setBigInt64(this.length - 8, BigInt(v), true); }

  bytes(data: Uint8Array): void {
    const at = this.reserve(data.length);
    this.buffer.set(data, at);
  }

  /** Appends zero bytes until the length is a multiple of `alignment`. */
  pad(alignment: number): void {
    const start = this.reserve((alignment - (this.length % alignment)) % alignment);
    this.buffer.fill(0, start, this.length);
  }

  /** The bytes written so far (a view, valid until the next write). */
  result(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }
}

/** A file opened for sequential writing; `write` always writes every byte. */
export interface SequentialFile {
  write(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export async function openForWriting(path: string): Promise<SequentialFile> {
  const handle: FileHandle = await open(path, "w");
  return {
    async write(bytes) {
      for (let done = 0; done < bytes.length;) {
        done += (await handle.write(bytes, done, bytes.length - done)).bytesWritten;
      }
    },
    close: () => handle.close(),
  };
}
