// ggml's legacy quantized types to float32: known blocks, quantize-then-dequantize within each
// format's step (property), and, where libggml-base is installed (@node-llama-cpp/linux-x64),
// bit-for-bit agreement with ggml's own dequantize_row_* and of the tests' reference quantizer
// (test/formats/ggml-quantize.ts) with ggml's quantize_row_*_ref.
import assert from "node:assert/strict";
import { join } from "node:path";
import fc from "fast-check";
import { test } from "../harness.ts";
import { GgmlType, UnsupportedGgmlTypeError, dequantizableTypes, dequantize, f16BitsToF32, f32ToF16Bits, ggmlTypeInfo } from "../../src/formats/index.ts";
import { defineSymbols, openLibrary } from "../../src/ffi/index.ts";
import { Llama } from "../../src/llama/index.ts";
import { llamaUnavailable } from "../llama/fixtures.ts";
import { quantize } from "./ggml-quantize.ts";

const QK = 32;
const name = (type: number) => ggmlTypeInfo(type)!.name;

/** One block of 32 floats: finite, magnitudes ≥ 1e-6 or zero (C's (int8_t) of an overflowed quotient would be undefined), sometimes all equal. */
const blockValues = fc.oneof(
  fc.array(fc.float({ min: -1e4, max: 1e4, noNaN: true }).map((v) => (Math.abs(v) < 1e-6 ? 0 : v)), { minLength: QK, maxLength: QK }),
  fc.float({ min: -4, max: 4, noNaN: true }).map((v) => new Array<number>(QK).fill(Math.abs(v) < 1e-6 ? 0 : v)),
);
const tensorValues = fc.array(blockValues, { minLength: 1, maxLength: 4 }).map((blocks) => Float32Array.from(blocks.flat()));

test("dequantize: hand-made blocks of every type give the values ggml's formulas give", () => {
  const d = f32ToF16Bits(0.5); // 0x3800
  const m = f32ToF16Bits(-1.25);
  const half = (bits: number) => [bits & 0xff, bits >> 8];
  const nibbles = Array.from({ length: 16 }, (_, j) => j | ((15 - j) << 4));
  const expectedNibbles = (offset: number, scale: number, add: number) => [...Array.from({ length: 16 }, (_, j) => (j - offset) * scale + add), ...Array.from({ length: 16 }, (_, j) => (15 - j - offset) * scale + add)];
  // qh = 0xffff0000: the fifth bit set for values 16..31.
  const qh = [0x00, 0x00, 0xff, 0xff];
  const cases: [number, number[], number[]][] = [
    [GgmlType.Q4_0, [...half(d), ...nibbles], expectedNibbles(8, 0.5, 0)],
    [GgmlType.Q4_1, [...half(d), ...half(m), ...nibbles], expectedNibbles(0, 0.5, -1.25)],
    // Values 16..31 have their fifth bit set: q = 16 + nibble, and Q5_0 subtracts 16.
    [GgmlType.Q5_0, [...half(d), ...qh, ...nibbles], [...Array.from({ length: 16 }, (_, j) => (j - 16) * 0.5), ...Array.from({ length: 16 }, (_, j) => (15 - j) * 0.5)]],
    [GgmlType.Q5_1, [...half(d), ...half(m), ...qh, ...nibbles], [...Array.from({ length: 16 }, (_, j) => j * 0.5 - 1.25), ...Array.from({ length: 16 }, (_, j) => (15 - j + 16) * 0.5 - 1.25)]],
    [GgmlType.Q8_0, [...half(d), ...Array.from({ length: 32 }, (_, j) => (j * 8 - 128) & 0xff)], Array.from({ length: 32 }, (_, j) => (j * 8 - 128) * 0.5)],
  ];
  for (const [type, bytes, expected] of cases) {
    assert.equal(bytes.length, ggmlTypeInfo(type)!.typeSize, name(type));
    assert.deepEqual([...dequantize(Uint8Array.from(bytes), type)], expected, name(type));
  }
  assert.deepEqual(dequantizableTypes.map(name).sort(), ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]);
});

/** How far a value may land from its original: the format's step for the block (clamped ends lose one step), plus fp16's rounding of d and m. */
function bound(type: number, block: Float32Array, bytes: Uint8Array, at: number): number {
  const amax = Math.max(...block.map(Math.abs));
  const spread = Math.max(...block) - Math.min(...block);
  const d16 = f16BitsToF32(bytes[at]! | (bytes[at + 1]! << 8));
  const shapes: Record<string, [d: number, levels: number, steps: number, minimum: boolean]> = {
    Q4_0: [amax / 8, 8, 1, false],
    Q5_0: [amax / 16, 16, 1, false],
    Q4_1: [spread / 15, 15, 0.5, true],
    Q5_1: [spread / 31, 31, 0.5, true],
    Q8_0: [amax / 127, 127, 0.5, false],
  };
  const [d, levels, step, minimum] = shapes[name(type)]!;
  const m16 = minimum ? Math.abs(f16BitsToF32(bytes[at + 2]! | (bytes[at + 3]! << 8)) - Math.min(...block)) : 0;
  return step * d + levels * Math.abs(d16 - d) + m16 + 1e-6 * amax;
}

