// Matrix: a rows × cols rectangle of f32/f16/bf16 elements in device memory, row- or
// column-major with a leading dimension (elements from one row, or column, to the next). It is a
// description over memory it usually does not own: a DeviceBuffer, a pool block, a Pitched2D
// view. Sub-matrices and transposes are new descriptions of the same bytes, never copies, which
// is what lets GEMM take transposed and pitched operands as they are.
import { HostMemory, type Pointer } from "../../ffi/index.ts";
import { bf16ToF32Array, f16ToF32Array, f32ToBf16Array, f32ToF16Array } from "../../formats/half.ts";
import type { CudaContext } from "../context.ts";
import { CudaArgumentError } from "../errors.ts";
import { CudaMemory } from "../memory.ts";
import type { Pitched2D, Pitched2DView } from "../pool/pitched.ts";
import type { CudaStream } from "../stream.ts";

export type MatrixDtype = "f32" | "f16" | "bf16";
/** `row`: element (r, c) at r × ld + c. `col`: at r + c × ld (cuBLAS's own order). */
export type MatrixLayout = "row" | "col";

export const matrixElementSize: Readonly<Record<MatrixDtype, number>> = { f32: 4, f16: 2, bf16: 2 };

/** cuBLAS takes dimensions and leading dimensions as C `int`. */
export const maxCublasInt = 2 ** 31 - 1;

export interface MatrixOptions {
  readonly rows: number;
  readonly cols: number;
  /** Default "f32". */
  readonly dtype?: MatrixDtype;
  /** Default "row". */
  readonly layout?: MatrixLayout;
  /** Leading dimension in elements (default: dense, cols for "row" and rows for "col"). */
  readonly ld?: number;
  /** Where element (0, 0) is, in bytes from the start of the memory (default 0). */
  readonly byteOffset?: number;
}

export interface MatrixAllocOptions {
  readonly dtype?: MatrixDtype;
  readonly layout?: MatrixLayout;
  /** Allocate stream-ordered on this stream (cudaMallocAsync). */
  readonly stream?: CudaStream;
}

export interface MatrixCopyOptions {
  /** Order the copy on this stream (it still has completed when the call returns). */
  readonly stream?: CudaStream;
}

function checkCount(value: unknown, name: string, what: string, min = 0): asserts value is number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min || value > maxCublasInt) {
    throw new CudaArgumentError(`${what}: ${name} must be a whole number from ${min} to ${maxCublasInt}, got ${String(value)}`);
  }
}

export function checkDtype(dtype: unknown, what: string): asserts dtype is MatrixDtype {
  if (typeof dtype !== "string" || !Object.hasOwn(matrixElementSize, dtype)) {
    throw new CudaArgumentError(`${what}: dtype must be one of ${Object.keys(matrixElementSize).join(", ")}, got ${JSON.stringify(dtype)}`);
  }
}

// cudaMemcpyDefault: with unified addressing CUDA infers each side's kind from the pointer.
const cudaMemcpyDefault = 4;

export class Matrix implements Disposable {
  readonly #owned: boolean;

  private constructor(
    /** The memory the elements live in. */
    readonly memory: CudaMemory,
    /** Bytes from the start of `memory` to element (0, 0). */
    readonly byteOffset: number,
    readonly rows: number,
    readonly cols: number,
    readonly dtype: MatrixDtype,
    readonly layout: MatrixLayout,
    /** Leading dimension in elements. */
    readonly ld: number,
    owned: boolean,
  ) {
    this.#owned = owned;
  }

  /** A matrix over `memory`; checks that it fits and that `ld` can hold a row (or column). */
  static on(memory: CudaMemory, options: MatrixOptions): Matrix {
    const what = "Matrix.on";
    if (!(memory instanceof CudaMemory)) throw new CudaArgumentError(`${what}: expected CUDA memory (a DeviceBuffer, a pool buffer, a Pitched2D), got ${memory === null ? "null" : typeof memory}`);
    const { rows, cols } = options;
    checkCount(rows, "rows", what);
    checkCount(cols, "cols", what);
    const dtype = options.dtype ?? "f32";
    checkDtype(dtype, what);
    const layout = options.layout ?? "row";
    if (layout !== "row" && layout !== "col") throw new CudaArgumentError(`${what}: layout must be "row" or "col", got ${JSON.stringify(layout)}`);
    const inner = layout === "row" ? cols : rows;
    const ld = options.ld ?? Math.max(1, inner);
    // BLAS asks ld ≥ max(1, inner) even for an empty matrix.
    checkCount(ld, "ld", what, Math.max(1, inner));
    const byteOffset = options.byteOffset ?? 0;
    const size = matrixElementSize[dtype];
    if (typeof byteOffset !== "number" || !Number.isSafeInteger(byteOffset) || byteOffset < 0 || byteOffset % size !== 0) {
      throw new CudaArgumentError(`${what}: byteOffset must be a whole multiple of the ${dtype} element size (${size} bytes), got ${String(byteOffset)}`);
    }
    const matrix = new Matrix(memory, byteOffset, rows, cols, dtype, layout, ld, false);
    if (byteOffset + matrix.spanBytes > memory.byteLength) {
      throw new CudaArgumentError(
        `${what}: a ${matrix.describe()} at byte ${byteOffset} ends at byte ${byteOffset + matrix.spanBytes}, past the end of its ${memory.byteLength}-byte buffer`,
      );
    }
    return matrix;
  }

