// The cuBLAS layer without a GPU: the fake libcudart's host memory and a fake libcublas that
// runs the BLAS reference GEMM on it (cublas-fake.ts). Checks the row-major mapping, every
// validation error (before any C call), Matrix descriptions and copies, handle state and
// disposal order, and the numerics of every mode, layout, transpose, pitch and batch form.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { DisposedError } from "../../../src/ffi/index.ts";
import {
  CublasError,
  CublasHandle,
  CudaArgumentError,
  CudaCompatibilityError,
  CudaStateError,
  Matrix,
  type MatrixLayout,
  PitchedPool,
  checkCublasRuntime,
  cublasSpecFor,
  planGemm,
} from "../../../src/cuda/index.ts";
import { fakeCublasSetup as setup } from "./cublas-fake.ts";
import { randomMatrix, relativeError, sampleRows } from "./cublas-reference.ts";
import { allocMatrix, assertOutsideUntouched, callGemm, checkGemm, checkPointerBatched, checkStridedBatched, modeTypes, modes, tolerance } from "./cublas-scenarios.ts";

const gemmCalls = (names: readonly { name: string }[]) => names.filter((c) => /gemm/i.test(c.name)).length;

test("row-major mapping: an operand whose layout differs from C's is transposed; a row-major C swaps the operands", () => {
  using env = setup();
  const buffer = env.context.alloc(4096);
  const m = (rows: number, cols: number, layout: MatrixLayout) => Matrix.on(buffer, { rows, cols, layout });
  const layouts: MatrixLayout[] = ["row", "col"];
  for (const la of layouts) for (const lb of layouts) for (const lc of layouts) {
    const a = m(3, 5, la);
    const b = m(5, 7, lb);
    const c = m(3, 7, lc);
    const plan = planGemm(a, b, c, "test");
    const label = `A ${la}, B ${lb}, C ${lc}`;
    assert.equal(plan.k, 5, label);
    if (lc === "col") {
      assert.deepEqual([plan.m, plan.n, plan.swapped, plan.first, plan.second], [3, 7, false, a, b], label);
      assert.deepEqual([plan.transa, plan.transb], [la === "col" ? 0 : 1, lb === "col" ? 0 : 1], label);
    } else {
      assert.deepEqual([plan.m, plan.n, plan.swapped, plan.first, plan.second], [7, 3, true, b, a], label);
      assert.deepEqual([plan.transa, plan.transb], [lb === "row" ? 0 : 1, la === "row" ? 0 : 1], label);
    }
  }
});

test("shape mismatches are errors that name the mismatch, before any cuBLAS call", () => {
  using env = setup();
  using handle = CublasHandle.create(env.context, { api: env.cublas.api });
  const buffer = env.context.alloc(1 << 16);
  const m = (rows: number, cols: number) => Matrix.on(buffer, { rows, cols });
  assert.throws(() => handle.gemm(m(3, 4), m(5, 6), m(3, 6)), (e: Error) => e instanceof CudaArgumentError && /A's columns \(4\) must equal B's rows \(5\)/.test(e.message));
  assert.throws(() => handle.gemm(m(3, 4), m(4, 6), m(2, 6)), /A has 3 rows but C has 2/);
  assert.throws(() => handle.gemm(m(3, 4), m(4, 6), m(3, 5)), /B has 6 columns but C has 5/);
  assert.throws(() => handle.gemm(m(3, 4).t(), m(4, 6), m(3, 6)), /A is 4×3 and B is 4×6/);
  assert.throws(() => handle.gemm({} as Matrix, m(4, 6), m(3, 6)), /A must be a Matrix/);
  assert.equal(gemmCalls(env.cublas.calls), 0);
});

