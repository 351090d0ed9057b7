// Kernels on a real GPU (skips elsewhere, saying why): fp16 and bf16 elementwise kernels and a
// raw kernel on sub-views of pitched matrices (pitch ≠ width, nothing outside the view written)
// against JS references (bit-exact where the operation is a rounding, within one unit in the
// last place of a float64 reference where it is arithmetic), a template through lowered names,
// dynamic shared memory above 48 KiB, launches captured in a CUDA graph, and the disk cache
// hit by a second process (timed).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "../../harness.ts";
import { DisposedError } from "../../../src/ffi/index.ts";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from "../../../src/formats/half.ts";
import { CudaContext, CudaGraph, type ElementType, KernelModule, type Pitched2D, type Pitched2DView, PitchedPool, elementwise } from "../../../src/cuda/index.ts";
import { probeGpu } from "../gpu-probe.ts";
import { runtimeCommand } from "../nccl/rendezvous-helpers.ts";
import { benchSource, elementwiseOps, iotaNames, iotaSource, reverseSource, rowScaleReference, rowScaleSource } from "./kernel-sources.ts";
import { nvrtcSkipReason } from "./nvrtc-probe.ts";

const skip = probeGpu().reason ?? nvrtcSkipReason();
const options = { skip, timeout: 300_000 };
const [rows, cols] = [300, 257];

/** Random f32 values over many magnitudes (f16 overflow, subnormals and zeros included), no NaN. */
function randomFloats(n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => (i % 97 === 0 ? 0 : (Math.random() * 2 - 1) * 2 ** Math.floor(Math.random() * 44 - 26)));
}

/** Random 16-bit patterns of finite f16 or bf16 values. */
function randomHalfBits(n: number, toFloat: (bits: number) => number): Uint16Array {
  const bits = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    do bits[i] = Math.floor(Math.random() * 65536);
    while (!Number.isFinite(toFloat(bits[i]!)));
  }
  return bits;
}

/** A rows × cols view at an odd offset inside a larger pitched matrix poisoned with 0xff bytes. */
function viewIn(pool: PitchedPool, elementType: ElementType): { matrix: Pitched2D; view: Pitched2DView } {
  const matrix = pool.alloc(rows + 5, cols + 11, { elementType });
  matrix.memset2D(0xff);
  assert.ok(matrix.pitch > matrix.widthBytes, "expected a padded pitch");
  return { matrix, view: matrix.view(3, rows, 7, cols) };
}

/** Every byte of `matrix` outside `view` is still 0xff. */
function assertOutsideUntouched(matrix: Pitched2D, view: Pitched2DView, what: string): void {
  const all = matrix.copyToHost();
  const size = matrix.elementSize;
  const [row0, col0] = [view.byteOffset / matrix.pitch | 0, (view.byteOffset % matrix.pitch) / size];
  for (let r = 0; r < matrix.rows; r++) {
    for (let c = 0; c < matrix.cols; c++) {
      if (r >= row0 && r < row0 + rows && c >= col0 && c < col0 + cols) continue;
      for (let b = 0; b < size; b++) if (all[(r * matrix.cols + c) * size + b] !== 0xff) assert.fail(`${what}: byte ${b} of element (${r}, ${c}) outside the view was written`);
    }
  }
}

function assertBits(actual: ArrayLike<number>, expected: (i: number) => number, what: string): void {
  for (let i = 0; i < actual.length; i++) {
    if (actual[i] !== expected(i)) assert.fail(`${what}: element ${i} (row ${Math.floor(i / cols)}, col ${i % cols}) is 0x${actual[i]!.toString(16)}, expected 0x${expected(i).toString(16)}`);
  }
}

/** One unit in the last place of an f16 (10 mantissa bits) or bf16 (7) value near v. */
function ulp(v: number, mantissa: number, minExponent: number): number {
  return 2 ** Math.max(Math.floor(Math.log2(Math.abs(v) || 2 ** minExponent)), minExponent) / 2 ** mantissa;
}

test("elementwise conversions on pitched views are bit-exact: f32 → f16 and f32 → bf16 (round to nearest even), f16 → f32", () => {
  using context = CudaContext.create();
  using pool = new PitchedPool(context);
  const data = randomFloats(rows * cols);
  const source = viewIn(pool, "f32");
  using _source = source.matrix;
  source.view.copyFromHost(data);
  for (const [name, type] of [["toHalf", "f16"], ["toBfloat", "bf16"]] as const) {
    const op = elementwiseOps[name];
    using kernel = elementwise(context, op.expression, op.params);
    const out = viewIn(pool, type);
    using _out = out.matrix;
    kernel.run({ x: source.view, out: out.view });
    assertBits(out.view.copyToHost(new Uint16Array(rows * cols)), (i) => op.reference(data[i]!), name);
    assertOutsideUntouched(out.matrix, out.view, name);
  }
  const halves = randomHalfBits(rows * cols, f16BitsToF32);
  const input = viewIn(pool, "f16");
  using _input = input.matrix;
  input.view.copyFromHost(halves);
  const out = viewIn(pool, "f32");
  using _out = out.matrix;
  using widen = elementwise(context, elementwiseOps.halfToFloat.expression, elementwiseOps.halfToFloat.params);
  widen.run({ x: input.view, out: out.view });
  const floats = out.view.copyToHost(new Float32Array(rows * cols));
  for (let i = 0; i < floats.length; i++) if (!Object.is(floats[i], f16BitsToF32(halves[i]!))) assert.fail(`f16 → f32: element ${i} is ${floats[i]}, expected ${f16BitsToF32(halves[i]!)}`);
}, options);

