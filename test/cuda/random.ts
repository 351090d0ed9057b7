// Fast non-trivial test data: xorshift32 fills, so that a 1 GiB buffer takes well under a second.
import { Buffer } from "node:buffer";

let state = (Date.now() ^ 0x9e3779b9) >>> 0 || 1;

export function randomBytes(byteLength: number): Uint8Array {
  const bytes = new Uint8Array(byteLength);
  const words = new Uint32Array(bytes.buffer, 0, byteLength >>> 2);
  let x = state;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  for (let i = words.length * 4; i < byteLength; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = (x & 0xff) | 1;
  }
  state = x >>> 0 || 1;
  return bytes;
}

/** Bit-exact comparison: -1 when equal, else the first differing byte (not a gigabyte-long diff). */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const bytes = (v: Uint8Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (bytes(a).equals(bytes(b))) return -1;
  const n = Math.min(a.byteLength, b.byteLength);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}
