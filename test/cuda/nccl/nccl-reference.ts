// What an all-reduce over n ranks must give, element by element, for every NCCL dtype and op:
// integers exactly (BigInt, wrapping as the dtype does; avg divides the wrapped sum, toward zero
// for signed types, as NCCL's FuncSumPostDiv), floats against the float64 (or exact) result with
// the rounding that NCCL's reduction order may add as the only slack. Pure TypeScript, so that
// the checker itself is tested on any machine (nccl-reference.test.ts) before it judges a GPU run.
import { NcclDataType, type NcclDataTypeName, type NcclReduceOpName } from "../../../src/cuda/index.ts";
import assert from "node:assert/strict";
import { firstDifference, randomBytes } from "../random.ts";

interface FloatFormat {
  readonly exponentBits: number;
  readonly mantissaBits: number;
  /** e4m3: no infinities; the top exponent holds normal numbers (and, with mantissa 111, NaN). */
  readonly finiteOnly?: boolean;
}

const floatFormats: Partial<Record<NcclDataTypeName, FloatFormat>> = {
  float16: { exponentBits: 5, mantissaBits: 10 },
  bfloat16: { exponentBits: 8, mantissaBits: 7 },
  float32: { exponentBits: 8, mantissaBits: 23 },
  float64: { exponentBits: 11, mantissaBits: 52 },
  float8e4m3: { exponentBits: 4, mantissaBits: 3, finiteOnly: true },
  float8e5m2: { exponentBits: 5, mantissaBits: 2 },
};

export const isFloat = (dtype: NcclDataTypeName): boolean => floatFormats[dtype] !== undefined;

const bias = (f: FloatFormat) => 2 ** (f.exponentBits - 1) - 1;
/** The largest unbiased exponent of a normal number (e4m3 uses the top exponent field too). */
const maxExponent = (f: FloatFormat) => 2 ** f.exponentBits - (f.finiteOnly ? 1 : 2) - bias(f);
const minExponent = (f: FloatFormat) => 1 - bias(f);

// ----- elements <-> bytes ---------------------------------------------------------------------

function readBits(view: DataView, width: number, i: number): bigint {
  if (width === 1) return BigInt(view.getUint8(i));
  if (width === 2) return BigInt(view.getUint16(2 * i, true));
  if (width === 4) return BigInt(view.getUint32(4 * i, true));
  return view.getBigUint64(8 * i, true);
}

function writeBits(view: DataView, width: number, i: number, bits: bigint): void {
  if (width === 1) view.setUint8(i, Number(bits));
  else if (width === 2) view.setUint16(2 * i, Number(bits), true);
  else if (width === 4) view.setUint32(4 * i, Number(bits), true);
  else view.setBigUint64(8 * i, bits, true);
}

function decodeFloat(f: FloatFormat, bits: bigint): number {
  const m = BigInt(f.mantissaBits);
  const exponentField = Number((bits >> m) & ((1n << BigInt(f.exponentBits)) - 1n));
  const mantissa = Number(bits & ((1n << m) - 1n));
  const sign = bits >> (m + BigInt(f.exponentBits)) ? -1 : 1;
  const top = 2 ** f.exponentBits - 1;
  if (exponentField === top && (f.finiteOnly ? mantissa === 2 ** f.mantissaBits - 1 : true)) return f.finiteOnly || mantissa !== 0 ? NaN : sign * Infinity;
  if (exponentField === 0) return sign * mantissa * 2 ** (minExponent(f) - f.mantissaBits);
  return sign * (1 + mantissa / 2 ** f.mantissaBits) * 2 ** (exponentField - bias(f));
}

/** `value` rounded to the nearest number of the format (ties to even), ±Infinity beyond it. */
export function roundToFormat(dtype: NcclDataTypeName, value: number): number {
  const f = floatFormats[dtype]!;
  if (value === 0 || !Number.isFinite(value)) return value;
  const quantum = 2 ** (Math.max(exponentOf(Math.abs(value)), minExponent(f)) - f.mantissaBits);
  const scaled = value / quantum;
  const rounded = Math.abs(scaled % 1) === 0.5 ? 2 * Math.round(scaled / 2) : Math.round(scaled);
  const result = rounded * quantum;
  const largest = (2 - 2 ** -f.mantissaBits * (f.finiteOnly ? 2 : 1)) * 2 ** maxExponent(f);
  return Math.abs(result) > largest ? Math.sign(result) * Infinity : result;
}