  /** The view (or whole Pitched2D) as a row-major matrix whose ld is pitch / element size. */
  static fromPitched(view: Pitched2D | Pitched2DView): Matrix {
    const whole = "whole" in view ? view.whole() : view;
    const dtype = whole.elementType;
    checkDtype(dtype, "Matrix.fromPitched");
    if (!Number.isInteger(whole.ld)) {
      throw new CudaArgumentError(`Matrix.fromPitched: pitch ${whole.pitch} is not a whole number of ${dtype} elements`);
    }
    return Matrix.on(whole.matrix, { rows: whole.rows, cols: whole.cols, dtype, layout: "row", ld: whole.ld, byteOffset: whole.byteOffset });
  }

  /** A new dense matrix in device memory that this Matrix owns: dispose it to free the memory. */
  static alloc(context: CudaContext, rows: number, cols: number, options: MatrixAllocOptions = {}): Matrix {
    const dtype = options.dtype ?? "f32";
    checkDtype(dtype, "Matrix.alloc");
    checkCount(rows, "rows", "Matrix.alloc", 1);
    checkCount(cols, "cols", "Matrix.alloc", 1);
    const memory = context.alloc(rows * cols * matrixElementSize[dtype], options.stream === undefined ? {} : { stream: options.stream });
    const layout = options.layout ?? "row";
    const described = Matrix.on(memory, { rows, cols, dtype, layout });
    return new Matrix(memory, 0, rows, cols, dtype, described.layout, described.ld, true);
  }

  get elementSize(): number {
    return matrixElementSize[this.dtype];
  }

  /** Rows for "row" layout, columns for "col": the lines `ld` elements apart. */
  get lines(): number {
    return this.layout === "row" ? this.rows : this.cols;
  }

  /** Elements per line. */
  get lineLength(): number {
    return this.layout === "row" ? this.cols : this.rows;
  }

  /** Elements from element (0, 0) to one past the last. */
  get spanElements(): number {
    return this.rows === 0 || this.cols === 0 ? 0 : (this.lines - 1) * this.ld + this.lineLength;
  }

  get spanBytes(): number {
    return this.spanElements * this.elementSize;
  }

  /** The device address of element (0, 0), after checking that the memory is alive. */
  get ptr(): Pointer {
    // No range check: the span was checked to fit when the description was made, and neither
    // changes. A GEMM reads this three times per call, so it stays a liveness check and an add.
    this.memory.assertUsable();
    return this.memory.ptr + this.byteOffset;
  }

  /** The device the memory is on. */
  get device(): number {
    return this.memory.device;
  }

  /** The transpose: the same bytes read in the other order (no copy). */
  t(): Matrix {
    return new Matrix(this.memory, this.byteOffset, this.cols, this.rows, this.dtype, this.layout === "row" ? "col" : "row", this.ld, false);
  }

  /** Rows [rowStart, rowStart + rowCount) × columns [colStart, colStart + colCount), no copy. */
  view(rowStart: number, rowCount: number, colStart: number, colCount: number): Matrix {
    const what = "Matrix.view";
    for (const [name, value] of [["rowStart", rowStart], ["rowCount", rowCount], ["colStart", colStart], ["colCount", colCount]] as const) checkCount(value, name, what);
    if (rowStart + rowCount > this.rows) throw new CudaArgumentError(`${what}: rows [${rowStart}, ${rowStart + rowCount}) are out of range for ${this.rows} rows`);
    if (colStart + colCount > this.cols) throw new CudaArgumentError(`${what}: columns [${colStart}, ${colStart + colCount}) are out of range for ${this.cols} columns`);
    const offset = this.layout === "row" ? rowStart * this.ld + colStart : colStart * this.ld + rowStart;
    return new Matrix(this.memory, this.byteOffset + offset * this.elementSize, rowCount, colCount, this.dtype, this.layout, this.ld, false);
  }