test("scale-and-add in fp16 and bf16 on pitched views: within one unit in the last place of the float64 reference; masked fill in bf16 is exact", () => {
  using context = CudaContext.create();
  using pool = new PitchedPool(context);
  using stream = context.createStream({ nonBlocking: true });
  const a = -1.75;
  for (const [name, type, toFloat, mantissa, minExponent] of [["scaleAddHalf", "f16", f16BitsToF32, 10, -14], ["scaleAddBfloat", "bf16", bf16BitsToF32, 7, -126]] as const) {
    const op = elementwiseOps[name];
    using kernel = elementwise(context, op.expression, op.params);
    const xBits = randomHalfBits(rows * cols, toFloat).map((bits) => bits & 0x3fff); // |x| < 2: no overflow
    const yBits = randomHalfBits(rows * cols, toFloat).map((bits) => bits & 0x3fff);
    const x = viewIn(pool, type);
    const y = viewIn(pool, type);
    using _x = x.matrix;
    using _y = y.matrix;
    x.view.copyFromHost(xBits);
    y.view.copyFromHost(yBits);
    kernel.run({ x: x.view, y: y.view, a }, { stream });
    const result = y.view.copyToHost(new Uint16Array(rows * cols), { stream });
    let worst = 0;
    for (let i = 0; i < result.length; i++) {
      const reference = a * toFloat(xBits[i]!) + toFloat(yBits[i]!);
      const error = Math.abs(toFloat(result[i]!) - reference) / ulp(reference, mantissa, minExponent);
      worst = Math.max(worst, error);
      if (!(error <= 1)) assert.fail(`${name}: element ${i}: ${toFloat(result[i]!)} vs float64 ${reference} (${error.toFixed(2)} ulp)`);
    }
    console.log(`    ${name}: worst error ${worst.toFixed(3)} ulp of ${type}`);
    assertOutsideUntouched(y.matrix, y.view, name);
  }
  const op = elementwiseOps.maskedFill;
  using fill = elementwise(context, op.expression, op.params);
  const xBits = randomHalfBits(rows * cols, bf16BitsToF32);
  const maskBytes = Uint8Array.from({ length: rows * cols }, () => (Math.random() < 0.3 ? 1 : 0));
  const x = viewIn(pool, "bf16");
  const mask = viewIn(pool, "u8");
  using _x = x.matrix;
  using _mask = mask.matrix;
  x.view.copyFromHost(xBits);
  mask.view.copyFromHost(maskBytes);
  fill.run({ x: x.view, mask: mask.view, value: 2.5 });
  assertBits(x.view.copyToHost(new Uint16Array(rows * cols)), (i) => (maskBytes[i] ? f32ToBf16Bits(2.5) : xBits[i]!), "masked fill");
  assertOutsideUntouched(x.matrix, x.view, "masked fill");
}, options);

test("a raw kernel on pitched views (\"pitched\" passes pointer and pitch): fp16 in, bf16 out, scaled per row, bit-exact", () => {
  using context = CudaContext.create();
  using pool = new PitchedPool(context);
  using module = KernelModule.compile(context, rowScaleSource);
  using kernel = module.kernel("row_scale", ["pitched", "pitched", "ptr", "i32", "i32"]);
  const inBits = randomHalfBits(rows * cols, f16BitsToF32);
  const scales = Float32Array.from({ length: rows }, () => Math.fround(Math.random() * 8 - 4));
  const input = viewIn(pool, "f16");
  const output = viewIn(pool, "bf16");
  using _in = input.matrix;
  using _out = output.matrix;
  using scaleBuffer = context.alloc(scales.byteLength);
  input.view.copyFromHost(inBits);
  scaleBuffer.write(scales);
  kernel.launch({ grid: [Math.ceil(cols / 32), Math.ceil(rows / 8)], block: [32, 8] }, input.view, output.view, scaleBuffer, rows, cols);
  const out = output.view.copyToHost(new Uint16Array(rows * cols));
  assertBits(out, (i) => rowScaleReference(inBits[i]!, scales[Math.floor(i / cols)]!, f16BitsToF32), "row_scale");
  assertOutsideUntouched(output.matrix, output.view, "row_scale");
  const gone = context.alloc(16);
  gone.dispose();
  assert.throws(() => kernel.launch({ grid: 1, block: 1 }, input.view, output.view, gone, rows, cols), DisposedError);
}, options);

