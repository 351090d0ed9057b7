// From C = A·B on Matrix descriptions to the arguments of one column-major cuBLAS call, checked
// in JS so that every bad shape or leading dimension is an error that names it, not a
// CUBLAS_STATUS_INVALID_VALUE. No data moves: a row-major matrix is, read column-major, its own
// transpose, so
//   - C column-major: C = op(A)·op(B), where an operand stored row-major is passed with op T;
//   - C row-major: cuBLAS computes Cᵀ = Bᵀ·Aᵀ into the same bytes: the operands swap, m and n
//     swap, and an operand stored column-major is the one passed with op T.
// Both cases are one rule: an operand whose layout differs from C's is transposed.
import { CublasOperation } from "./cublas-library.ts";
import { CudaArgumentError } from "../errors.ts";
import { Matrix, maxCublasInt } from "./matrix.ts";

/** The arguments of one cuBLAS GEMM, in cuBLAS's column-major terms. */
export interface GemmPlan {
  readonly transa: number;
  readonly transb: number;
  readonly m: number;
  readonly n: number;
  readonly k: number;
  /** cuBLAS's A: the caller's A, or B when C is row-major. */
  readonly first: Matrix;
  readonly second: Matrix;
  readonly c: Matrix;
  /** True when `first` is the caller's B (C row-major). */
  readonly swapped: boolean;
}

export function checkMatrix(value: unknown, name: string, what: string): asserts value is Matrix {
  if (!(value instanceof Matrix)) throw new CudaArgumentError(`${what}: ${name} must be a Matrix, got ${value === null ? "null" : typeof value}`);
}

/** Checks C = A·B for shapes and returns the column-major call that computes it. */
export function planGemm(a: Matrix, b: Matrix, c: Matrix, what: string): GemmPlan {
  checkMatrix(a, "A", what);
  checkMatrix(b, "B", what);
  checkMatrix(c, "C", what);
  if (a.cols !== b.rows) throw new CudaArgumentError(`${what}: A is ${a.rows}×${a.cols} and B is ${b.rows}×${b.cols}: A's columns (${a.cols}) must equal B's rows (${b.rows})`);
  if (a.rows !== c.rows) throw new CudaArgumentError(`${what}: A has ${a.rows} rows but C has ${c.rows}: C = A·B is ${a.rows}×${b.cols}, C is ${c.rows}×${c.cols}`);
  if (b.cols !== c.cols) throw new CudaArgumentError(`${what}: B has ${b.cols} columns but C has ${c.cols}: C = A·B is ${a.rows}×${b.cols}, C is ${c.rows}×${c.cols}`);
  const opA = a.layout === c.layout ? CublasOperation.N : CublasOperation.T;
  const opB = b.layout === c.layout ? CublasOperation.N : CublasOperation.T;
  return c.layout === "col"
    ? { transa: opA, transb: opB, m: c.rows, n: c.cols, k: a.cols, first: a, second: b, c, swapped: false }
    : { transa: opB, transb: opA, m: c.cols, n: c.rows, k: a.cols, first: b, second: a, c, swapped: true };
}

/** Throws unless `m` lives on `device` (the handle's). */
export function checkOnDevice(name: string, m: Matrix, device: number, what: string): void {
  if (m.device !== device) throw new CudaArgumentError(`${what}: ${name} is on device ${m.device}, the handle on device ${device}`);
}

/** Whether `m` has the shape, type, layout and ld of `like`: one cuBLAS call (or one prepared GEMM) takes either. */
export function sameDescription(m: Matrix, like: Matrix): boolean {
  return m.rows === like.rows && m.cols === like.cols && m.dtype === like.dtype && m.layout === like.layout && m.ld === like.ld;
}

/** One line for error messages: what was asked, in the caller's terms. */
export function describeGemm(plan: GemmPlan): string {
  const [a, b] = plan.swapped ? [plan.second, plan.first] : [plan.first, plan.second];
  const op = (t: number) => (t === CublasOperation.N ? "N" : "T");
  return `C (${plan.c.describe()}) = A (${a.describe()}) · B (${b.describe()}); cuBLAS call: ${op(plan.transa)}${op(plan.transb)} m=${plan.m} n=${plan.n} k=${plan.k}`;
}

export interface StridedBatch {
  readonly batchCount: number;
  /** Elements from one batch entry to the next (0 repeats the same matrix). */
  readonly strideA: number;
  readonly strideB: number;
  readonly strideC: number;
}

/**
 * Checks a strided batch: every entry of A, B and C lies inside its memory, and C's entries are
 * distinct (stride 0 would make every entry write the same output).
 */
export function checkStridedBatch(plan: GemmPlan, a: Matrix, b: Matrix, batch: Partial<StridedBatch> & { batchCount: number }, what: string): StridedBatch {
  const { batchCount } = batch;
  if (typeof batchCount !== "number" || !Number.isSafeInteger(batchCount) || batchCount < 0 || batchCount > maxCublasInt) {
    throw new CudaArgumentError(`${what}: batchCount must be a whole number from 0 to ${maxCublasInt}, got ${String(batchCount)}`);
  }
  const strides = { A: a, B: b, C: plan.c };
  const resolved: Record<string, number> = {};
  for (const [name, matrix] of Object.entries(strides)) {
    const stride = batch[`stride${name}` as keyof StridedBatch] ?? matrix.lines * matrix.ld;
    if (typeof stride !== "number" || !Number.isSafeInteger(stride) || stride < 0) {
      throw new CudaArgumentError(`${what}: stride${name} must be a whole number of elements ≥ 0, got ${String(stride)}`);
    }
    if (batchCount > 0) {
      const end = matrix.byteOffset + ((batchCount - 1) * stride + matrix.spanElements) * matrix.elementSize;
      if (end > matrix.memory.byteLength) {
        throw new CudaArgumentError(
          `${what}: ${name}'s batch entry ${batchCount - 1} (stride ${stride} elements) ends at byte ${end}, past the end of its ${matrix.memory.byteLength}-byte buffer`,
        );
      }
    }
    resolved[name] = stride;
  }
  if (batchCount > 1 && resolved.C === 0) throw new CudaArgumentError(`${what}: strideC is 0, so all ${batchCount} results would go to the same C`);
  return { batchCount, strideA: resolved.A!, strideB: resolved.B!, strideC: resolved.C! };
}

/** Checks that every matrix of a pointer-array batch has the shape, type, layout and ld of the first. */
export function checkUniformBatch(name: string, matrices: readonly Matrix[], what: string): void {
  const first = matrices[0]!;
  matrices.forEach((m, i) => {
    checkMatrix(m, `${name}[${i}]`, what);
    if (!sameDescription(m, first)) {
      throw new CudaArgumentError(`${what}: ${name}[${i}] is ${m.describe()}, but ${name}[0] is ${first.describe()}; one call takes one shape, type and ld per operand`);
    }
  });
}

