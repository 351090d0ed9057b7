// 2D device memory: a Pitched2D is `height` rows of `widthBytes`, each starting `pitch` bytes
// after the last, and a Pitched2DView is a rectangle of it (no copy). Both are row-major with
// leading dimension `pitch / elementSize`, the form cuBLAS takes (as the transpose in its
// column-major terms; see docs/pools.md). Host copies stage through a PinnedPool, which makes
// them truly asynchronous on a stream and faster than pageable copies.
import type { Pointer } from "../../ffi/index.ts";
import { CudaArgumentError } from "../errors.ts";
import { DeviceBuffer } from "../memory.ts";
import type { CudaStream } from "../stream.ts";
import type { Block } from "./block-pool.ts";
import type { PoolStream } from "./cuda-source.ts";
import type { PinnedPool } from "./pinned-pool.ts";
import type { PitchedPool } from "./pitched-pool.ts";

/** Element types of matrices and their sizes in bytes (f16/bf16 travel as raw 16-bit patterns). */
export const ElementSize = { f64: 8, f32: 4, f16: 2, bf16: 2, i32: 4, u32: 4, i16: 2, u16: 2, i8: 1, u8: 1 } as const;
export type ElementType = keyof typeof ElementSize;

export function checkElementType(type: unknown): asserts type is ElementType {
  if (typeof type !== "string" || !Object.hasOwn(ElementSize, type)) {
    throw new CudaArgumentError(`unknown element type ${JSON.stringify(type)}; known: ${Object.keys(ElementSize).join(", ")}`);
  }
}

// cudaMemcpyDefault: with unified addressing CUDA infers each side's kind from the pointer.
const cudaMemcpyDefault = 4;

export interface CopyOptions {
  /** Queue on this stream and return without waiting (copyFromHost); default: complete on return. */
  readonly stream?: CudaStream;
}

function checkWhole(value: unknown, name: string, what: string): asserts value is number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new CudaArgumentError(`${what}: ${name} must be a whole number ≥ 0, got ${String(value)}`);
  }
}

/** A rectangle of a Pitched2D: `rows` × `cols` elements starting `byteOffset` into it. */
export class Pitched2DView {
  constructor(
    readonly matrix: Pitched2D,
    /** Bytes from the matrix's first element to this view's. */
    readonly byteOffset: number,
    readonly rows: number,
    readonly cols: number,
  ) {}

  get elementType(): ElementType {
    return this.matrix.elementType;
  }

  get elementSize(): number {
    return ElementSize[this.matrix.elementType];
  }

  /** Bytes from one row to the next: the matrix's pitch. */
  get pitch(): number {
    return this.matrix.pitch;
  }

  /** The leading dimension in elements, as BLAS takes it: pitch / elementSize. */
  get ld(): number {
    return this.matrix.pitch / this.elementSize;
  }

  get widthBytes(): number {
    return this.cols * this.elementSize;
  }

  /** Bytes from the first element to one past the last. */
  get spanBytes(): number {
    return this.rows === 0 ? 0 : (this.rows - 1) * this.pitch + this.widthBytes;
  }

  /** The device address of element (0, 0), after checking that the matrix is alive. */
  get ptr(): Pointer {
    return this.matrix.address(this.byteOffset, this.spanBytes);
  }

  /** A sub-rectangle of this view, without a copy. */
  view(rowStart: number, rowCount: number, colStart: number, colCount: number): Pitched2DView {
    const what = "Pitched2D.view";
    for (const [name, value] of [["rowStart", rowStart], ["rowCount", rowCount], ["colStart", colStart], ["colCount", colCount]] as const) checkWhole(value, name, what);
    if (rowStart + rowCount > this.rows) throw new CudaArgumentError(`${what}: rows [${rowStart}, ${rowStart + rowCount}) are out of range for ${this.rows} rows`);
    if (colStart + colCount > this.cols) throw new CudaArgumentError(`${what}: columns [${colStart}, ${colStart + colCount}) are out of range for ${this.cols} columns`);
    return new Pitched2DView(this.matrix, this.byteOffset + rowStart * this.pitch + colStart * this.elementSize, rowCount, colCount);
  }

  /**
   * Copies a dense row-major typed array of rows × cols elements in (cudaMemcpy2DAsync from a
   * pinned staging block). The array may be reused when the call returns.
   */
  copyFromHost(source: ArrayBufferView, options: CopyOptions = {}): void {
    const bytes = this.#hostBytes(source, "copyFromHost");
    const stream = options.stream;
    const handle = this.#handle(stream, "copyFromHost");
    if (bytes.byteLength === 0) return;
    using staging = this.matrix.staging.alloc(bytes.byteLength, stream === undefined ? {} : { stream });
    staging.bytes().set(bytes);
    this.#copy2D(this.ptr, this.pitch, staging.ptr, this.widthBytes, handle);
    if (!stream || this.matrix.context.launchBlocking) this.#synchronize(handle);
  }