function exponentOf(magnitude: number): number {
  let e = Math.floor(Math.log2(magnitude));
  while (2 ** e > magnitude) e--;
  while (2 ** (e + 1) <= magnitude) e++;
  return e;
}

/** Bits of a number the format holds exactly (finite). */
function encodeFloat(f: FloatFormat, value: number): bigint {
  const sign = value < 0 || Object.is(value, -0) ? 1n << BigInt(f.exponentBits + f.mantissaBits) : 0n;
  const magnitude = Math.abs(value);
  if (magnitude === 0) return sign;
  const e = Math.max(exponentOf(magnitude), minExponent(f) - 1);
  const [field, mantissa] = e < minExponent(f)
    ? [0, magnitude / 2 ** (minExponent(f) - f.mantissaBits)]
    : [e + bias(f), (magnitude / 2 ** e - 1) * 2 ** f.mantissaBits];
  return sign | (BigInt(field) << BigInt(f.mantissaBits)) | BigInt(mantissa);
}

const integerTypes: Partial<Record<NcclDataTypeName, { bits: number; signed: boolean }>> = {
  int8: { bits: 8, signed: true },
  uint8: { bits: 8, signed: false },
  int32: { bits: 32, signed: true },
  uint32: { bits: 32, signed: false },
  int64: { bits: 64, signed: true },
  uint64: { bits: 64, signed: false },
};

/** The elements of `bytes`: numbers for floats, bigints (signed as the dtype) for integers. */
export function decodeElements(dtype: NcclDataTypeName, bytes: Uint8Array): (number | bigint)[] {
  const width = NcclDataType[dtype].bytes;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const integer = integerTypes[dtype];
  return Array.from({ length: bytes.byteLength / width }, (_, i) => {
    const bits = readBits(view, width, i);
    if (integer) return integer.signed ? BigInt.asIntN(integer.bits, bits) : bits;
    return decodeFloat(floatFormats[dtype]!, bits);
  });
}

/** Integers (wrapped to the dtype) or floats the dtype holds exactly, as the dtype's bytes. */
export function encodeElements(dtype: NcclDataTypeName, values: readonly (number | bigint)[]): Uint8Array {
  const width = NcclDataType[dtype].bytes;
  const bytes = new Uint8Array(values.length * width);
  const view = new DataView(bytes.buffer);
  const integer = integerTypes[dtype];
  values.forEach((value, i) => writeBits(view, width, i, integer ? BigInt.asUintN(integer.bits, value as bigint) : encodeFloat(floatFormats[dtype]!, value as number)));
  return bytes;
}

// ----- test data ------------------------------------------------------------------------------

/**
 * `count` random elements of `dtype` for one rank of an `op` over `nranks`. Integers: any bits
 * (sums and products wrap). Floats: normal finite numbers only (no NaN payloads, infinities or
 * flushed subnormals), over the whole exponent range for max/min (so `exponents` may widen any
 * test); for sum and avg within [-2, 2] (comparable magnitudes, so every rank's share shows)
 * and for prod within ±k, so that no result leaves the normal range.
 */
export function randomElements(dtype: NcclDataTypeName, count: number, op: NcclReduceOpName = "max", nranks = 1): Uint8Array {
  const f = floatFormats[dtype];
  if (!f) return randomBytes(count * NcclDataType[dtype].bytes);
  const [low, high] = op === "max" || op === "min"
    ? [minExponent(f), f.finiteOnly ? maxExponent(f) - 1 : maxExponent(f)]
    : op === "prod"
    ? [-1, 1].map((s) => s * Math.floor(Math.min(maxExponent(f) - 1, -minExponent(f) - 1) / nranks))
    : [-2, Math.min(2, maxExponent(f) - Math.ceil(Math.log2(nranks)) - 1)];
  const random = new Uint32Array(randomBytes(8 * count).buffer);
  const bits = Math.min(f.mantissaBits, 32);
  return encodeElements(dtype, Array.from({ length: count }, (_, i) => {
    const exponent = low! + (random[2 * i]! % (high! - low! + 1));
    const mantissa = Math.floor((random[2 * i + 1]! / 2 ** 32) * 2 ** bits) / 2 ** bits;
    return (1 + mantissa) * 2 ** exponent * (random[2 * i]! & 0x80000000 ? -1 : 1);
  }));
}

