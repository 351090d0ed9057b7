// The checker that judges multi-GPU all-reduce results (nccl-reference.ts), tested where no GPU
// is needed: its float codecs against every bit pattern and against src/formats' fp16/bf16, its
// rounding, a simulated ring all-reduce (rounded to the dtype after every step, as NCCL's
// kernels are) that must pass for every dtype and op, and wrong results that must not.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NcclDataType, type NcclDataTypeName, NcclReduceOp, type NcclReduceOpName } from "../../../src/cuda/index.ts";
import { bf16BitsToF32, f16BitsToF32 } from "../../../src/formats/index.ts";
import { checkAllReduce, decodeElements, encodeElements, isFloat, randomElements, roundToFormat } from "./nccl-reference.ts";

const dtypes = Object.keys(NcclDataType) as NcclDataTypeName[];
const ops = Object.keys(NcclReduceOp) as NcclReduceOpName[];

function everyPattern(dtype: NcclDataTypeName): Uint8Array {
  const width = NcclDataType[dtype].bytes;
  const patterns = width === 1 ? Uint8Array.from({ length: 256 }, (_, i) => i) : Uint16Array.from({ length: 65536 }, (_, i) => i);
  return new Uint8Array(patterns.buffer);
}

test("float codecs: every finite fp16, bf16, e4m3 and e5m2 pattern round-trips; fp16/bf16 agree with src/formats", () => {
  const known: Partial<Record<NcclDataTypeName, (bits: number) => number>> = { float16: f16BitsToF32, bfloat16: bf16BitsToF32 };
  for (const dtype of ["float16", "bfloat16", "float8e4m3", "float8e5m2"] as const) {
    const bytes = everyPattern(dtype);
    const width = NcclDataType[dtype].bytes;
    const values = decodeElements(dtype, bytes) as number[];
    const again = encodeElements(dtype, values.map((value) => (Number.isFinite(value) ? value : 0)));
    values.forEach((value, bits) => {
      const reference = known[dtype]?.(bits);
      if (reference !== undefined) assert.ok(Object.is(value, reference) || (Number.isNaN(value) && Number.isNaN(reference)), `${dtype} ${bits.toString(16)}: ${value}`);
      if (!Number.isFinite(value)) return;
      assert.ok(Object.is(roundToFormat(dtype, value), value), `${dtype} ${bits.toString(16)} is its own rounding`);
      assert.deepEqual(again.subarray(bits * width, (bits + 1) * width), bytes.subarray(bits * width, (bits + 1) * width), `${dtype} ${bits.toString(16)} round-trips`);
    });
  }
  // The fp8 formats' corners (OCP FP8: e4m3 has no infinities and one NaN per sign).
  const e4m3 = decodeElements("float8e4m3", Uint8Array.of(0x7e, 0x7f, 0x01, 0x08)) as number[];
  assert.deepEqual(e4m3.slice(0, 1).concat(e4m3.slice(2)), [448, 2 ** -9, 2 ** -6]);
  assert.ok(Number.isNaN(e4m3[1]));
  assert.deepEqual(decodeElements("float8e5m2", Uint8Array.of(0x7b, 0x7c, 0x01)), [57344, Infinity, 2 ** -16]);
});

test("roundToFormat rounds to nearest, ties to even, overflows to infinity; float32 agrees with Math.fround", () => {
  assert.equal(roundToFormat("float16", 1 + 2 ** -11), 1);
  assert.equal(roundToFormat("float16", 1 + 3 * 2 ** -11), 1 + 2 ** -9);
  assert.equal(roundToFormat("float8e4m3", 17), 16);
  assert.equal(roundToFormat("float8e4m3", 19), 20);
  assert.equal(roundToFormat("float8e4m3", 2 ** -10), 0, "half the smallest subnormal ties to zero");
  assert.equal(roundToFormat("float8e5m2", -1e6), -Infinity);
  assert.equal(roundToFormat("bfloat16", 1 + 2 ** -8 + 2 ** -20), 1 + 2 ** -7);
  for (let i = 0; i < 10_000; i++) {
    const value = (Math.random() - 0.5) * 2 ** (Math.random() * 200 - 100);
    assert.equal(roundToFormat("float32", value), Math.fround(value));
  }
});