  /**
   * Copies the rectangle out into a dense row-major typed array (default: a new Uint8Array) and
   * returns it; the data is there on return, after the work queued before it on the stream.
   */
  copyToHost<T extends ArrayBufferView = Uint8Array>(target?: T, options: CopyOptions = {}): T {
    const destination = target ?? (new Uint8Array(this.rows * this.widthBytes) as unknown as T);
    const bytes = this.#hostBytes(destination, "copyToHost");
    const stream = options.stream;
    const handle = this.#handle(stream, "copyToHost");
    if (bytes.byteLength === 0) return destination;
    using staging = this.matrix.staging.alloc(bytes.byteLength, stream === undefined ? {} : { stream });
    // Device rows are `pitch` apart, the staging rows packed (`widthBytes` apart).
    this.#copy2D(staging.ptr, this.widthBytes, this.ptr, this.pitch, handle);
    this.#synchronize(handle);
    bytes.set(staging.bytes());
    return destination;
  }

  /** Sets every byte of the rectangle to `value` (cudaMemset2DAsync). */
  memset2D(value: number, options: CopyOptions = {}): void {
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 255) {
      throw new CudaArgumentError(`Pitched2D.memset2D: value must be a byte (0–255), got ${String(value)}`);
    }
    const handle = this.#handle(options.stream, "memset2D");
    if (this.rows === 0 || this.cols === 0) return;
    const { context } = this.matrix;
    context.check(context.runtime.symbols.cudaMemset2DAsync(this.ptr, this.pitch, value, this.widthBytes, this.rows, handle), "cudaMemset2DAsync");
    if (!options.stream || context.launchBlocking) this.#synchronize(handle);
  }

  #hostBytes(view: ArrayBufferView, what: string): Uint8Array {
    if (!ArrayBuffer.isView(view)) throw new CudaArgumentError(`Pitched2D.${what}: expected a typed array, got ${view === null ? "null" : typeof view}`);
    const expected = this.rows * this.widthBytes;
    const perElement = (view as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT;
    if (perElement !== undefined && perElement !== 1 && perElement !== this.elementSize) {
      throw new CudaArgumentError(`Pitched2D.${what}: a ${view.constructor.name} does not hold ${this.elementType} elements (${this.elementSize} bytes each)`);
    }
    if (view.byteLength !== expected) {
      throw new CudaArgumentError(`Pitched2D.${what}: ${this.rows}×${this.cols} ${this.elementType} is ${expected} bytes, the array has ${view.byteLength}`);
    }
    return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  }

  #handle(stream: CudaStream | undefined, what: string): Pointer {
    this.matrix.assertUsable();
    this.matrix.context.activate();
    return stream ? stream.handleFor(this.matrix.device, `Pitched2D.${what}`) : 0;
  }

  #copy2D(dst: Pointer, dpitch: number, src: Pointer, spitch: number, stream: Pointer): void {
    const { context } = this.matrix;
    context.check(context.runtime.symbols.cudaMemcpy2DAsync(dst, dpitch, src, spitch, this.widthBytes, this.rows, cudaMemcpyDefault, stream), "cudaMemcpy2DAsync",
      `${this.rows} rows of ${this.widthBytes} bytes`);
  }

  #synchronize(stream: Pointer): void {
    const { context } = this.matrix;
    context.check(context.runtime.symbols.cudaStreamSynchronize(stream), "cudaStreamSynchronize", "after cudaMemcpy2DAsync");
  }
}

/**
 * A pitched matrix from a PitchedPool: `height` rows of `cols` elements, `pitch` bytes apart.
 * As a DeviceBuffer it covers `pitch × height` bytes; dispose returns it to the pool.
 */
export class Pitched2D extends DeviceBuffer {
  readonly #whole: Pitched2DView;

  /** Use {@link PitchedPool.alloc}. */
  constructor(
    readonly pool: PitchedPool,
    block: Block<PoolStream>,
    readonly pitch: number,
    readonly height: number,
    readonly cols: number,
    readonly elementType: ElementType,
    /** Where host copies stage. */
    readonly staging: PinnedPool,
  ) {
    super(pool.context, block.ptr, pitch * height, "PitchedPool.free", pool.core.releaseOf(block), "Pitched2D", pool.core);
    this.#whole = new Pitched2DView(this, 0, height, cols);
  }

  get rows(): number {
    return this.height;
  }

  get widthBytes(): number {
    return this.cols * ElementSize[this.elementType];
  }

  get elementSize(): number {
    return ElementSize[this.elementType];
  }

  /** The leading dimension in elements: pitch / elementSize. */
  get ld(): number {
    return this.pitch / this.elementSize;
  }

  /** The whole matrix as a view. */
  whole(): Pitched2DView {
    return this.#whole;
  }

  view(rowStart: number, rowCount: number, colStart: number, colCount: number): Pitched2DView {
    return this.#whole.view(rowStart, rowCount, colStart, colCount);
  }

  copyFromHost(source: ArrayBufferView, options?: CopyOptions): void {
    this.#whole.copyFromHost(source, options);
  }

  copyToHost<T extends ArrayBufferView = Uint8Array>(target?: T, options?: CopyOptions): T {
    return this.#whole.copyToHost(target, options);
  }

  memset2D(value: number, options?: CopyOptions): void {
    this.#whole.memset2D(value, options);
  }
}