  /** E.g. `17×33 f16 row-major (ld 40)`. */
  describe(): string {
    return `${this.rows}×${this.cols} ${this.dtype} ${this.layout}-major (ld ${this.ld})`;
  }

  /**
   * Copies host values in: `data` holds rows × cols elements in row-major order whatever the
   * layout, as f32 values (converted to f16/bf16 with round-to-nearest-even) or, for f16/bf16
   * matrices, as raw 16-bit patterns in a Uint16Array. Complete when the call returns.
   */
  upload(data: Float32Array | Uint16Array, options: MatrixCopyOptions = {}): void {
    const bytes = this.#encode(data);
    if (bytes.byteLength === 0) return;
    using staging = HostMemory.from(bytes);
    this.#copy2D(this.ptr, this.ld * this.elementSize, staging.ptr, this.lineLength * this.elementSize, options.stream, "upload");
  }

  /** Copies the elements out as f32 values in row-major order, after the work queued before it on the stream. */
  download(options: MatrixCopyOptions = {}): Float32Array {
    const count = this.rows * this.cols;
    if (count === 0) return new Float32Array(0);
    using staging = HostMemory.alloc(count * this.elementSize);
    this.#copy2D(staging.ptr, this.lineLength * this.elementSize, this.ptr, this.ld * this.elementSize, options.stream, "download");
    const raw = staging.bytes().slice();
    const values = this.dtype === "f32" ? new Float32Array(raw.buffer) : this.dtype === "f16" ? f16ToF32Array(new Uint16Array(raw.buffer)) : bf16ToF32Array(new Uint16Array(raw.buffer));
    return this.layout === "row" ? values : transposeDense(values, this.cols, this.rows);
  }

  /** Frees the memory if this Matrix allocated it (Matrix.alloc); views and wrappers free nothing. */
  dispose(): void {
    if (this.#owned && !this.memory.disposed) this.memory.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Host values → element bytes in this matrix's line order. */
  #encode(data: Float32Array | Uint16Array): Uint8Array {
    const what = "Matrix.upload";
    const count = this.rows * this.cols;
    if (!(data instanceof Float32Array) && !(data instanceof Uint16Array)) {
      throw new CudaArgumentError(`${what}: expected a Float32Array (or a Uint16Array of ${this.dtype === "f32" ? "f16/bf16" : this.dtype} bit patterns), got ${data === null ? "null" : (data as object).constructor?.name ?? typeof data}`);
    }
    if (data instanceof Uint16Array && this.dtype === "f32") throw new CudaArgumentError(`${what}: a Uint16Array holds 16-bit patterns, but the matrix is f32; pass a Float32Array`);
    if (data.length !== count) throw new CudaArgumentError(`${what}: a ${this.describe()} takes ${count} elements, the array has ${data.length}`);
    const ordered = this.layout === "row" ? data : transposeDense(data, this.rows, this.cols);
    const encoded = ordered instanceof Uint16Array || this.dtype === "f32" ? ordered : this.dtype === "f16" ? f32ToF16Array(ordered) : f32ToBf16Array(ordered);
    return new Uint8Array(encoded.buffer, encoded.byteOffset, encoded.byteLength);
  }

  #copy2D(dst: Pointer, dpitch: number, src: Pointer, spitch: number, stream: CudaStream | undefined, what: string): void {
    const { context } = this.memory;
    context.activate();
    const handle = stream ? stream.handleFor(context.device, `Matrix.${what}`) : 0;
    const { symbols } = context.runtime;
    context.check(symbols.cudaMemcpy2DAsync(dst, dpitch, src, spitch, this.lineLength * this.elementSize, this.lines, cudaMemcpyDefault, handle), "cudaMemcpy2DAsync", `Matrix.${what} of a ${this.describe()}`);
    // The staging memory is pageable and freed on return: the copy must be complete by then.
    context.check(symbols.cudaStreamSynchronize(handle), "cudaStreamSynchronize", `after Matrix.${what}`);
  }
}

/** The transpose of a dense row-major rows × cols array (as a dense cols × rows one). */
function transposeDense<T extends Float32Array | Uint16Array>(data: T, rows: number, cols: number): T {
  const out = new (data.constructor as new (length: number) => T)(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c]!;
  return out;
}
