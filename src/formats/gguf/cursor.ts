// Little-endian reads over the bytes of a GGUF header. Every read is checked against the size
// of the whole file first (a malformed length is a format error), then against the bytes
// loaded so far (more must be loaded: NeedMoreBytes, which the lazy reader catches).
import { GgufFormatError } from "../errors.ts";

/** The header continues past the bytes loaded so far; load at least `upTo` bytes and retry. */
export class NeedMoreBytes {
  constructor(readonly upTo: number) {}
}

const utf8 = new TextDecoder("utf-8");

export class Cursor {
  pos = 0;
  private readonly view: DataView;

  constructor(
    private readonly bytes: Uint8Array,
    readonly fileSize: number,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get remaining(): number {
    return this.fileSize - this.pos;
  }

  /** Claims `length` bytes for `field` and returns where they start. */
  take(length: number, field: string): number {
    if (length > this.remaining) {
      throw new GgufFormatError(field, this.pos, `needs ${length} bytes but the file has only ${this.remaining} left`);
    }
    if (this.pos + length > this.bytes.length) throw new NeedMoreBytes(this.pos + length);
    const at = this.pos;
    this.pos += length;
    return at;
  }

  u8(field: string): number {
    return this.view.getUint8(this.take(1, field));
  }
  u32(field: string): number {
    return this.view.getUint32(this.take(4, field), true);
  }
  i32(field: string): number {
    return this.view.getInt32(this.take(4, field), true);
  }
  u64(field: string): bigint {
    return this.view.getBigUint64(this.take(8, field), true);
  }
  i64(field: string): bigint {
    return this.view.getBigInt64(this.take(8, field), true);
  }

  /** The value of a fixed-size scalar GGUF type at the cursor. */
  scalar(type: "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "f64", field: string): number;
  scalar(type: "u64" | "i64", field: string): bigint;
  scalar(type: string, field: string): number | bigint {
    const v = this.view;
    switch (type) {
      case "u8": return v.getUint8(this.take(1, field));
      case "i8": return v.getInt8(this.take(1, field));
      case "u16": return v.getUint16(this.take(2, field), true);
      case "i16": return v.getInt16(this.take(2, field), true);
      case "u32": return v.getUint32(this.take(4, field), true);
      case "i32": return v.getInt32(this.take(4, field), true);
      case "f32": return v.getFloat32(this.take(4, field), true);
      case "f64": return v.getFloat64(this.take(8, field), true);
      case "u64": return v.getBigUint64(this.take(8, field), true);
      default: return v.getBigInt64(this.take(8, field), true);
    }
  }

  /**
   * A u64 count of items that each occupy at least `minItemBytes` in the file; rejected before
   * anything is allocated or looped over if the rest of the file cannot hold that many.
   */
  count(minItemBytes: number, field: string): number {
    const at = this.pos;
    const n = this.u64(field);
    if (n * BigInt(minItemBytes) > BigInt(this.remaining)) {
      throw new GgufFormatError(field, at, `count ${n} needs at least ${n * BigInt(minItemBytes)} bytes but the file has only ${this.remaining} left`);
    }
    return Number(n);
  }

  /** A copy of the next `length` bytes (a fresh, aligned buffer). */
  copy(length: number, field: string): Uint8Array {
    const at = this.take(length, field);
    return this.bytes.slice(at, at + length);
  }

  string(field: string): string {
    const length = this.count(1, field);
    const at = this.take(length, field);
    return utf8.decode(this.bytes.subarray(at, at + length));
  }
}
