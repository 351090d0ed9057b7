// GEMM checks shared by the CPU suite (fake libcublas) and the GPU suite (real cuBLAS): each
// builds fresh random operands, stores them in the asked layout with padded leading dimensions,
// poisons the whole output buffer (0xFF bytes are NaN in f32, f16 and bf16), runs the GEMM and
// then checks that every element of C was written, no byte outside C was, and the relative
// Frobenius error against a float64 reference is within the tolerance of the mode.
import assert from "node:assert/strict";
import { type CublasHandle, type CudaContext, CudaGraph, type DeviceBuffer, type GemmOptions, Matrix, type MatrixDtype, type MatrixLayout } from "../../../src/cuda/index.ts";
import { firstNonFinite, randomMatrix, relativeError, roundTo, sampleRows, transpose } from "./cublas-reference.ts";

export type Mode = "f32" | "tf32" | "f16" | "bf16" | "f16→f32" | "bf16→f32";

export const modes: readonly Mode[] = ["f32", "tf32", "f16", "bf16", "f16→f32", "bf16→f32"];

/** Relative Frobenius tolerance per mode (tf32 lands near 3e-4). */
export const tolerance: Readonly<Record<Mode, number>> = { f32: 1e-5, tf32: 1e-3, f16: 1e-2, bf16: 1e-2, "f16→f32": 1e-2, "bf16→f32": 1e-2 };

export function modeTypes(mode: Mode): { input: MatrixDtype; output: MatrixDtype } {
  if (mode === "f32" || mode === "tf32") return { input: "f32", output: "f32" };
  if (mode === "f16→f32") return { input: "f16", output: "f32" };
  if (mode === "bf16→f32") return { input: "bf16", output: "f32" };
  return { input: mode, output: mode };
}

export interface Stored {
  readonly buffer: DeviceBuffer;
  readonly matrix: Matrix;
}

/** A rows × cols matrix in a fresh poisoned buffer, ld = inner + pad, element (0, 0) `offset` elements in. */
export function allocMatrix(context: CudaContext, rows: number, cols: number, dtype: MatrixDtype, layout: MatrixLayout, pad = 0, offset = 0): Stored {
  const inner = layout === "row" ? cols : rows;
  const lines = layout === "row" ? rows : cols;
  const ld = Math.max(1, inner + pad);
  const size = dtype === "f32" ? 4 : 2;
  const buffer = context.alloc(Math.max(1, (offset + lines * ld) * size));
  buffer.fill(0xff);
  return { buffer, matrix: Matrix.on(buffer, { rows, cols, dtype, layout, ld, byteOffset: offset * size }) };
}

/** Asserts that every byte of the buffer outside `matrix`'s elements is still 0xFF. */
export function assertOutsideUntouched(buffer: DeviceBuffer, matrices: readonly Matrix[], what: string): void {
  const bytes = buffer.read();
  const inside = new Uint8Array(bytes.length);
  for (const m of matrices) {
    const size = m.elementSize;
    for (let line = 0; line < m.lines; line++) inside.fill(1, m.byteOffset + line * m.ld * size, m.byteOffset + (line * m.ld + m.lineLength) * size);
  }
  for (let i = 0; i < bytes.length; i++) {
    if (!inside[i] && bytes[i] !== 0xff) assert.fail(`${what}: byte ${i} outside the output matrix was written (0x${bytes[i]!.toString(16)})`);
  }
}

export interface GemmCase {
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly mode: Mode;
  /** Pass A as the transpose of a stored k×m matrix (likewise B). */
  readonly transA?: boolean;
  readonly transB?: boolean;
  /** Layout of the stored A, B and C (default row). */
  readonly layoutA?: MatrixLayout;
  readonly layoutB?: MatrixLayout;
  readonly layoutC?: MatrixLayout;
  /** Extra elements per leading dimension (pitch ≠ width). */
  readonly pad?: number;
  readonly alpha?: number;
  readonly beta?: number;
  /** "call" (default): gemm for f32/tf32, gemmEx otherwise; "prepared": prepareGemm, then one run. */
  readonly via?: "call" | "prepared";
}

export function describeCase(c: GemmCase): string {
  return `${c.mode} ${c.m}×${c.k}·${c.k}×${c.n}${c.transA ? " Aᵀ" : ""}${c.transB ? " Bᵀ" : ""} A:${c.layoutA ?? "row"} B:${c.layoutB ?? "row"} C:${c.layoutC ?? "row"}${c.pad ? ` pad ${c.pad}` : ""}${c.beta ? ` β=${c.beta}` : ""}${c.via === "prepared" ? " prepared" : ""}`;
}

