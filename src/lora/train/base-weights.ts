// The frozen base model on a backend. The backward pass of W·x with respect to x is an
// out-product with W (ggml's OUT_PROD), and backends differ in what W may be there: the CPU takes
// F32, F16 and the quantized types, CUDA takes F32 only, and neither takes BF16. So each weight is
// kept in its file's type where the backend can differentiate through it and widened to F32
// once, at load, where it cannot; `storage` says what that cost.
// On the CPU that out-product is a row-by-row multiply-add, 2.5× slower than the same product as
// a mul_mat with Wᵀ (ggml's tiled GEMM kernels). So the CPU keeps, beside each F32 matrix the
// graph multiplies by, a transposed copy that the training graph's backward pass uses instead
// (ComputeGraph.transposeProducts): the same bytes again, for a step about a third faster.
import { type GgufFile, GgmlType, bf16ToF32Array, dequantize, dequantizableTypes, f16ToF32Array, ggmlTypeInfo } from "../../formats/index.ts";
import type { Pointer } from "../../ffi/index.ts";
import { BackendBuffer, type GgmlBackend, GgmlContext, type Tensor, TensorType } from "../../ggml/index.ts";
import { ArchitectureError } from "./architecture.ts";

/** Types the CPU backend multiplies with and differentiates through as they are. */
const cpuNative = new Set<number>([GgmlType.F32, GgmlType.F16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1]);

/** The type a frozen matrix is kept in on `backend`. */
export function storageType(fileType: number, backend: GgmlBackend): number {
  return backend.isCpu && cpuNative.has(fileType) ? fileType : TensorType.F32;
}

export interface WeightStorage {
  /** Bytes of frozen weights on the backend. */
  readonly bytes: number;
  /** Bytes the same weights take in the file. */
  readonly fileBytes: number;
  /** Tensors widened to F32 at load, by their file type ("F16": 154). */
  readonly widened: Readonly<Record<string, number>>;
  /** Bytes of the transposed copies the CPU's backward pass multiplies with (0 without them). */
  readonly transposedBytes: number;
}

/** Matrices the graph multiplies activations by (token_embd too, where it is the tied output). */
function isMultiplied(name: string, names: readonly string[]): boolean {
  if (name === "token_embd.weight") return !names.includes("output.weight");
  return name === "output.weight" || /^blk\.\d+\.(attn_(q|k|v|output)|ffn_(gate|up|down))\.weight$/.test(name);
}

/** `values` as a [cols, rows] matrix transposed to [rows, cols], in cache-sized tiles. */
function transpose(values: Float32Array, cols: number, rows: number): Float32Array {
  const out = new Float32Array(values.length);
  const tile = 64;
  for (let r0 = 0; r0 < rows; r0 += tile) {
    for (let c0 = 0; c0 < cols; c0 += tile) {
      for (let r = r0; r < Math.min(r0 + tile, rows); r++) for (let c = c0; c < Math.min(c0 + tile, cols); c++) out[c * rows + r] = values[r * cols + c]!;
    }
  }
  return out;
}

function toF32(bytes: Uint8Array, type: number, name: string): Float32Array {
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  if (type === GgmlType.F32) return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4);
  if (type === GgmlType.F16) return f16ToF32Array(new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2));
  if (type === GgmlType.BF16) return bf16ToF32Array(new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2));
  if (dequantizableTypes.includes(type)) return dequantize(bytes, type);
  throw new ArchitectureError(`${name} is ${ggmlTypeInfo(type)?.name ?? type}, which the trainer cannot widen to F32 (F16, BF16, Q8_0, Q4_0/1 and Q5_0/1 it can)`);
}

/** The base model's tensors on one backend, frozen. */
export class BaseWeights implements Disposable {
  readonly #byName: Map<string, Tensor>;

  private constructor(
    private readonly ctx: GgmlContext,
    private readonly buffer: BackendBuffer,
    byName: Map<string, Tensor>,
    /** W's `struct ggml_tensor *` → Wᵀ, for ComputeGraph.transposeProducts. */
    readonly transposed: ReadonlyMap<Pointer, Tensor>,
    readonly storage: WeightStorage,
  ) {
    this.#byName = byName;
  }

  /**
   * Reads every tensor the llama graph uses from `file` onto `backend`; with `transposedCopies`
   * (only on the CPU), also Wᵀ for each F32 matrix the graph multiplies by.
   */
  static async load(file: GgufFile, backend: GgmlBackend, options: { transposedCopies?: boolean } = {}): Promise<BaseWeights> {
    const names = file.tensors.map((t) => t.name).filter((n) => n === "token_embd.weight" || n === "output.weight" || n === "output_norm.weight" || n === "rope_freqs.weight" || /^blk\.\d+\./.test(n));
    const ctx = new GgmlContext(backend.ggml.base, { tensors: 2 * names.length + 1 });
    const byName = new Map<string, Tensor>();
    const transposed = new Map<string, Tensor>();
    const widened: Record<string, number> = {};
    let fileBytes = 0;
    for (const name of names) {
      const info = file.tensor(name);
      const isMatrix = info.shape.length === 2 && info.shape[1]! > 1;
      const type = isMatrix ? storageType(info.type, backend) : TensorType.F32;
      if (type !== info.type) widened[info.typeName] = (widened[info.typeName] ?? 0) + 1;
      byName.set(name, ctx.tensor(type, info.shape, name));
      if (options.transposedCopies && backend.isCpu && isMatrix && type === TensorType.F32 && isMultiplied(name, names)) {
        transposed.set(name, ctx.tensor(TensorType.F32, [info.shape[1]!, info.shape[0]!], `${name.slice(0, 50)} (transposed)`));
      }
      fileBytes += info.byteLength;
    }
    let buffer: BackendBuffer | undefined;
    try {
      buffer = BackendBuffer.allocate(ctx, backend);
      for (const [name, tensor] of byName) {
        const info = file.tensor(name);
        const bytes = await file.readTensor(name);
        // Stored as F32: the file's values, widened where they are not F32 (a view where they are).
        const values = tensor.type === TensorType.F32 ? toF32(bytes, info.type, name) : bytes;
        tensor.write(values);
        const copy = transposed.get(name);
        if (copy !== undefined) copy.write(transpose(values as Float32Array, info.shape[0]!, info.shape[1]!));
      }
    } catch (error) {
      buffer?.dispose();
      ctx.dispose();
      throw error;
    }
    const transposedBytes = [...transposed.values()].reduce((sum, t) => sum + t.byteLength, 0);
    const byWeight = new Map([...transposed].map(([name, copy]) => [byName.get(name)!.ptr, copy]));
    return new BaseWeights(ctx, buffer, byName, byWeight, Object.freeze({ bytes: buffer.byteLength - transposedBytes, fileBytes, widened: Object.freeze(widened), transposedBytes }));
  }

  /** A base tensor by its GGUF name; undefined if the file has none (output.weight of a tied model). */
  get(name: string): Tensor | undefined {
    return this.#byName.get(name);
  }

  /** A base tensor that must exist. */
  require(name: string): Tensor {
    const tensor = this.#byName.get(name);
    if (tensor === undefined) throw new ArchitectureError(`the base model has no ${name}`);
    return tensor;
  }

  dispose(): void {
    this.buffer.dispose();
    this.ctx.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
