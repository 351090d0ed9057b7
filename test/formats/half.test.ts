// fp16/bf16 conversions: every 16-bit pattern through both fp16 paths (engine Float16Array and
// the JS fallback), and float32 → 16-bit rounding against references written independently
// here (nearest value by search over the format's values, not by bit tricks).
import assert from "node:assert/strict";
import fc from "fast-check";
import { test } from "../harness.ts";
import {
  type HalfCodec,
  bf16BitsToF32,
  bf16ToF32Array,
  f16BitsToF32,
  f32ToBf16Array,
  f32ToBf16Bits,
  f32ToF16Bits,
  fallbackHalfCodec,
  nativeHalfCodec,
} from "../../src/formats/index.ts";

const codecs: [string, HalfCodec | undefined][] = [["fallback", fallbackHalfCodec], ["Float16Array", nativeHalfCodec]];
const allPatterns = Uint16Array.from({ length: 65536 }, (_, i) => i);

/** fp16 value by the textbook formula. */
function refF16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0x1f) return mantissa === 0 ? sign * Infinity : NaN;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** Nearest fp16 to a (float32) value: binary search over the ordered positive patterns, ties to even. */
function refF32ToF16(x: number): number {
  if (Number.isNaN(x)) return -1;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  let lo = 0;
  let hi = 0x7c00; // +Inf; v(lo) <= a < v(hi) is kept below
  if (a >= refF16Value(0x7c00)) return sign | 0x7c00;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (refF16Value(mid) <= a) lo = mid;
    else hi = mid;
  }
  // Above the largest finite value, the "next" value for rounding is 2^16.
  const upper = hi === 0x7c00 ? 65536 : refF16Value(hi);
  const below = a - refF16Value(lo);
  const above = upper - a;
  const pick = below < above ? lo : above < below ? hi : (lo & 1) === 0 ? lo : hi;
  return sign | pick;
}

function f32FromBits(bits: number): number {
  return new Float32Array(Uint32Array.of(bits).buffer)[0]!;
}

function bitsOfF32(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

const isF16NaN = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;

for (const [name, codec] of codecs) {
  const skip = codec === undefined ? "this runtime has no Float16Array" : undefined;

  test(`fp16 → f32 (${name}): all 65,536 patterns match the formula`, () => {
    const out = codec!.f16ToF32(allPatterns);
    for (let h = 0; h < 65536; h++) {
      const expected = refF16Value(h);
      if (Number.isNaN(expected)) assert.ok(Number.isNaN(out[h]), `0x${h.toString(16)} should be NaN`);
      else assert.ok(Object.is(out[h], expected), `0x${h.toString(16)}: ${out[h]} !== ${expected}`);
    }
  }, { skip });

  test(`f32 → fp16 (${name}): every fp16 value round-trips, NaN stays NaN`, () => {
    const back = codec!.f32ToF16(codec!.f16ToF32(allPatterns));
    for (let h = 0; h < 65536; h++) {
      if (isF16NaN(h)) assert.ok(isF16NaN(back[h]!), `NaN 0x${h.toString(16)} became 0x${back[h]!.toString(16)}`);
      else assert.equal(back[h], h);
    }
  }, { skip });

  test(`f32 → fp16 (${name}): midpoints between neighbours round to the even one`, () => {
    const patterns: number[] = [];
    const midpoints: number[] = [];
    for (let h = 0; h < 0xffff; h++) {
      if ((h & 0x7fff) >= 0x7c00 || (h & 0x7fff) === 0x7fff) continue;
      midpoints.push((refF16Value(h) + refF16Value(h + 1)) / 2);
      patterns.push(h);
    }
    const out = codec!.f32ToF16(Float32Array.from(midpoints));
    patterns.forEach((h, i) => assert.equal(out[i], (h & 1) === 0 ? h : h + 1, `midpoint above 0x${h.toString(16)}`));
  }, { skip });

  test(`f32 → fp16 (${name}): edge values and random float32 match the reference`, () => {
    const edges = [0, -0, 2 ** -25, 2 ** -25 * (1 + 2 ** -23), 2 ** -24, 3 * 2 ** -26, 2 ** -14, 65504, 65519.99, 65520, -65520, 1e10,
      Infinity, -Infinity, 1 + 2 ** -11, 1 + 3 * 2 ** -11, f32FromBits(1), f32FromBits(0x7f7fffff), f32FromBits(0x807fffff)];
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 1, maxLength: 200 }), (bits) => {
      const values = Float32Array.from([...edges, ...bits.map(f32FromBits)]);
      const out = codec!.f32ToF16(values);
      values.forEach((v, i) => {
        if (Number.isNaN(v)) assert.ok(isF16NaN(out[i]!));
        else assert.equal(out[i], refF32ToF16(v), `${v} (0x${bitsOfF32(values)[i]!.toString(16)})`);
      });
    }), { numRuns: 300 });
  }, { skip });
}