test("element types: gemm is fp32 only; gemmEx needs one operand type and an output of that type or f32", () => {
  using env = setup();
  using handle = CublasHandle.create(env.context, { api: env.cublas.api });
  const buffer = env.context.alloc(1 << 16);
  const m = (dtype: "f32" | "f16" | "bf16") => Matrix.on(buffer, { rows: 4, cols: 4, dtype });
  assert.throws(() => handle.gemm(m("f16"), m("f16"), m("f32")), /A is f16; gemm is the fp32 GEMM .*use gemmEx/);
  assert.throws(() => handle.gemmEx(m("f16"), m("bf16"), m("f32")), /A is f16 but B is bf16/);
  assert.throws(() => handle.gemmEx(m("f16"), m("f16"), m("bf16")), /C is bf16 but A and B are f16; the output must be f16 or f32/);
  assert.throws(() => handle.gemmEx(m("f32"), m("f32"), m("f16")), /C is f16 but A and B are f32/);
  assert.equal(gemmCalls(env.cublas.calls), 0);
});

test("Matrix.on checks ld, alignment, bounds, dtype and layout; view and t() describe the same bytes", () => {
  using env = setup();
  const buffer = env.context.alloc(1000);
  assert.throws(() => Matrix.on(buffer, { rows: 4, cols: 10, ld: 9 }), /ld must be a whole number from 10/);
  assert.throws(() => Matrix.on(buffer, { rows: 4, cols: 10, layout: "col", ld: 3 }), /ld must be a whole number from 4/);
  assert.throws(() => Matrix.on(buffer, { rows: 4, cols: 4, dtype: "f16", byteOffset: 3 }), /byteOffset must be a whole multiple of the f16 element size/);
  assert.throws(() => Matrix.on(buffer, { rows: 10, cols: 30 }), /10×30 f32 row-major \(ld 30\) at byte 0 ends at byte 1200, past the end of its 1000-byte buffer/);
  assert.throws(() => Matrix.on(buffer, { rows: 2, cols: 2, dtype: "f64" as never }), /dtype must be one of f32, f16, bf16/);
  assert.throws(() => Matrix.on(buffer, { rows: 2, cols: 2, layout: "diagonal" as never }), /layout must be "row" or "col"/);
  assert.throws(() => Matrix.on(buffer, { rows: 2 ** 31, cols: 1 }), /rows must be a whole number from 0 to 2147483647/);
  const whole = Matrix.on(buffer, { rows: 10, cols: 20, ld: 24 });
  assert.equal(whole.spanBytes, (9 * 24 + 20) * 4);
  const view = whole.view(2, 3, 5, 4);
  assert.deepEqual([view.byteOffset, view.rows, view.cols, view.ld, view.layout], [(2 * 24 + 5) * 4, 3, 4, 24, "row"]);
  const t = view.t();
  assert.deepEqual([t.byteOffset, t.rows, t.cols, t.ld, t.layout], [view.byteOffset, 4, 3, 24, "col"]);
  assert.deepEqual([t.view(1, 2, 0, 1).byteOffset], [view.byteOffset + 4]);
  assert.throws(() => whole.view(8, 3, 0, 1), /rows \[8, 11\) are out of range for 10 rows/);
  buffer.dispose();
  assert.throws(() => whole.ptr, DisposedError);
});

test("Matrix upload/download round-trips f32, f16 and bf16 in both layouts with padded ld", () => {
  using env = setup();
  for (const dtype of ["f32", "f16", "bf16"] as const) {
    for (const layout of ["row", "col"] as const) {
      const stored = allocMatrix(env.context, 5, 7, dtype, layout, 3, 2);
      const data = randomMatrix(5, 7, dtype);
      stored.matrix.upload(data);
      assert.deepEqual(stored.matrix.download(), data, `${dtype} ${layout}`);
      assert.deepEqual(stored.matrix.t().download(), Float32Array.from({ length: 35 }, (_, i) => data[(i % 5) * 7 + Math.floor(i / 5)]!), `${dtype} ${layout} transposed`);
      stored.buffer.dispose();
    }
  }
  using owned = Matrix.alloc(env.context, 3, 3, { dtype: "bf16" });
  assert.throws(() => owned.upload(new Float32Array(8)), /takes 9 elements, the array has 8/);
  assert.throws(() => Matrix.alloc(env.context, 2, 2).upload(new Uint16Array(4)), /the matrix is f32; pass a Float32Array/);
  const bits = new Uint16Array(9).fill(0x3f80);
  owned.upload(bits);
  assert.deepEqual(owned.download(), new Float32Array(9).fill(1));
});