test("a template kernel through lowered names: iota<float>, iota<double>, iota<__half>", () => {
  using context = CudaContext.create();
  using module = KernelModule.compile(context, iotaSource, { nameExpressions: [...iotaNames] });
  const n = 5000;
  const step = 0.37;
  using buffer = context.alloc(n * 8);
  const expected = (i: number) => Math.fround(i * Math.fround(step));
  for (const [name, read] of [
    ["iota<float>", () => Array.from(buffer.read(new Float32Array(n)))],
    ["iota<double>", () => Array.from(buffer.read(new Float64Array(n)))],
    ["iota<__half>", () => Array.from(buffer.read(new Uint16Array(n)), f16BitsToF32)],
  ] as const) {
    using kernel = module.kernel(name, ["ptr", "f32", "i32"]);
    kernel.launch({ grid: Math.ceil(n / 128), block: 128 }, buffer, step, n);
    const values = read();
    for (let i = 0; i < n; i++) {
      const want = name === "iota<__half>" ? f16BitsToF32(f32ToF16Bits(expected(i))) : expected(i);
      if (values[i] !== want) assert.fail(`${name}: element ${i} is ${values[i]}, expected ${want}`);
    }
  }
  assert.match(module.compiled.loweredNames.get("iota<double>")!, /^_Z4iotaIdE/);
}, options);

test("dynamic shared memory above 48 KiB: a 64 KiB reversal opts the kernel in and runs", () => {
  using context = CudaContext.create();
  if (context.attribute("maxSharedMemoryPerBlockOptin") < 65536) return console.log("    (the device has less than 64 KiB of shared memory per block)");
  using module = KernelModule.compile(context, reverseSource);
  using kernel = module.kernel("reverse_shared", ["ptr", "i32"]);
  const n = 16384;
  const data = Float32Array.from({ length: n }, (_, i) => i);
  using buffer = context.alloc(n * 4);
  buffer.write(data);
  kernel.launch({ grid: 1, block: 256, sharedMem: n * 4 }, buffer, n);
  assert.deepEqual(buffer.read(new Float32Array(n)), data.reverse());
}, options);

test("launches captured in a CUDA graph: an elementwise kernel and a raw one, replayed three times in order", async () => {
  using context = CudaContext.create();
  using stream = context.createStream({ nonBlocking: true });
  using module = KernelModule.compile(context, benchSource);
  using scaleAdd = module.kernel("scale_add", ["ptr", "ptr", "f32", "u64"]);
  using addOne = elementwise(context, "x = x + a", { x: "f32[]", a: "f32" });
  const n = 1 << 20;
  using x = context.alloc(n * 4);
  using y = context.alloc(n * 4);
  x.fill(0);
  y.fill(0);
  // Once outside the capture, as CUDA's guide advises for a first call.
  addOne.run({ x, a: 0 }, { stream });
  scaleAdd.launch({ grid: n / 256, block: 256, stream }, x, y, 0, n);
  await stream.synchronized();
  using graph = CudaGraph.capture(stream, () => {
    addOne.run({ x, a: 1 }, { stream });
    scaleAdd.launch({ grid: n / 256, block: 256, stream }, x, y, 2, n);
  }, { uses: [x, y, module, addOne.module] });
  for (let i = 0; i < 3; i++) graph.launch();
  await stream.synchronized();
  assert.deepEqual(x.read(new Float32Array(n)), new Float32Array(n).fill(3));
  assert.deepEqual(y.read(new Float32Array(n)), new Float32Array(n).fill(12));
}, options);

test("the disk cache: a second process loads the kernel without compiling it (both timed)", () => {
  const dir = mkdtempSync(join(tmpdir(), "gpuffi-kernel-cache-"));
  try {
    const source = `extern "C" __global__ void tagged(int *x) { x[0] = ${Math.floor(Math.random() * 2 ** 31)}; }\n#include <cuda_fp16.h>\n`;
    const [command, args] = runtimeCommand(fileURLToPath(new URL("./cache-child.ts", import.meta.url)));
    const run = () => JSON.parse(execFileSync(command, [...args, source], { env: { ...process.env, GPUFFI_CACHE: dir }, encoding: "utf8" }).trim().split("\n").at(-1)!) as { cached: string; ms: number };
    const first = run();
    const second = run();
    console.log(`    first process: ${first.cached} in ${first.ms.toFixed(1)} ms; second process: ${second.cached} in ${second.ms.toFixed(1)} ms`);
    assert.equal(first.cached, "compiled");
    assert.equal(second.cached, "disk");
    assert.ok(second.ms < first.ms, "loading from the disk cache is faster than compiling");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, options);
