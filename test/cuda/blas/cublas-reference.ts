// Host-side numerics for the GEMM tests: fresh random operands rounded to their element type,
// a float64 reference product (on a sample of rows when the full one would be slow), and the
// relative Frobenius error ‖out − ref‖ / ‖ref‖.
import { bf16ToF32Array, f16ToF32Array, f32ToBf16Array, f32ToF16Array } from "../../../src/formats/half.ts";
import type { MatrixDtype } from "../../../src/cuda/index.ts";

let state = (Date.now() ^ 0x2545f491) >>> 0 || 1;

/** Uniform values in [-1, 1), a fresh sequence on every call. */
export function randomValues(count: number): Float32Array {
  const out = new Float32Array(count);
  let x = state;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x >>> 0) / 2 ** 31 - 1;
  }
  state = x >>> 0 || 1;
  return out;
}

/** The values a device matrix of `dtype` holds after uploading `values` (f16/bf16 round to nearest even). */
export function roundTo(dtype: MatrixDtype, values: Float32Array): Float32Array {
  if (dtype === "f16") return f16ToF32Array(f32ToF16Array(values));
  if (dtype === "bf16") return bf16ToF32Array(f32ToBf16Array(values));
  return values;
}

/** A random rows × cols row-major operand, already rounded to `dtype`. */
export function randomMatrix(rows: number, cols: number, dtype: MatrixDtype): Float32Array {
  return roundTo(dtype, randomValues(rows * cols));
}

/** The transpose of a dense row-major rows × cols array. */
export function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}

/** Rows to check: all of them while m·n·k stays small, else 64 distinct random ones (the product costs m·n·k in JS). */
export function sampleRows(m: number, n: number, k: number): number[] {
  const all = Array.from({ length: m }, (_, i) => i);
  if (m * n * k <= 2e7 || m <= 64) return all;
  const picks = randomValues(m);
  return all.sort((i, j) => picks[i]! - picks[j]!).slice(0, 64).sort((i, j) => i - j);
}

/**
 * ‖out − ref‖ / ‖ref‖ over `rows` of C = alpha·A·B + beta·C0, with the reference in float64.
 * All arrays are row-major: A m×k, B k×n, C0 and out m×n.
 */
export function relativeError(out: Float32Array, a: Float32Array, b: Float32Array, _m: number, n: number, k: number, rows: readonly number[], alpha = 1, beta = 0, c0?: Float32Array): number {
  let diff = 0;
  let norm = 0;
  const acc = new Float64Array(n);
  for (const r of rows) {
    acc.fill(0);
    for (let p = 0; p < k; p++) {
      const av = a[r * k + p]!;
      if (av === 0) continue;
      const row = p * n;
      for (let j = 0; j < n; j++) acc[j]! += av * b[row + j]!;
    }
    for (let j = 0; j < n; j++) {
      const ref = alpha * acc[j]! + (beta === 0 ? 0 : beta * c0![r * n + j]!);
      const d = out[r * n + j]! - ref;
      diff += d * d;
      norm += ref * ref;
    }
  }
  return norm === 0 ? Math.sqrt(diff) : Math.sqrt(diff / norm);
}

/** The index of the first NaN or infinity in `values`, or -1. */
export function firstNonFinite(values: Float32Array): number {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i]!)) return i;
  return -1;
}