test("numerics on the reference fake: every mode, layout, transpose and padded ld, beta ≠ 0, size 1", () => {
  using env = setup();
  using handle = CublasHandle.create(env.context, { api: env.cublas.api });
  for (const mode of modes) {
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      for (const layoutC of ["row", "col"] as const) {
        const layoutA = transB ? "col" : "row";
        checkGemm(env.context, handle, { m: 17, n: 9, k: 5, mode, transA, transB, layoutA, layoutB: "row", layoutC, pad: 3 });
      }
    }
    checkGemm(env.context, handle, { m: 1, n: 1, k: 1, mode });
    checkGemm(env.context, handle, { m: 6, n: 4, k: 33, mode, alpha: 0.5, beta: -2, layoutC: "col" });
  }
});

test("tf32: the math mode reaches cublasSgemm and gemmEx's compute type, and changes fp32 results", () => {
  using env = setup();
  using handle = CublasHandle.create(env.context, { api: env.cublas.api, mathMode: "tf32" });
  assert.equal(handle.mathMode, "tf32");
  const f32 = checkGemm(env.context, handle, { m: 16, n: 16, k: 64, mode: "f32" });
  const tf32 = checkGemm(env.context, handle, { m: 16, n: 16, k: 64, mode: "tf32" });
  assert.ok(tf32 > 10 * f32, `tf32 error ${tf32} should be well above fp32's ${f32}`);
  const buffer = env.context.alloc(1 << 12);
  const m = Matrix.on(buffer, { rows: 4, cols: 4 });
  handle.gemmEx(m, m.view(0, 4, 0, 4), Matrix.on(buffer, { rows: 4, cols: 4, byteOffset: 1024 }));
  const last = env.cublas.calls.filter((c) => c.name === "cublasGemmEx").at(-1)!;
  assert.equal(last.args[17], 77, "CUBLAS_COMPUTE_32F_FAST_TF32");
  handle.setMathMode("default");
  handle.gemmEx(m, m, Matrix.on(buffer, { rows: 4, cols: 4, byteOffset: 1024 }));
  assert.equal(env.cublas.calls.filter((c) => c.name === "cublasGemmEx").at(-1)!.args[17], 68, "CUBLAS_COMPUTE_32F");
  assert.throws(() => handle.setMathMode("fast" as never), /mode must be "default" or "tf32"/);
});