/** An operand whose logical value is `logical` (rows × cols row-major), stored transposed if asked. */
function storeOperand(context: CudaContext, logical: Float32Array, rows: number, cols: number, dtype: MatrixDtype, layout: MatrixLayout, transposed: boolean, pad: number): Stored & { operand: Matrix } {
  if (!transposed) {
    const stored = allocMatrix(context, rows, cols, dtype, layout, pad);
    stored.matrix.upload(logical);
    return { ...stored, operand: stored.matrix };
  }
  const stored = allocMatrix(context, cols, rows, dtype, layout, pad);
  stored.matrix.upload(transpose(logical, rows, cols));
  return { ...stored, operand: stored.matrix.t() };
}

export interface Product {
  /** Row-major A (m×k) and B (k×n) as stored (already rounded to their type). */
  readonly a: Float32Array;
  readonly b: Float32Array;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  readonly mode: Mode;
  readonly alpha?: number;
  readonly beta?: number;
  /** C before the GEMM (row-major), when beta ≠ 0. */
  readonly c0?: Float32Array | undefined;
}

/** Asserts that `out` (C, row-major) has every element written and is alpha·A·B + beta·C0 within the mode's tolerance; returns the relative error. */
export function assertProduct(out: Float32Array, p: Product, what: string): number {
  const bad = firstNonFinite(out);
  assert.equal(bad, -1, `${what}: C element ${bad} (row ${Math.floor(bad / p.n)}, column ${bad % p.n}) was not written`);
  const error = relativeError(out, p.a, p.b, p.m, p.n, p.k, sampleRows(p.m, p.n, p.k), p.alpha ?? 1, p.beta ?? 0, p.c0);
  assert.ok(error < tolerance[p.mode], `${what}: relative error ${error.toExponential(2)} ≥ ${tolerance[p.mode]}`);
  return error;
}

/** The GEMM call for the operands' type: gemm (cublasSgemm; tf32 by the math mode) for f32, gemmEx for f16/bf16. */
export function callGemm(handle: CublasHandle, a: Matrix, b: Matrix, c: Matrix, options?: GemmOptions): void {
  if (a.dtype === "f32") handle.gemm(a, b, c, options);
  else handle.gemmEx(a, b, c, options);
}

/** Runs one GEMM case through `handle` and returns its relative error (after asserting everything). */
export function checkGemm(context: CudaContext, handle: CublasHandle, c: GemmCase): number {
  const what = describeCase(c);
  const { input, output } = modeTypes(c.mode);
  const pad = c.pad ?? 0;
  const a = randomMatrix(c.m, c.k, input);
  const b = randomMatrix(c.k, c.n, input);
  const sa = storeOperand(context, a, c.m, c.k, input, c.layoutA ?? "row", c.transA ?? false, pad);
  const sb = storeOperand(context, b, c.k, c.n, input, c.layoutB ?? "row", c.transB ?? false, pad);
  const sc = allocMatrix(context, c.m, c.n, output, c.layoutC ?? "row", pad);
  try {
    const beta = c.beta ?? 0;
    const c0 = beta === 0 ? undefined : randomMatrix(c.m, c.n, output);
    if (c0) sc.matrix.upload(c0);
    handle.setMathMode(c.mode === "tf32" ? "tf32" : "default");
    const options = { alpha: c.alpha ?? 1, beta };
    if (c.via === "prepared") {
      using gemm = handle.prepareGemm(sa.operand, sb.operand, sc.matrix, options);
      gemm.run();
    } else callGemm(handle, sa.operand, sb.operand, sc.matrix, options);
    const error = assertProduct(sc.matrix.download({ stream: handle.stream }), { a, b, m: c.m, n: c.n, k: c.k, mode: c.mode, alpha: options.alpha, beta, c0: c0 && roundTo(output, c0) }, what);
    assertOutsideUntouched(sc.buffer, [sc.matrix], what);
    return error;
  } finally {
    for (const s of [sa, sb, sc]) s.buffer.dispose();
  }
}

/**
 * Strided batch: `batch` products packed with a gap of `gap` poisoned elements between entries
 * (B shared by every entry when `shareB`), each checked against its own reference.
 */