test("fp16 fallback keeps the sign and payload of NaNs (quietened on the way back)", () => {
  const nans = Uint16Array.from([0x7c01, 0x7e00, 0xfe00, 0xffff, 0x7d55]);
  const bits = bitsOfF32(fallbackHalfCodec.f16ToF32(nans));
  nans.forEach((h, i) => assert.equal(bits[i], (((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13)) >>> 0));
  assert.deepEqual(Array.from(fallbackHalfCodec.f32ToF16(new Float32Array(bits.buffer))), Array.from(nans, (h) => h | 0x200));
});

test("scalar fp16 helpers agree with the bulk conversion on every pattern", () => {
  const bulk = fallbackHalfCodec.f16ToF32(allPatterns);
  for (let h = 0; h < 65536; h++) {
    const v = f16BitsToF32(h);
    if (isF16NaN(h)) assert.ok(Number.isNaN(v));
    else {
      assert.ok(Object.is(v, bulk[h]));
      assert.equal(f32ToF16Bits(v), h);
    }
  }
  // A double is rounded to float32 first, as C's (half)(float)x.
  assert.equal(f32ToF16Bits(1 + 2 ** -11 + 2 ** -40), f32ToF16Bits(Math.fround(1 + 2 ** -11 + 2 ** -40)));
});

/** Nearest bfloat16: the two bf16 neighbours of a float32 by truncation, ties to even. */
function refF32ToBf16(x: number): number {
  const bits = new Uint32Array(Float32Array.of(x).buffer)[0]!;
  const lower = bits >>> 16;
  const lowerValue = Math.abs(bf16BitsToF32(lower));
  const upperValue = (lower & 0x7fff) === 0x7f7f ? 2 ** 128 : Math.abs(bf16BitsToF32(lower + 1));
  const a = Math.abs(x);
  if (a - lowerValue < upperValue - a) return lower;
  if (a - lowerValue > upperValue - a) return lower + 1;
  return (lower & 1) === 0 ? lower : lower + 1;
}

test("bf16 → f32: all 65,536 patterns match the formula", () => {
  const out = bf16ToF32Array(allPatterns);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 7) & 0xff;
    const mantissa = h & 0x7f;
    const expected = exponent === 0xff ? (mantissa === 0 ? sign * Infinity : NaN)
      : exponent === 0 ? sign * mantissa * 2 ** -133
      : sign * (1 + mantissa / 128) * 2 ** (exponent - 127);
    if (Number.isNaN(expected)) assert.ok(Number.isNaN(out[h]));
    else assert.ok(Object.is(out[h], expected), `0x${h.toString(16)}`);
    assert.ok(Object.is(bf16BitsToF32(h), out[h]) || Number.isNaN(out[h]));
  }
});

test("f32 → bf16: every bf16 value round-trips exactly, NaNs included", () => {
  const back = f32ToBf16Array(bf16ToF32Array(allPatterns));
  for (let h = 0; h < 65536; h++) {
    const isNaN = (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
    // A NaN keeps its sign and payload; the quiet bit is set.
    assert.equal(back[h], isNaN ? h | 0x40 : h);
  }
});

test("f32 → bf16: random float32 and edges match the reference", () => {
  const edges = [f32FromBits(0x7f7fffff), f32FromBits(0x7f7f8000), f32FromBits(0x3f808000), f32FromBits(0x3f818000), f32FromBits(1), -0, f32FromBits(0x7f800001)];
  fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 1, maxLength: 200 }), (bits) => {
    const values = Float32Array.from([...edges, ...bits.map(f32FromBits)]);
    const out = f32ToBf16Array(values);
    values.forEach((v, i) => {
      if (Number.isNaN(v)) assert.ok((out[i]! & 0x7f80) === 0x7f80 && (out[i]! & 0x7f) !== 0, "NaN stays NaN");
      else assert.equal(out[i], refF32ToBf16(v), `${v}`);
      assert.equal(f32ToBf16Bits(v), out[i]);
    });
  }), { numRuns: 300 });
});