/** What NCCL's ring computes: rank after rank, rounded to the dtype at every step (avg: each value times 1/n first). */
function simulateRing(dtype: NcclDataTypeName, op: NcclReduceOpName, inputs: Uint8Array[]): Uint8Array {
  const ranks = inputs.map((input) => decodeElements(dtype, input));
  const n = inputs.length;
  if (!isFloat(dtype)) {
    const step: Record<NcclReduceOpName, (a: bigint, b: bigint) => bigint> = {
      sum: (a, b) => a + b,
      avg: (a, b) => a + b,
      prod: (a, b) => a * b,
      max: (a, b) => (a > b ? a : b),
      min: (a, b) => (a < b ? a : b),
    };
    // encodeElements wraps each partial result to the dtype, as the GPU does after every step.
    const wrap = (x: bigint) => decodeElements(dtype, encodeElements(dtype, [x]))[0] as bigint;
    return encodeElements(dtype, ranks[0]!.map((_, i) => {
      const total = ranks.map((values) => values[i] as bigint).reduce((a, b) => wrap(step[op](a, b)));
      return op === "avg" ? total / BigInt(n) : total;
    }));
  }
  const round = (x: number) => roundToFormat(dtype, x);
  const scale = round(1 / n);
  const step: Record<NcclReduceOpName, (a: number, b: number) => number> = {
    sum: (a, b) => a + b,
    avg: (a, b) => a + b,
    prod: (a, b) => a * b,
    max: Math.max,
    min: Math.min,
  };
  return encodeElements(dtype, ranks[0]!.map((_, i) => {
    const values = ranks.map((v) => (op === "avg" ? round((v[i] as number) * scale) : (v[i] as number)));
    return values.reduce((a, b) => round(step[op](a, b)));
  }));
}

const inputsFor = (dtype: NcclDataTypeName, op: NcclReduceOpName, n: number, count: number) =>
  Array.from({ length: n }, () => randomElements(dtype, count, op, n));

test("a simulated ring all-reduce passes the check for every dtype and op, with 2, 3 and 8 ranks", () => {
  for (const n of [2, 3, 8]) {
    for (const dtype of dtypes) {
      for (const op of ops) {
        const inputs = inputsFor(dtype, op, n, 2000);
        const output = simulateRing(dtype, op, inputs);
        assert.equal(checkAllReduce(dtype, op, inputs, output), undefined, `${dtype} ${op} over ${n} ranks`);
        if (isFloat(dtype)) assert.ok((decodeElements(dtype, output) as number[]).every(Number.isFinite), `${dtype} ${op}: the test data stays finite`);
      }
    }
  }
});

test("the check fails a missing rank, an undivided or signed-as-unsigned average, one wrong element, max for min", () => {
  const fails = (dtype: NcclDataTypeName, op: NcclReduceOpName, inputs: Uint8Array[], output: Uint8Array, pattern: RegExp) => {
    const verdict = checkAllReduce(dtype, op, inputs, output);
    assert.match(verdict ?? "(passed)", pattern, `${dtype} ${op}`);
  };
  for (const dtype of ["float32", "float64", "bfloat16", "float16"] as const) {
    const inputs = inputsFor(dtype, "sum", 8, 4000);
    fails(dtype, "sum", inputs, simulateRing(dtype, "sum", inputs.slice(1)), /element|RMS error/);
    fails(dtype, "avg", inputs, simulateRing(dtype, "sum", inputs), /element \d+: got/);
  }
  const ints = inputsFor("int32", "sum", 4, 1000);
  const wrong = simulateRing("int32", "sum", ints);
  new DataView(wrong.buffer).setInt32(4 * 617, new DataView(wrong.buffer).getInt32(4 * 617, true) + 1, true);
  fails("int32", "sum", ints, wrong, /^element 617: got/);
  // uint8 bytes averaged as int8 differ wherever the sum's top bit is set.
  const bytes = inputsFor("uint8", "avg", 2, 1000);
  fails("uint8", "avg", bytes, simulateRing("int8", "avg", bytes), /element \d+: got/);
  const halves = inputsFor("float16", "min", 3, 1000);
  fails("float16", "min", halves, simulateRing("float16", "max", halves), /element 0: got/);
});
