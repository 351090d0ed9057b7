// ggml's reference quantizers (quantize_row_q4_0_ref … quantize_row_q8_0_ref in
// ggml/src/ggml-quants.c), written again for the tests with C's float arithmetic (Math.fround
// after every operation), to make quantized tensors the way llama.cpp's quantizer makes them.
// test/formats/dequantize.test.ts checks them byte for byte against libggml-base's own.
import { GgmlType, f32ToF16Bits } from "../../src/formats/index.ts";

const f = Math.fround;
const QK = 32;
const FLT_MAX = 3.4028234663852886e38;

/** C's roundf: halves away from zero. */
const roundf = (v: number) => (v < 0 ? -Math.round(-v) : Math.round(v));

function writeHalf(out: Uint8Array, at: number, value: number): void {
  const bits = f32ToF16Bits(value);
  out[at] = bits & 0xff;
  out[at + 1] = bits >> 8;
}

/** Packs 32 values of 4 (or 5) bits: low nibbles of j and j + 16 into qs[j], fifth bits into the 32-bit qh. */
function pack(q: readonly number[], out: Uint8Array, qh: number | undefined, qs: number): void {
  let high = 0;
  for (let j = 0; j < QK / 2; j++) {
    out[qs + j] = (q[j]! & 0x0f) | ((q[j + QK / 2]! & 0x0f) << 4);
    high |= ((q[j]! & 0x10) >> 4) << j;
    high |= ((q[j + QK / 2]! & 0x10) >> 4) << (j + QK / 2);
  }
  if (qh !== undefined) new DataView(out.buffer, out.byteOffset).setUint32(qh, high >>> 0, true);
}

/** Q4_0 and Q5_0: d = (the value of largest magnitude) / -2^(bits-1), q = min(top, (int8)(x/d + 2^(bits-1) + 0.5)). */
function symmetric(x: Float32Array, bits: 4 | 5, out: Uint8Array, at: number): void {
  let amax = 0;
  let max = 0;
  for (const v of x) {
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  const half = 2 ** (bits - 1);
  const d = f(max / -half);
  const id = d ? f(1 / d) : 0;
  writeHalf(out, at, d);
  const q = Array.from(x, (v) => Math.min(2 * half - 1, Math.trunc(f(f(v * id) + (half + 0.5)))));
  pack(q, out, bits === 5 ? at + 2 : undefined, bits === 5 ? at + 6 : at + 2);
}

/** Q4_1 and Q5_1: d = (max - min) / (2^bits - 1), m = min, q = (int)((x - min)/d + 0.5) (clamped for 4 bits). */
function affine(x: Float32Array, bits: 4 | 5, out: Uint8Array, at: number): void {
  let min = FLT_MAX;
  let max = -FLT_MAX;
  for (const v of x) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const d = f(f(max - min) / (2 ** bits - 1));
  const id = d ? f(1 / d) : 0;
  writeHalf(out, at, d);
  writeHalf(out, at + 2, min);
  const q = Array.from(x, (v) => {
    const level = Math.trunc(f(f(f(v - min) * id) + 0.5));
    return bits === 4 ? Math.min(15, level) : level;
  });
  pack(q, out, bits === 5 ? at + 4 : undefined, bits === 5 ? at + 8 : at + 4);
}

/** Q8_0: d = amax / 127, q = roundf(x/d). */
function q8(x: Float32Array, out: Uint8Array, at: number): void {
  let amax = 0;
  for (const v of x) amax = Math.max(amax, Math.abs(v));
  const d = f(amax / 127);
  const id = d ? f(1 / d) : 0;
  writeHalf(out, at, d);
  x.forEach((v, j) => (out[at + 2 + j] = roundf(f(v * id)) & 0xff));
}

const quantizers = new Map<number, { readonly typeSize: number; readonly block: (x: Float32Array, out: Uint8Array, at: number) => void }>([
  [GgmlType.Q4_0, { typeSize: 18, block: (x, out, at) => symmetric(x, 4, out, at) }],
  [GgmlType.Q4_1, { typeSize: 20, block: (x, out, at) => affine(x, 4, out, at) }],
  [GgmlType.Q5_0, { typeSize: 22, block: (x, out, at) => symmetric(x, 5, out, at) }],
  [GgmlType.Q5_1, { typeSize: 24, block: (x, out, at) => affine(x, 5, out, at) }],
  [GgmlType.Q8_0, { typeSize: 34, block: q8 }],
]);

/** `values` (a multiple of 32 of them) quantized to `type` (Q4_0, Q4_1, Q5_0, Q5_1 or Q8_0) as ggml's reference quantizer does. */
export function quantize(values: Float32Array, type: number): Uint8Array {
  const quantizer = quantizers.get(type);
  if (quantizer === undefined || values.length % QK !== 0) throw new RangeError(`cannot quantize ${values.length} values to type ${type}`);
  const out = new Uint8Array((values.length / QK) * quantizer.typeSize);
  for (let i = 0; i < values.length / QK; i++) quantizer.block(values.subarray(i * QK, (i + 1) * QK), out, i * quantizer.typeSize);
  return out;
}
