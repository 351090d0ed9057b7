// ggml's legacy block-quantized types to float32, as ggml's reference dequantize_row_q4_0 …
// dequantize_row_q8_0 (ggml/src/ggml-quants.c; block layouts in ggml/src/ggml-common.h) compute
// them: blocks of 32 values, each block an fp16 scale d (the _1 types also an fp16 minimum m)
// and 4, 5 or 8 bits per value, little-endian. Every q·d is exact in float32 (d has at most 11
// significant bits, q at most 8), and q·d + m rounds once to float32 as C's float addition does
// (a sum of two floats computed in double and rounded to float32 rounds the same), so the values
// are ggml's bit for bit (ggml built without FMA contraction, as its reference code is).
import { UnsupportedGgmlTypeError } from "../errors.ts";
import { f16BitsToF32 } from "../half.ts";
import { GgmlType, ggmlTypeInfo } from "./ggml-types.ts";

const QK = 32;

/** Writes the 32 values of the block at `bytes[at]` into `out[o…o + 31]`. */
type BlockDecoder = (bytes: Uint8Array, at: number, out: Float32Array, o: number) => void;

const half = (bytes: Uint8Array, at: number) => f16BitsToF32(bytes[at]! | (bytes[at + 1]! << 8));
const u32 = (bytes: Uint8Array, at: number) => (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;

/** 4-bit values (q - offset)·d: qs[j] holds value j in its low nibble and value j + 16 in its high one. */
function nibbles(bytes: Uint8Array, qs: number, d: number, offset: number, out: Float32Array, o: number): void {
  for (let j = 0; j < QK / 2; j++) {
    const q = bytes[qs + j]!;
    out[o + j] = ((q & 0x0f) - offset) * d;
    out[o + j + QK / 2] = ((q >> 4) - offset) * d;
  }
}

/** 5-bit values (q - offset)·d: the nibbles as above, and bit j of the 32-bit qh as value j's fifth bit. */
function fiveBits(bytes: Uint8Array, qh: number, qs: number, d: number, offset: number, out: Float32Array, o: number): void {
  const high = u32(bytes, qh);
  for (let j = 0; j < QK / 2; j++) {
    const q = bytes[qs + j]!;
    out[o + j] = (((q & 0x0f) | (((high >>> j) << 4) & 0x10)) - offset) * d;
    out[o + j + QK / 2] = (((q >> 4) | ((high >>> (j + 12)) & 0x10)) - offset) * d;
  }
}

/** Adds a block's minimum to its 32 products; the Float32Array store rounds each sum once. */
function addMinimum(out: Float32Array, o: number, m: number): void {
  for (let j = 0; j < QK; j++) out[o + j] = out[o + j]! + m;
}

const decoders = new Map<number, BlockDecoder>([
  // block_q4_0 { half d; uint8 qs[16]; }: (q - 8)·d
  [GgmlType.Q4_0, (b, at, out, o) => nibbles(b, at + 2, half(b, at), 8, out, o)],
  // block_q4_1 { half d, m; uint8 qs[16]; }: q·d + m
  [GgmlType.Q4_1, (b, at, out, o) => {
    nibbles(b, at + 4, half(b, at), 0, out, o);
    addMinimum(out, o, half(b, at + 2));
  }],
  // block_q5_0 { half d; uint8 qh[4]; uint8 qs[16]; }: (q - 16)·d
  [GgmlType.Q5_0, (b, at, out, o) => fiveBits(b, at + 2, at + 6, half(b, at), 16, out, o)],
  // block_q5_1 { half d, m; uint8 qh[4]; uint8 qs[16]; }: q·d + m
  [GgmlType.Q5_1, (b, at, out, o) => {
    fiveBits(b, at + 4, at + 8, half(b, at), 0, out, o);
    addMinimum(out, o, half(b, at + 2));
  }],
  // block_q8_0 { half d; int8 qs[32]; }: q·d
  [GgmlType.Q8_0, (b, at, out, o) => {
    const d = half(b, at);
    for (let j = 0; j < QK; j++) out[o + j] = ((b[at + 2 + j]! << 24) >> 24) * d;
  }],
]);

/** The ggml types {@link dequantize} handles: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0. */
export const dequantizableTypes: readonly number[] = [...decoders.keys()];

/** The values of tensor data of a type in {@link dequantizableTypes}, as float32. */
export function dequantize(bytes: Uint8Array, type: number): Float32Array {
  const info = ggmlTypeInfo(type);
  const decode = decoders.get(type);
  if (info === undefined || decode === undefined) {
    const names = dequantizableTypes.map((t) => ggmlTypeInfo(t)!.name).join(", ");
    throw new UnsupportedGgmlTypeError(info?.name ?? String(type), `gpuffi dequantizes ${names} only`);
  }
  if (bytes.length % info.typeSize !== 0) throw new RangeError(`${bytes.length} bytes are not a whole number of ${info.name} blocks (${info.typeSize} bytes each)`);
  const blocks = bytes.length / info.typeSize;
  const out = new Float32Array(blocks * QK);
  for (let i = 0; i < blocks; i++) decode(bytes, i * info.typeSize, out, i * QK);
  return out;
}
