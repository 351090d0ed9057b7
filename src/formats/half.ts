// IEEE binary16 (fp16) and bfloat16 to and from binary32, rounding to nearest, ties to even.
// Bulk fp16 conversion uses the engine's Float16Array where it exists (Bun, Deno, newer Node),
// which converts natively; elsewhere a bit-exact JS fallback does the same job. Both paths give
// identical results for every non-NaN value; NaN stays NaN (the fallback also keeps its sign and
// top payload bits, the engine may canonicalise them).

/** Converts between fp16 bit patterns (Uint16Array) and float32 values. */
export interface HalfCodec {
  f16ToF32(bits: Uint16Array): Float32Array;
  f32ToF16(values: Float32Array): Uint16Array;
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** float32 bit pattern → fp16 bit pattern, round to nearest even, overflow to ±Inf. */
function f32BitsToF16Bits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200 | (mantissa >>> 13));
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Result is subnormal (or zero): shift the full significand so one unit is 2^-24.
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mantissa & ((1 << shift) - 1);
    let result = mantissa >>> shift;
    if (rest > half || (rest === half && (result & 1) === 1)) result++;
    return sign | result;
  }
  let result = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent, up to Inf.
  if (rest > 0x1000 || (rest === 0x1000 && (result & 1) === 1)) result++;
  return sign | result;
}

/** fp16 bit pattern → float32 bit pattern (exact: every fp16 value is a float32 value). */
function f16BitsToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >>> 10) & 0x1f;
  let mantissa = h & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  let e = 113;
  while ((mantissa & 0x400) === 0) {
    mantissa <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mantissa & 0x3ff) << 13)) >>> 0;
}

/** The pure-JS codec; always available. */
export const fallbackHalfCodec: HalfCodec = {
  f16ToF32(bits) {
    const out = new Float32Array(bits.length);
    const outBits = new Uint32Array(out.buffer);
    for (let i = 0; i < bits.length; i++) outBits[i] = f16BitsToF32Bits(bits[i]!);
    return out;
  },
  f32ToF16(values) {
    const inBits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    const out = new Uint16Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = f32BitsToF16Bits(inBits[i]!);
    return out;
  },
};

type Float16ArrayConstructor = new (source: ArrayBufferLike | number, byteOffset?: number, length?: number) => ArrayLike<number> & {
  set(source: ArrayLike<number>): void;
  readonly buffer: ArrayBufferLike;
};
const Float16ArrayCtor = (globalThis as { Float16Array?: Float16ArrayConstructor }).Float16Array;

/** The engine's Float16Array codec, or undefined where the runtime lacks Float16Array. */
export const nativeHalfCodec: HalfCodec | undefined = Float16ArrayCtor === undefined ? undefined : {
  f16ToF32(bits) {
    return Float32Array.from(new Float16ArrayCtor(bits.buffer, bits.byteOffset, bits.length));
  },
  f32ToF16(values) {
    const halves = new Float16ArrayCtor(values.length);
    halves.set(values);
    return new Uint16Array(halves.buffer);
  },
};

const bestCodec = nativeHalfCodec ?? fallbackHalfCodec;

/** fp16 bit patterns → float32 values. */
export function f16ToF32Array(bits: Uint16Array): Float32Array {
  return bestCodec.f16ToF32(bits);
}

/** float32 values → fp16 bit patterns (round to nearest even). */
export function f32ToF16Array(values: Float32Array): Uint16Array {
  return bestCodec.f32ToF16(values);
}

/** One fp16 bit pattern → its value. */
export function f16BitsToF32(bits: number): number {
  scratchU32[0] = f16BitsToF32Bits(bits & 0xffff);
  return scratchF32[0]!;
}

/** A number, first rounded to float32 (as C's `(half)(float)x`), → fp16 bit pattern. */
export function f32ToF16Bits(value: number): number {
  scratchF32[0] = value;
  return f32BitsToF16Bits(scratchU32[0]!);
}

/** One bfloat16 bit pattern → its value (bfloat16 is the top half of a float32). */
export function bf16BitsToF32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0]!;
}

function f32BitsToBf16Bits(x: number): number {
  // Keep NaN a NaN: rounding could carry a small payload into the exponent (→ Inf).
  if ((x & 0x7fffffff) > 0x7f800000) return (x >>> 16) | 0x0040;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** A number, first rounded to float32, → bfloat16 bit pattern (round to nearest even). */
export function f32ToBf16Bits(value: number): number {
  scratchF32[0] = value;
  return f32BitsToBf16Bits(scratchU32[0]!);
}

/** bfloat16 bit patterns → float32 values. */
export function bf16ToF32Array(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i]! << 16;
  return out;
}

/** float32 values → bfloat16 bit patterns (round to nearest even). */
export function f32ToBf16Array(values: Float32Array): Uint16Array {
  const inBits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32BitsToBf16Bits(inBits[i]!);
  return out;
}