export function checkStridedBatched(context: CudaContext, handle: CublasHandle, mode: Mode, m: number, n: number, k: number, batch: number, options: { gap?: number; shareB?: boolean; layoutC?: MatrixLayout } = {}): void {
  const what = `strided batch of ${batch} ${mode} ${m}×${k}·${k}×${n}`;
  const { input, output } = modeTypes(mode);
  const gap = options.gap ?? 3;
  const layoutC = options.layoutC ?? "row";
  const as = Array.from({ length: batch }, () => randomMatrix(m, k, input));
  const bs = options.shareB ? [randomMatrix(k, n, input)] : Array.from({ length: batch }, () => randomMatrix(k, n, input));
  const strideA = m * k + gap;
  const strideB = options.shareB ? 0 : k * n + gap;
  const strideC = m * n + gap;
  const size = (t: MatrixDtype) => (t === "f32" ? 4 : 2);
  const bufA = context.alloc(strideA * batch * size(input));
  const bufB = context.alloc(Math.max(strideB * batch, k * n) * size(input));
  const bufC = context.alloc(strideC * batch * size(output));
  try {
    bufC.fill(0xff);
    const entry = (buffer: DeviceBuffer, rows: number, cols: number, dtype: MatrixDtype, stride: number, i: number, layout: MatrixLayout = "row") =>
      Matrix.on(buffer, { rows, cols, dtype, layout, byteOffset: i * stride * size(dtype) });
    as.forEach((a, i) => entry(bufA, m, k, input, strideA, i).upload(a));
    bs.forEach((b, i) => entry(bufB, k, n, input, strideB, i).upload(b));
    handle.setMathMode(mode === "tf32" ? "tf32" : "default");
    handle.gemmStridedBatched(entry(bufA, m, k, input, strideA, 0), entry(bufB, k, n, input, strideB, 0), entry(bufC, m, n, output, strideC, 0, layoutC), { batchCount: batch, strideA, strideB, strideC });
    const cs = Array.from({ length: batch }, (_, i) => entry(bufC, m, n, output, strideC, i, layoutC));
    cs.forEach((cMatrix, i) => assertProduct(cMatrix.download({ stream: handle.stream }), { a: as[i]!, b: bs[options.shareB ? 0 : i]!, m, n, k, mode }, `${what}, entry ${i}`));
    assertOutsideUntouched(bufC, cs, what);
  } finally {
    for (const b of [bufA, bufB, bufC]) b.dispose();
  }
}

/**
 * Pointer-array batch: each product's matrices are sub-views at different places of shared
 * padded buffers (so the pointers are not evenly spaced), C column-major.
 */
export function checkPointerBatched(context: CudaContext, handle: CublasHandle, mode: Mode, m: number, n: number, k: number, batch: number): void {
  const what = `pointer batch of ${batch} ${mode} ${m}×${k}·${k}×${n}`;
  const { input, output } = modeTypes(mode);
  // One tall buffer per operand: entry i occupies rows [i·(rows+1), …) of a padded matrix.
  const tall = (rows: number, cols: number, dtype: MatrixDtype, layout: MatrixLayout) => allocMatrix(context, batch * (rows + 1), cols + 2, dtype, layout, 3);
  const sa = tall(m, k, input, "row");
  const sb = tall(k, n, input, "col");
  const sc = tall(m, n, output, "col");
  try {
    const views = (s: Stored, rows: number, cols: number) => Array.from({ length: batch }, (_, i) => s.matrix.view(i * (rows + 1), rows, 1 + (i % 2), cols));
    const va = views(sa, m, k);
    const vb = views(sb, k, n);
    const vc = views(sc, m, n);
    const as = va.map((v) => {
      const data = randomMatrix(m, k, input);
      v.upload(data);
      return data;
    });
    const bs = vb.map((v) => {
      const data = randomMatrix(k, n, input);
      v.upload(data);
      return data;
    });
    handle.setMathMode(mode === "tf32" ? "tf32" : "default");
    handle.gemmBatched(va, vb, vc);
    vc.forEach((v, i) => assertProduct(v.download({ stream: handle.stream }), { a: as[i]!, b: bs[i]!, m, n, k, mode }, `${what}, entry ${i}`));
    assertOutsideUntouched(sc.buffer, vc, what);
  } finally {
    for (const s of [sa, sb, sc]) s.buffer.dispose();
  }
}

/**
 * A prepared GEMM reused: prepared on one set of matrices (A row-major, B column-major, C
 * row-major, padded ld), run on them, run on a second set described alike in other buffers, and
 * run on the first again with alpha = -2; every output checked, the first C unchanged by the
 * run on the second set. Returns the prepared GEMM's workspace need.
 */