test("strided batches: packed with gaps, shared B (stride 0), row- and column-major C; bounds and strideC checks", () => {
  using env = setup();
  using handle = CublasHandle.create(env.context, { api: env.cublas.api });
  for (const mode of modes) checkStridedBatched(env.context, handle, mode, 7, 5, 3, 4);
  checkStridedBatched(env.context, handle, "f16", 6, 3, 4, 3, { shareB: true, layoutC: "col" });
  const buffer = env.context.alloc(400);
  const m = Matrix.on(buffer, { rows: 3, cols: 3 });
  const before = gemmCalls(env.cublas.calls);
  assert.throws(() => handle.gemmStridedBatched(m, m, m, { batchCount: 20 }), /A's batch entry 19 \(stride 9 elements\) ends at byte 720, past the end of its 400-byte buffer/);
  assert.throws(() => handle.gemmStridedBatched(m, m, m, { batchCount: 2, strideA: 0, strideB: 0, strideC: 0 }), /strideC is 0/);
  assert.throws(() => handle.gemmStridedBatched(m, m, m, { batchCount: -1 }), /batchCount must be a whole number/);
  assert.throws(() => handle.gemmStridedBatched(m, m, m, { batchCount: 2, strideA: 1.5 }), /strideA must be a whole number/);
  assert.equal(gemmCalls(env.cublas.calls), before);
});

test("pointer-array batches: scattered sub-views; shapes, ld and counts must agree", () => {
  using env = setup();
  using stream = env.context.createStream();
  using handle = CublasHandle.create(env.context, { api: env.cublas.api, stream });
  for (const mode of modes) checkPointerBatched(env.context, handle, mode, 5, 4, 6, 3);
  handle.setStream(undefined);
  checkPointerBatched(env.context, handle, "bf16", 3, 3, 3, 2);
  const buffer = env.context.alloc(1 << 12);
  const m = (ld: number) => Matrix.on(buffer, { rows: 3, cols: 3, ld });
  assert.throws(() => handle.gemmBatched([m(3), m(4)], [m(3), m(3)], [m(3), m(3)]), /A\[1\] is 3×3 f32 row-major \(ld 4\), but A\[0\] is 3×3 f32 row-major \(ld 3\)/);
  assert.throws(() => handle.gemmBatched([m(3)], [m(3), m(3)], [m(3)]), /1 A, 2 B and 1 C matrices/);
  handle.gemmBatched([], [], []);
});

test("handle: stream, workspace re-applied after setStream, pointer mode scalars, errors carry the status name", () => {
  using env = setup();
  const stream = env.context.createStream();
  using handle = CublasHandle.create(env.context, { api: env.cublas.api, stream, workspace: 1 << 20 });
  const state = env.cublas.handles.get(handle.handle)!;
  assert.equal(state.stream, stream.handle);
  assert.equal(state.workspaceBytes, 1 << 20);
  assert.equal(handle.versionNumber, 130100);
  const other = env.context.createStream();
  handle.setStream(other);
  assert.equal(state.workspaceBytes, 1 << 20, "the workspace survives setStream");
  handle.setWorkspace(undefined);
  assert.equal(state.workspaceBytes, 0);
  assert.equal(handle.workspaceBytes, undefined);
  const buffer = env.context.alloc(1 << 12);
  assert.throws(() => handle.setWorkspace(-5), /positive whole number of bytes/);
  const a = Matrix.on(buffer, { rows: 2, cols: 2 });
  const c = Matrix.on(buffer, { rows: 2, cols: 2, byteOffset: 512 });
  a.upload(new Float32Array([1, 2, 3, 4]));
  handle.setPointerMode("device");
  assert.throws(() => handle.gemm(a, a, c, { alpha: 2 }), /in pointer mode "device", alpha must be CUDA memory holding one f32/);
  const scalars = env.context.alloc(8);
  scalars.write(new Float32Array([2, 0]));
  const beta = Matrix.on(scalars, { rows: 1, cols: 1, byteOffset: 4 }).memory;
  handle.gemm(a, a, c, { alpha: scalars, beta });
  assert.deepEqual(c.download(), new Float32Array([14, 20, 30, 44]));
  handle.setPointerMode("host");
  env.cublas.failNext.set("cublasSgemm_v2", 15);
  assert.throws(() => handle.gemm(a, a, c), (e: Error) => e instanceof CublasError && e.statusName === "CUBLAS_STATUS_NOT_SUPPORTED" && /cublasSgemm_v2 failed.*C \(2×2 f32 row-major \(ld 2\)\) = A/.test(e.message));
  stream.dispose();
  handle.setStream(other);
  other.dispose();
  assert.throws(() => handle.gemm(a, a, c), (e: Error) => e instanceof CudaStateError && /stream was disposed/.test(e.message));
});

test("disposal: the handle goes before its context's streams and memory; a disposed handle throws", () => {
  const env = setup();
  const stream = env.context.createStream();
  const handle = CublasHandle.create(env.context, { api: env.cublas.api, stream, workspace: 4096 });
  env.context.dispose();
  const log = env.cuda.calls;
  const destroyed = log.indexOf("cublasDestroy_v2");
  assert.ok(destroyed >= 0 && destroyed < log.indexOf("cudaStreamDestroy"), log.join(" "));
  assert.ok(destroyed < log.lastIndexOf("cudaFree"), "the owned workspace is freed after the handle");
  assert.equal(env.cublas.handles.size, 0);
  assert.equal(env.cuda.live.size, 0);
  assert.ok(handle.disposed);
  assert.throws(() => handle.setMathMode("tf32"), DisposedError);
  void stream;
});

test("creation: version checked against the runtime, libcublas.so.<major> tried first, failures typed", () => {
  {
    using env = setup({ version: [12, 9, 1] });
    assert.throws(() => CublasHandle.create(env.context, { api: env.cublas.api }), (e: Error) => e instanceof CudaCompatibilityError && /libcublas 12\.9\.1 .* belongs to CUDA 12, but the loaded libcudart is CUDA 13\.0/.test(e.message));
    assert.equal(env.cublas.calls.filter((c) => c.name === "cublasCreate_v2").length, 0);
  }
  {
    using env = setup();
    env.cublas.failNext.set("cublasCreate_v2", 1);
    assert.throws(() => CublasHandle.create(env.context, { api: env.cublas.api }), (e: Error) => e instanceof CublasError && e.code === "ERR_CUBLAS_1" && /CUBLAS_STATUS_NOT_INITIALIZED/.test(e.message));
    assert.throws(() => CublasHandle.create(env.context, { api: env.cublas.api, mathMode: "tf16" as never }), /mathMode must be "default" or "tf32"/);
    env.cublas.failNext.set("cublasSetMathMode", 7);
    assert.throws(() => CublasHandle.create(env.context, { api: env.cublas.api, mathMode: "tf32" }), /cublasSetMathMode failed/);
    assert.equal(env.cublas.handles.size, 0, "a handle whose setup failed is destroyed");
  }
  assert.deepEqual(cublasSpecFor(12).sonames, ["libcublas.so.12", "libcublas.so.13", "libcublas.so"]);
  assert.deepEqual(cublasSpecFor(13).sonames, ["libcublas.so.13", "libcublas.so.12", "libcublas.so"]);
  assert.doesNotThrow(() => checkCublasRuntime({ major: 12, minor: 4, patch: 5 }, "x", { major: 12, minor: 8 }, "y"));
});

test("pitched sub-views (Matrix.fromPitched): ld from the pitch, numerics, nothing outside C written", () => {
  using env = setup();
  using pitched = new PitchedPool(env.context);
  using handle = CublasHandle.create(env.context, { api: env.cublas.api });
  for (const mode of modes) {
    const { input, output } = modeTypes(mode);
    using bigA = pitched.alloc(20, 30, { elementType: input });
    using bigB = pitched.alloc(30, 20, { elementType: input });
    using bigC = pitched.alloc(20, 20, { elementType: output });
    bigC.fill(0xff);
    const [m, k, n] = [13, 17, 9];
    const a = Matrix.fromPitched(bigA.view(3, m, 1, k));
    const b = Matrix.fromPitched(bigB.view(1, k, 7, n));
    const c = Matrix.fromPitched(bigC.view(5, m, 2, n));
    assert.equal(a.ld, bigA.pitch / a.elementSize);
    assert.equal(c.byteOffset, 5 * bigC.pitch + 2 * c.elementSize);
    const hostA = randomMatrix(m, k, input);
    const hostB = randomMatrix(k, n, input);
    a.upload(hostA);
    b.upload(hostB);
    handle.setMathMode(mode === "tf32" ? "tf32" : "default");
    callGemm(handle, a, b, c);
    const error = relativeError(c.download(), hostA, hostB, m, n, k, sampleRows(m, n, k));
    assert.ok(error < tolerance[mode], `${mode}: relative error ${error}`);
    assertOutsideUntouched(bigC, [c], mode);
  }
});