// ----- the reference --------------------------------------------------------------------------

/** Unit roundoff of a float dtype, and its smallest subnormal. */
function precision(dtype: NcclDataTypeName): { u: number; tiny: number } {
  const f = floatFormats[dtype]!;
  return { u: 2 ** -(f.mantissaBits + 1), tiny: 2 ** (minExponent(f) - f.mantissaBits) };
}

function exactInteger(dtype: NcclDataTypeName, op: NcclReduceOpName, values: bigint[]): bigint {
  const { bits, signed } = integerTypes[dtype]!;
  const wrap = (x: bigint) => (signed ? BigInt.asIntN(bits, x) : BigInt.asUintN(bits, x));
  switch (op) {
    case "sum":
      return wrap(values.reduce((a, b) => a + b));
    case "prod":
      return wrap(values.reduce((a, b) => a * b));
    case "max":
      return values.reduce((a, b) => (b > a ? b : a));
    case "min":
      return values.reduce((a, b) => (b < a ? b : a));
    case "avg":
      // BigInt division truncates toward zero, as C's.
      return wrap(values.reduce((a, b) => a + b)) / BigInt(values.length);
  }
}

/**
 * Checks NCCL's all-reduce output against the ranks' inputs. Returns undefined when it holds,
 * else a line naming the first element that does not (or the aggregate that fails).
 * Floats: max and min exactly; sum, avg and prod within 2n roundings of the dtype (of Σ|x|,
 * Σ|x|/n, |Π x|), and for sum and avg the RMS error, relative to Σ|x|, within √n roundings
 * (random rounding sits far below the worst case, and a rank's missing share far above it).
 */
export function checkAllReduce(dtype: NcclDataTypeName, op: NcclReduceOpName, inputs: readonly Uint8Array[], output: Uint8Array): string | undefined {
  const n = inputs.length;
  const [ins, out] = [inputs.map((input) => decodeElements(dtype, input)), decodeElements(dtype, output)];
  const count = out.length;
  if (!isFloat(dtype)) {
    for (let i = 0; i < count; i++) {
      const expected = exactInteger(dtype, op, ins.map((values) => values[i] as bigint));
      if (out[i] !== expected) return `element ${i}: got ${out[i]}, expected ${expected}`;
    }
    return undefined;
  }
  const { u, tiny } = precision(dtype);
  let squares = 0;
  for (let i = 0; i < count; i++) {
    const values = ins.map((v) => v[i] as number);
    const got = out[i] as number;
    const absSum = values.reduce((a, b) => a + Math.abs(b), 0);
    let expected: number;
    let bound: number;
    if (op === "max" || op === "min") {
      expected = Math[op](...values);
      bound = 0;
    } else if (op === "prod") {
      expected = values.reduce((a, b) => a * b);
      bound = 2 * n * u * Math.abs(expected);
    } else {
      const scale = op === "avg" ? 1 / n : 1;
      expected = values.reduce((a, b) => a + b) * scale;
      bound = 2 * n * u * absSum * scale + n * tiny;
      squares += ((got - expected) / (absSum * scale)) ** 2;
    }
    if (!(Math.abs(got - expected) <= bound)) return `element ${i}: got ${got}, expected ${expected} ± ${bound} (inputs ${values.join(", ")})`;
  }
  const rms = Math.sqrt(squares / count);
  if ((op === "sum" || op === "avg") && !(rms <= Math.sqrt(n) * u)) return `RMS error ${rms.toExponential(3)} of Σ|x| exceeds √${n} roundings (${(Math.sqrt(n) * u).toExponential(3)})`;
  return undefined;
}

/** Bit-for-bit equality, showing the bytes around the first difference. */
export function assertSame(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const at = firstDifference(actual, expected);
  const around = (bytes: Uint8Array) => Array.from(bytes.subarray(at - (at % 4), at - (at % 4) + 12), (b) => b.toString(16).padStart(2, "0")).join(" ");
  assert.equal(at, -1, `${what}: first difference at byte ${at} of ${expected.byteLength} (got ${around(actual)}, expected ${around(expected)})`);
}