export function checkPreparedReuse(context: CudaContext, handle: CublasHandle, mode: Mode, m: number, n: number, k: number): number {
  const what = `prepared ${mode} ${m}×${k}·${k}×${n}`;
  const { input, output } = modeTypes(mode);
  const sets = [0, 1].map(() => {
    const a = randomMatrix(m, k, input);
    const b = randomMatrix(k, n, input);
    const sa = allocMatrix(context, m, k, input, "row", 3);
    const sb = allocMatrix(context, k, n, input, "col", 1);
    const sc = allocMatrix(context, m, n, output, "row", 2);
    sa.matrix.upload(a);
    sb.matrix.upload(b);
    return { a, b, sa, sb, sc };
  });
  try {
    handle.setMathMode(mode === "tf32" ? "tf32" : "default");
    const [one, two] = sets as [(typeof sets)[0], (typeof sets)[0]];
    using gemm = handle.prepareGemm(one.sa.matrix, one.sb.matrix, one.sc.matrix);
    gemm.run();
    const first = one.sc.matrix.download({ stream: handle.stream });
    assertProduct(first, { a: one.a, b: one.b, m, n, k, mode }, `${what}, prepared matrices`);
    gemm.run(two.sa.matrix, two.sb.matrix, two.sc.matrix);
    assertProduct(two.sc.matrix.download({ stream: handle.stream }), { a: two.a, b: two.b, m, n, k, mode }, `${what}, other matrices`);
    assertOutsideUntouched(two.sc.buffer, [two.sc.matrix], what);
    assert.deepEqual(one.sc.matrix.download({ stream: handle.stream }), first, `${what}: the run on other matrices wrote the prepared C`);
    gemm.alpha = -2;
    gemm.run();
    assertProduct(one.sc.matrix.download({ stream: handle.stream }), { a: one.a, b: one.b, m, n, k, mode, alpha: -2 }, `${what}, alpha -2`);
    return gemm.workspaceBytes;
  } finally {
    for (const set of sets) for (const s of [set.sa, set.sb, set.sc]) s.buffer.dispose();
  }
}

/**
 * A GEMM captured into a CUDA graph on the handle's stream (A row-major, B column-major, C
 * row-major, padded ld) and launched repeatedly, prepared (`PreparedGemm.capture`) or called
 * (gemm/gemmEx inside `CudaGraph.capture`), each run once eagerly before its capture (as CUDA
 * graphs are best captured: warm): nothing is computed at capture (C keeps its poison); an eager
 * run with alpha = 3 after the capture leaves the graph's alpha at 1 (cuBLAS captures host-mode
 * scalars by value, and both paths reuse one host slot for them); each launch computes C from
 * what A and B hold then, new operands uploaded into the same memory between launches; nothing
 * outside C is written; and with beta = 1, four launches add four products.
 */
export function checkCapturedGemm(context: CudaContext, handle: CublasHandle, mode: Mode, m: number, n: number, k: number, via: "prepared" | "call"): void {
  const what = `captured ${via} ${mode} ${m}×${k}·${k}×${n}`;
  const { input, output } = modeTypes(mode);
  const sa = allocMatrix(context, m, k, input, "row", 3);
  const sb = allocMatrix(context, k, n, input, "col", 1);
  const sc = allocMatrix(context, m, n, output, "row", 2);
  const [a, b, c] = [sa.matrix, sb.matrix, sc.matrix];
  const stream = handle.stream!;
  /** The GEMM with this beta, run once and then captured, and an eager run of it with another alpha; C is poisoned again before the capture. */
  const capture = (beta: number) => {
    const prepared = via === "prepared" ? handle.prepareGemm(a, b, c, { beta }) : undefined;
    const eager = (alpha: number) => {
      if (!prepared) return callGemm(handle, a, b, c, { alpha, beta });
      prepared.alpha = alpha;
      prepared.run();
    };
    eager(1);
    sc.buffer.fill(0xff, { stream });
    const graph = prepared?.capture() ?? CudaGraph.capture(stream, () => callGemm(handle, a, b, c, { beta }), { uses: [sa.buffer, sb.buffer, sc.buffer] });
    return { graph, eager, [Symbol.dispose]: () => (graph.dispose(), prepared?.dispose()) };
  };
  try {
    handle.setMathMode(mode === "tf32" ? "tf32" : "default");
    const operands = () => {
      const hostA = randomMatrix(m, k, input);
      const hostB = randomMatrix(k, n, input);
      a.upload(hostA, { stream });
      b.upload(hostB, { stream });
      return { a: hostA, b: hostB, m, n, k, mode };
    };
    let product = operands();
    using single = capture(0);
    assert.ok(c.download({ stream }).every(Number.isNaN), `${what}: C was written at capture`);
    single.eager(3);
    assertProduct(c.download({ stream }), { ...product, alpha: 3 }, `${what}, an eager run with alpha 3 after the capture`);
    for (let launch = 1; launch <= 3; launch++) {
      if (launch > 1) product = operands();
      single.graph.launch();
      assertProduct(c.download({ stream }), product, `${what}, launch ${launch} (alpha 1, as captured)`);
    }
    assertOutsideUntouched(sc.buffer, [c], what);
    using sum = capture(1);
    sc.buffer.fill(0, { stream });
    for (let launch = 0; launch < 4; launch++) sum.graph.launch();
    assertProduct(c.download({ stream }), { ...product, alpha: 4 }, `${what}, four launches with beta = 1`);
  } finally {
    for (const s of [sa, sb, sc]) s.buffer.dispose();
  }
}