test("dequantize(quantize(x)) stays within each block's quantization step, for every type (property)", () => {
  for (const type of dequantizableTypes) {
    const typeSize = ggmlTypeInfo(type)!.typeSize;
    fc.assert(fc.property(tensorValues, (values) => {
      const bytes = quantize(values, type);
      const back = dequantize(bytes, type);
      assert.equal(back.length, values.length);
      for (let b = 0; b < values.length / QK; b++) {
        const block = values.subarray(b * QK, (b + 1) * QK);
        const limit = bound(type, block, bytes, b * typeSize);
        for (let j = 0; j < QK; j++) assert.ok(Math.abs(back[b * QK + j]! - block[j]!) <= limit, `${name(type)} block ${b} value ${j}: ${block[j]} came back as ${back[b * QK + j]} (bound ${limit})`);
      }
    }), { numRuns: 200 });
  }
});

test("dequantize refuses types it does not know and data that is not whole blocks", () => {
  assert.throws(() => dequantize(new Uint8Array(144), GgmlType.Q4_K), (e) => e instanceof UnsupportedGgmlTypeError && e.message === "ggml type Q4_K: gpuffi dequantizes Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 only");
  assert.throws(() => dequantize(new Uint8Array(8), GgmlType.F32), UnsupportedGgmlTypeError);
  assert.throws(() => dequantize(new Uint8Array(35), GgmlType.Q8_0), /35 bytes are not a whole number of Q8_0 blocks \(34 bytes each\)/);
});

// ggml-quants.h: void quantize_row_q4_0_ref(const float * x, block_q4_0 * y, int64_t k); and
// void dequantize_row_q4_0(const block_q4_0 * x, float * y, int64_t k); likewise for the others.
const ggmlQuants = defineSymbols(Object.fromEntries(["q4_0", "q4_1", "q5_0", "q5_1", "q8_0"].flatMap((t) => [
  [`quantize_row_${t}_ref`, { parameters: ["buffer", "buffer", "i64"], result: "void" }],
  [`dequantize_row_${t}`, { parameters: ["buffer", "buffer", "i64"], result: "void" }],
])) as Record<string, { parameters: ["buffer", "buffer", "i64"]; result: "void" }>);

function ggml() {
  const dir = Llama.shared().dir;
  return openLibrary("libggml-base", dir === undefined ? "libggml-base.so" : join(dir, "libggml-base.so"), ggmlQuants).symbols as unknown as Record<string, (x: ArrayBufferView, y: ArrayBufferView, k: number) => void>;
}

test("the tests' reference quantizer writes ggml's bytes, and dequantize gives ggml's floats bit for bit (property)", () => {
  const lib = ggml();
  for (const type of dequantizableTypes) {
    const suffix = name(type).toLowerCase();
    const typeSize = ggmlTypeInfo(type)!.typeSize;
    fc.assert(fc.property(tensorValues, (values) => {
      const theirs = new Uint8Array((values.length / QK) * typeSize);
      lib[`quantize_row_${suffix}_ref`]!(values, theirs, values.length);
      assert.deepEqual(quantize(values, type), theirs);
    }), { numRuns: 200 });
    // Any bytes at all (scales of every exponent, every bit pattern of the quants) dequantize as ggml does them;
    // fp16 scales and minimums that are Inf or NaN are left out, as no quantizer writes them.
    const finiteHalf = (b: Uint8Array, at: number) => (b[at + 1]! & 0x7c) !== 0x7c;
    const hasMinimum = type === GgmlType.Q4_1 || type === GgmlType.Q5_1;
    const blocks = fc.array(fc.uint8Array({ minLength: typeSize, maxLength: typeSize }).filter((b) => finiteHalf(b, 0) && (!hasMinimum || finiteHalf(b, 2))), { minLength: 1, maxLength: 4 });
    fc.assert(fc.property(blocks, (parts) => {
      const bytes = new Uint8Array(parts.length * typeSize);
      parts.forEach((p, i) => bytes.set(p, i * typeSize));
      const theirs = new Float32Array(parts.length * QK);
      lib[`dequantize_row_${suffix}`]!(bytes, theirs, theirs.length);
      assert.deepEqual(new Uint32Array(dequantize(bytes, type).buffer), new Uint32Array(theirs.buffer), name(type));
    }), { numRuns: 300 });
  }
}, { skip: llamaUnavailable });
