// GgmlContext: one ggml_context, the arena that tensor and graph descriptions live in (their data
// lives in backend buffers), with every op of a llama block as a method that checks its operands
// before ggml's own assertions could abort the process. ComputeGraph: a graph built in it.
import { NativeResource, type Pointer } from "../ffi/index.ts";
import { GgmlError, GgmlShapeError } from "./errors.ts";
import type { GgmlBaseLibrary } from "./ggml.ts";
import { GgmlOp, RopeType } from "./graph-bindings.ts";
import { ggmlTypeInfo } from "../formats/index.ts";
import { type Shape, Tensor, TensorType, shapeText, typeName } from "./tensor.ts";

export interface GgmlContextOptions {
  /** Tensors (including the views and results of ops) the context can describe (default 4096). */
  readonly tensors?: number;
  /** Graphs it can hold and their size: `{ count, size, grads }` (default none). */
  readonly graphs?: { readonly count: number; readonly size: number; readonly grads: boolean };
}

export interface RopeOptions {
  /** Dimensions rotated (the head size for llama). */
  readonly dims: number;
  /** `normal` (llama) or `neox`. */
  readonly mode?: keyof typeof RopeType;
  readonly freqBase?: number;
  readonly freqScale?: number;
  /** The context length the model was trained with (YaRN only; 0 otherwise). */
  readonly contextLength?: number;
  /** Per-dimension frequency factors (Llama 3's rope_freqs), F32 [dims/2]. */
  readonly factors?: Tensor;
}

const i64 = BigInt;

/**
 * A ggml context made with `no_alloc`: it describes tensors and graphs; their data lives in a
 * {@link BackendBuffer} (for tensors that persist) or a {@link Scheduler}'s compute buffer (for
 * a graph's intermediates). Freed on dispose, with every description in it.
 */
export class GgmlContext extends NativeResource {
  /** @internal */
  readonly lib: GgmlBaseLibrary;
  readonly #handle: Pointer;
  readonly #capacity: number;
  readonly #tensorOverhead: number;

  constructor(lib: GgmlBaseLibrary, options: GgmlContextOptions = {}) {
    const tensors = options.tensors ?? 4096;
    if (!Number.isSafeInteger(tensors) || tensors < 1) throw new GgmlError("ERR_GGML_ARGUMENT", `tensors must be a positive integer, got ${tensors}`);
    const graphs = options.graphs;
    const tensorOverhead = lib.symbols.ggml_tensor_overhead();
    const graphBytes = graphs === undefined ? 0 : graphs.count * lib.symbols.ggml_graph_overhead_custom(graphs.size, graphs.grads);
    const capacity = tensors * tensorOverhead + graphBytes;
    const handle = lib.symbols.ggml_init({ mem_size: capacity, mem_buffer: 0, no_alloc: true });
    if (handle === 0) throw new GgmlError("ERR_GGML_ALLOC", `ggml_init could not reserve ${capacity} bytes`);
    super("GgmlContext", () => lib.symbols.ggml_free(handle));
    this.lib = lib;
    this.#handle = handle;
    this.#capacity = capacity;
    this.#tensorOverhead = tensorOverhead;
  }

  /** @internal The ggml_context pointer, after a liveness check. */
  get live(): Pointer {
    this.assertLive();
    return this.#handle;
  }

  /** Bytes of the context's arena in use. */
  get usedBytes(): number {
    return this.lib.symbols.ggml_used_mem(this.live);
  }

  /** How many more tensor descriptions fit. */
  get freeTensors(): number {
    return Math.floor((this.#capacity - this.usedBytes) / this.#tensorOverhead);
  }

  /** ggml aborts the process when its arena is full: refuse before that. */
  #reserve(count: number, what: string): void {
    if (this.freeTensors < count) {
      throw new GgmlError("ERR_GGML_CONTEXT_FULL", `${what}: the context has room for ${this.freeTensors} more tensors, ${count} needed; make it with a larger \`tensors\``);
    }
  }

  #wrap(ptr: Pointer, what: string): Tensor {
    if (ptr === 0) throw new GgmlError("ERR_GGML_OP", `${what} returned NULL`);
    return new Tensor(this, ptr);
  }

  #own(...tensors: (Tensor | undefined)[]): void {
    for (const t of tensors) if (t !== undefined) t.assertUsable();
  }

  /** A new tensor of `type` and `shape` (ne0 first, up to 4 dimensions), data unallocated. */
  tensor(type: number, shape: Shape, name?: string): Tensor {
    this.assertLive();
    if (shape.length < 1 || shape.length > 4 || !shape.every((d) => Number.isSafeInteger(d) && d >= 1)) {
      throw new GgmlShapeError("new_tensor", `a shape is 1 to 4 positive integers, got [${shape.join(", ")}]`);
    }
    typeName(type); // throws for an unknown type
    if (shape[0]! % ggmlTypeInfo(type)!.blockSize !== 0) {
      throw new GgmlShapeError("new_tensor", `ne0 ${shape[0]} is not a multiple of ${typeName(type)}'s block size`);
    }
    this.#reserve(1, "new_tensor");
    const s = this.lib.symbols;
    const [a, b = 1, c = 1, d = 1] = shape;
    const ptr = shape.length === 1 ? s.ggml_new_tensor_1d(this.#handle, type, i64(a!))
      : shape.length === 2 ? s.ggml_new_tensor_2d(this.#handle, type, i64(a!), i64(b))
      : shape.length === 3 ? s.ggml_new_tensor_3d(this.#handle, type, i64(a!), i64(b), i64(c))
      : s.ggml_new_tensor_4d(this.#handle, type, i64(a!), i64(b), i64(c), i64(d));
    const tensor = this.#wrap(ptr, "ggml_new_tensor");
    if (name !== undefined) tensor.name = name;
    return tensor;
  }

  /** Every tensor of the context, in creation order. */
  *tensors(): Generator<Tensor> {
    const s = this.lib.symbols;
    for (let p = s.ggml_get_first_tensor(this.live); p !== 0; p = s.ggml_get_next_tensor(this.#handle, p)) yield new Tensor(this, p);
  }

  /** Bytes the data of every tensor of the context needs (unpadded). */
  tensorBytes(): number {
    let bytes = 0;
    for (const t of this.tensors()) bytes += t.byteLength;
    return bytes;
  }

  // ----- element-wise and reductions ----------------------------------------------------------

  /** a + b, b broadcast over a (each of b's dimensions divides a's). */
  add(a: Tensor, b: Tensor): Tensor {
    this.#binary("add", a, b);
    return this.#wrap(this.lib.symbols.ggml_add(this.#handle, a.ptr, b.ptr), "ggml_add");
  }

  /** a · b element-wise, b broadcast over a. */
  mul(a: Tensor, b: Tensor): Tensor {
    this.#binary("mul", a, b);
    return this.#wrap(this.lib.symbols.ggml_mul(this.#handle, a.ptr, b.ptr), "ggml_mul");
  }

  #binary(op: string, a: Tensor, b: Tensor): void {
    this.#own(a, b);
    this.#reserve(1, op);
    if (!a.shape4.every((n, i) => n % b.shape4[i]! === 0)) throw new GgmlShapeError(op, `${shapeText(b)} cannot be broadcast over ${shapeText(a)}`);
    if (a.type !== TensorType.F32 && a.type !== TensorType.F16) throw new GgmlShapeError(op, `takes F32 or F16 operands, got ${typeName(a.type)}`);
  }

  /** a / b element-wise, b broadcast over a. */
  div(a: Tensor, b: Tensor): Tensor {
    this.#binary("div", a, b);
    return this.#wrap(this.lib.symbols.ggml_div(this.#handle, a.ptr, b.ptr), "ggml_div");
  }

  sqrt(a: Tensor): Tensor {
    this.#unaryFloat("sqrt", a);
    return this.#wrap(this.lib.symbols.ggml_sqrt(this.#handle, a.ptr), "ggml_sqrt");
  }

  /** Each element limited to [min, max] (not differentiable). */
  clamp(a: Tensor, min: number, max: number): Tensor {
    this.#unaryFloat("clamp", a);
    if (!(min <= max)) throw new GgmlShapeError("clamp", `min ${min} is above max ${max}`);
    return this.#wrap(this.lib.symbols.ggml_clamp(this.#handle, a.ptr, min, max), "ggml_clamp");
  }

  sqr(a: Tensor): Tensor {
    this.#unaryFloat("sqr", a);
    return this.#wrap(this.lib.symbols.ggml_sqr(this.#handle, a.ptr), "ggml_sqr");
  }

  log(a: Tensor): Tensor {
    this.#unaryFloat("log", a);
    return this.#wrap(this.lib.symbols.ggml_log(this.#handle, a.ptr), "ggml_log");
  }

  /** The sum of every element: a tensor of one element. */
  sum(a: Tensor): Tensor {
    this.#unaryFloat("sum", a);
    return this.#wrap(this.lib.symbols.ggml_sum(this.#handle, a.ptr), "ggml_sum");
  }

  silu(a: Tensor): Tensor {
    this.#unaryFloat("silu", a);
    return this.#wrap(this.lib.symbols.ggml_silu(this.#handle, a.ptr), "ggml_silu");
  }

  /** a·s + bias */
  scale(a: Tensor, s: number, bias = 0): Tensor {
    this.#unaryFloat("scale", a);
    if (!Number.isFinite(s) || !Number.isFinite(bias)) throw new GgmlShapeError("scale", `scale and bias must be finite, got ${s} and ${bias}`);
    return this.#wrap(bias === 0 ? this.lib.symbols.ggml_scale(this.#handle, a.ptr, s) : this.lib.symbols.ggml_scale_bias(this.#handle, a.ptr, s, bias), "ggml_scale");
  }

  /** Root-mean-square normalization of each row: x / sqrt(mean(x²) + eps). */
  rmsNorm(a: Tensor, eps: number): Tensor {
    this.#unaryFloat("rms_norm", a);
    if (!(eps >= 0)) throw new GgmlShapeError("rms_norm", `eps must be a non-negative number, got ${eps}`);
    return this.#wrap(this.lib.symbols.ggml_rms_norm(this.#handle, a.ptr, eps), "ggml_rms_norm");
  }

  #unaryFloat(op: string, a: Tensor): void {
    this.#own(a);
    this.#reserve(1, op);
    if (a.type !== TensorType.F32 && a.type !== TensorType.F16) throw new GgmlShapeError(op, `takes F32 or F16, got ${typeName(a.type)}`);
  }

  // ----- matrix products -----------------------------------------------------------------------

  /**
   * ggml_mul_mat(a, b): for each row r of b and row o of a, out[o, r] = a[:, o] · b[:, r];
   * a [k, m, p, q] and b [k, n, P, Q] give [m, n, P, Q], a broadcast over b's dimensions 2 and 3.
   * With a weight W [n_in, n_out] and activations x [n_in, tokens], mulMat(W, x) is W·x.
   */
  mulMat(a: Tensor, b: Tensor): Tensor {
    this.#own(a, b);
    this.#reserve(1, "mul_mat");
    const [a0, , a2, a3] = a.shape4;
    const [b0, , b2, b3] = b.shape4;
    if (a0 !== b0) throw new GgmlShapeError("mul_mat", `inner dimensions differ: ${shapeText(a)} and ${shapeText(b)}`);
    if (b2! % a2! !== 0 || b3! % a3! !== 0) throw new GgmlShapeError("mul_mat", `${shapeText(a)} cannot be broadcast over ${shapeText(b)}`);
    if (a.transposed) throw new GgmlShapeError("mul_mat", "the first operand must not be transposed; make it contiguous first");
    if (b.type !== TensorType.F32) throw new GgmlShapeError("mul_mat", `the second operand must be F32, got ${typeName(b.type)}`);
    return this.#wrap(this.lib.symbols.ggml_mul_mat(this.#handle, a.ptr, b.ptr), "ggml_mul_mat");
  }

  // ----- shapes and copies ---------------------------------------------------------------------

  /** A contiguous copy (of a permuted or transposed view). */
  cont(a: Tensor): Tensor {
    this.#own(a);
    this.#reserve(1, "cont");
    return this.#wrap(this.lib.symbols.ggml_cont(this.#handle, a.ptr), "ggml_cont");
  }

  /** Copies `a` into `into` (same element count; `a` may be a transposed or permuted view): a node that writes `into`. */
  copy(a: Tensor, into: Tensor): Tensor {
    this.#own(a);
    into.assertUsable();
    this.#reserve(1, "cpy");
    if (a.elements !== into.elements) throw new GgmlShapeError("cpy", `${shapeText(a)} into ${shapeText(into)}: different element counts`);
    return this.#wrap(this.lib.symbols.ggml_cpy(this.#handle, a.ptr, into.ptr), "ggml_cpy");
  }

  /** A copy converted to `type` (F32, F16, BF16; quantized types dequantize to F32). */
  cast(a: Tensor, type: number): Tensor {
    this.#own(a);
    this.#reserve(1, "cast");
    typeName(type);
    return this.#wrap(this.lib.symbols.ggml_cast(this.#handle, a.ptr, type), "ggml_cast");
  }

  /** The same data with another shape of as many elements; `a` must be contiguous. */
  reshape(a: Tensor, shape: Shape): Tensor {
    this.#own(a);
    this.#reserve(1, "reshape");
    const count = shape.reduce((x, y) => x * y, 1);
    if (shape.length < 1 || shape.length > 4 || !shape.every((d) => Number.isSafeInteger(d) && d >= 1) || count !== a.elements) {
      throw new GgmlShapeError("reshape", `cannot reshape ${shapeText(a)} (${a.elements} elements) to [${shape.join(", ")}]`);
    }
    if (!a.contiguous) throw new GgmlShapeError("reshape", `${shapeText(a)} is not contiguous: make it so with cont() first`);
    const s = this.lib.symbols;
    const [x, y = 1, z = 1, w = 1] = shape;
    const ptr = shape.length === 1 ? s.ggml_reshape_1d(this.#handle, a.ptr, i64(x!))
      : shape.length === 2 ? s.ggml_reshape_2d(this.#handle, a.ptr, i64(x!), i64(y))
      : shape.length === 3 ? s.ggml_reshape_3d(this.#handle, a.ptr, i64(x!), i64(y), i64(z))
      : s.ggml_reshape_4d(this.#handle, a.ptr, i64(x!), i64(y), i64(z), i64(w));
    return this.#wrap(ptr, "ggml_reshape");
  }

  /**
   * A view of `a`: `shape` elements with byte strides `strides` (nb1, nb2, nb3, one fewer than
   * dimensions) starting `offset` bytes in. The view must stay inside `a`.
   */
  view(a: Tensor, shape: Shape, strides: readonly number[], offset: number): Tensor {
    this.#own(a);
    this.#reserve(1, "view");
    if (shape.length < 1 || shape.length > 4 || strides.length !== shape.length - 1) throw new GgmlShapeError("view", `a view has 1 to 4 dimensions and one stride fewer, got [${shape.join(", ")}] and [${strides.join(", ")}]`);
    const rowBytes = Number(this.lib.symbols.ggml_row_size(a.type, i64(shape[0]!)));
    const last = shape.slice(1).reduce((end, n, i) => end + (n - 1) * strides[i]!, offset + rowBytes);
    if (!(Number.isSafeInteger(offset) && offset >= 0) || last > a.byteLength) throw new GgmlShapeError("view", `[${shape.join(", ")}] at offset ${offset} reaches byte ${last} of a ${a.byteLength}-byte tensor`);
    const s = this.lib.symbols;
    const [x, y = 1, z = 1, w = 1] = shape.map(i64);
    const [n1 = 0, n2 = 0, n3 = 0] = strides;
    const ptr = shape.length === 1 ? s.ggml_view_1d(this.#handle, a.ptr, x!, offset)
      : shape.length === 2 ? s.ggml_view_2d(this.#handle, a.ptr, x!, y, n1, offset)
      : shape.length === 3 ? s.ggml_view_3d(this.#handle, a.ptr, x!, y, z, n1, n2, offset)
      : s.ggml_view_4d(this.#handle, a.ptr, x!, y, z, w, n1, n2, n3, offset);
    return this.#wrap(ptr, "ggml_view");
  }

  /** Moves dimension i of `a` to position axes[i] (ggml's convention). */
  permute(a: Tensor, axes: readonly [number, number, number, number]): Tensor {
    this.#own(a);
    this.#reserve(1, "permute");
    if ([...axes].sort().join() !== "0,1,2,3") throw new GgmlShapeError("permute", `axes must be a permutation of 0..3, got [${axes.join(", ")}]`);
    return this.#wrap(this.lib.symbols.ggml_permute(this.#handle, a.ptr, axes[0], axes[1], axes[2], axes[3]), "ggml_permute");
  }

  transpose(a: Tensor): Tensor {
    this.#own(a);
    this.#reserve(1, "transpose");
    return this.#wrap(this.lib.symbols.ggml_transpose(this.#handle, a.ptr), "ggml_transpose");
  }

  /** Rows of `a` picked by the I32 indices in `rows`: [a0, rows.ne0, …]. */
  getRows(a: Tensor, rows: Tensor): Tensor {
    this.#own(a, rows);
    this.#reserve(1, "get_rows");
    if (rows.type !== TensorType.I32) throw new GgmlShapeError("get_rows", `row indices must be I32, got ${typeName(rows.type)}`);
    if (a.shape4[2] !== rows.shape4[1] && a.shape4[2] !== 1) throw new GgmlShapeError("get_rows", `${shapeText(a)} and indices ${shapeText(rows)} do not match`);
    return this.#wrap(this.lib.symbols.ggml_get_rows(this.#handle, a.ptr, rows.ptr), "ggml_get_rows");
  }

  /** `a` with its rows at the I32 indices `rows` replaced by the rows of `b` (in place: a view of `a`; the indices must differ). */
  setRows(a: Tensor, b: Tensor, rows: Tensor): Tensor {
    this.#own(a, b, rows);
    this.#reserve(1, "set_rows");
    if (rows.type !== TensorType.I32) throw new GgmlShapeError("set_rows", `row indices must be I32, got ${typeName(rows.type)}`);
    if (b.shape4[0] !== a.shape4[0] || b.shape4[1] !== rows.shape4[0]) throw new GgmlShapeError("set_rows", `rows ${shapeText(b)} at indices ${shapeText(rows)} do not fit ${shapeText(a)}`);
    return this.#wrap(this.lib.symbols.ggml_set_rows(this.#handle, a.ptr, b.ptr, rows.ptr), "ggml_set_rows");
  }

  // ----- attention -----------------------------------------------------------------------------

  /** softmax(a·scale + mask) over each row; `mask` F32/F16 [ne0, ≥ ne1], broadcast over dimensions 2 and 3. */
  softMax(a: Tensor, options: { mask?: Tensor; scale?: number } = {}): Tensor {
    const { mask, scale = 1 } = options;
    this.#own(a, mask);
    this.#reserve(1, "soft_max");
    if (a.type !== TensorType.F32) throw new GgmlShapeError("soft_max", `takes F32, got ${typeName(a.type)}`);
    if (mask !== undefined) {
      const [m0, m1, m2, m3] = mask.shape4;
      const [a0, a1, a2, a3] = a.shape4;
      if (m0 !== a0 || m1! < a1! || a2! % m2! !== 0 || a3! % m3! !== 0) throw new GgmlShapeError("soft_max", `mask ${shapeText(mask)} does not fit ${shapeText(a)}`);
      if (mask.type !== TensorType.F32 && mask.type !== TensorType.F16) throw new GgmlShapeError("soft_max", `the mask must be F32 or F16, got ${typeName(mask.type)}`);
    }
    return this.#wrap(this.lib.symbols.ggml_soft_max_ext(this.#handle, a.ptr, mask?.ptr ?? 0, scale, 0), "ggml_soft_max_ext");
  }

  /** Rotary position embedding of `a` [head, heads, tokens, 1] at the I32 positions `positions` [tokens]. */
  rope(a: Tensor, positions: Tensor, options: RopeOptions): Tensor {
    const { dims, mode = "normal", freqBase = 10000, freqScale = 1, contextLength = 0, factors } = options;
    this.#own(a, positions, factors);
    this.#reserve(1, "rope");
    if (positions.type !== TensorType.I32 || positions.shape4[0] !== a.shape4[2]) throw new GgmlShapeError("rope", `positions must be I32 [${a.shape4[2]}], got ${typeName(positions.type)} ${shapeText(positions)}`);
    if (!Number.isSafeInteger(dims) || dims < 2 || dims % 2 !== 0 || dims > a.shape4[0]!) throw new GgmlShapeError("rope", `dims must be even and at most ${a.shape4[0]}, got ${dims}`);
    if (factors !== undefined && (factors.type !== TensorType.F32 || factors.shape4[0]! < dims / 2)) throw new GgmlShapeError("rope", `frequency factors must be F32 [${dims / 2}], got ${shapeText(factors)}`);
    return this.#wrap(
      this.lib.symbols.ggml_rope_ext(this.#handle, a.ptr, positions.ptr, factors?.ptr ?? 0, dims, RopeType[mode], contextLength, freqBase, freqScale, 0, 1, 32, 1),
      "ggml_rope_ext",
    );
  }

  // ----- losses and optimizers -----------------------------------------------------------------

  /** Mean over rows of −Σ labels·log softmax(logits): a one-element tensor. */
  crossEntropy(logits: Tensor, labels: Tensor): Tensor {
    this.#own(logits, labels);
    this.#reserve(1, "cross_entropy_loss");
    if (!logits.shape4.every((n, i) => n === labels.shape4[i])) throw new GgmlShapeError("cross_entropy_loss", `logits ${shapeText(logits)} and labels ${shapeText(labels)} differ`);
    return this.#wrap(this.lib.symbols.ggml_cross_entropy_loss(this.#handle, logits.ptr, labels.ptr), "ggml_cross_entropy_loss");
  }

  /** One AdamW step of `param` in place: `hyper` F32 [7] = [lr, β1, β2, ε, wd, 1/(1−β1^t), 1/(1−β2^t)]. */
  adamwStep(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, hyper: Tensor): Tensor {
    this.#own(param, grad, m, v, hyper);
    this.#reserve(1, "opt_step_adamw");
    for (const t of [grad, m, v]) if (!t.sameShape(param) || t.type !== TensorType.F32) throw new GgmlShapeError("opt_step_adamw", `gradient and moments must be F32 ${shapeText(param)}, got ${typeName(t.type)} ${shapeText(t)}`);
    if (param.type !== TensorType.F32 || hyper.elements !== 7) throw new GgmlShapeError("opt_step_adamw", "takes an F32 parameter and 7 hyper-parameters");
    return this.#wrap(this.lib.symbols.ggml_opt_step_adamw(this.#handle, param.ptr, grad.ptr, m.ptr, v.ptr, hyper.ptr), "ggml_opt_step_adamw");
  }

  /** One SGD step of `param` in place: `hyper` F32 [2] = [lr, wd]. */
  sgdStep(param: Tensor, grad: Tensor, hyper: Tensor): Tensor {
    this.#own(param, grad, hyper);
    this.#reserve(1, "opt_step_sgd");
    if (!grad.sameShape(param) || param.type !== TensorType.F32 || grad.type !== TensorType.F32 || hyper.elements !== 2) throw new GgmlShapeError("opt_step_sgd", "takes an F32 parameter, its F32 gradient and 2 hyper-parameters");
    return this.#wrap(this.lib.symbols.ggml_opt_step_sgd(this.#handle, param.ptr, grad.ptr, hyper.ptr), "ggml_opt_step_sgd");
  }

  // ----- graphs --------------------------------------------------------------------------------

  /** A graph of at most `size` nodes; `grads` makes room for a backward pass. */
  graph(size: number, options: { grads?: boolean } = {}): ComputeGraph {
    this.assertLive();
    const grads = options.grads ?? false;
    if (!Number.isSafeInteger(size) || size < 1) throw new GgmlError("ERR_GGML_ARGUMENT", `a graph size is a positive integer, got ${size}`);
    const bytes = this.lib.symbols.ggml_graph_overhead_custom(size, grads);
    if (this.#capacity - this.usedBytes < bytes) throw new GgmlError("ERR_GGML_CONTEXT_FULL", `a graph of ${size} nodes needs ${bytes} bytes of the context; make it with room for its graphs`);
    const handle = this.lib.symbols.ggml_new_graph_custom(this.#handle, size, grads);
    return new ComputeGraph(this, handle, size, grads);
  }
}

/** A computation graph (`ggml_cgraph`) in a context; it lives as long as its context. */
export class ComputeGraph {
  /** @internal */
  constructor(
    readonly ctx: GgmlContext,
    readonly handle: Pointer,
    readonly size: number,
    readonly hasGrads: boolean,
  ) {}

  /** @internal */
  get live(): Pointer {
    this.ctx.live;
    return this.handle;
  }

  get nodeCount(): number {
    return this.ctx.lib.symbols.ggml_graph_n_nodes(this.live);
  }

  /** The node at `index` (negative counts from the end). */
  node(index: number): Tensor {
    const n = this.nodeCount;
    if (!Number.isSafeInteger(index) || index >= n || index < -n) throw new GgmlError("ERR_GGML_ARGUMENT", `node ${index} of a graph of ${n} nodes`);
    return new Tensor(this.ctx, this.ctx.lib.symbols.ggml_graph_node(this.handle, index));
  }

  /** Adds `tensor` and everything it depends on. */
  expand(tensor: Tensor): this {
    tensor.assertUsable();
    // ggml_build_forward_expand asserts when the graph is full: a node adds at most its unvisited sources.
    const before = this.nodeCount;
    if (before >= this.size) throw new GgmlError("ERR_GGML_GRAPH_FULL", `the graph holds ${this.size} nodes and is full`);
    this.ctx.lib.symbols.ggml_build_forward_expand(this.handle, tensor.ptr);
    return this;
  }

  /**
   * Adds the backward pass: the gradient of every tensor marked loss with respect to every tensor
   * marked param. `accumulators` maps a node (a param or a loss) to a persistent F32 tensor of its
   * shape that the gradient is added into (a loss's accumulator holds the gradient fed into the
   * backward pass, normally 1). Tensors the backward pass creates go into `ctx`.
   */
  backward(ctx: GgmlContext, accumulators: ReadonlyMap<Tensor, Tensor> = new Map()): this {
    if (!this.hasGrads) throw new GgmlError("ERR_GGML_ARGUMENT", "this graph was made without room for gradients ({ grads: true })");
    const n = this.nodeCount;
    const nodes = Array.from({ length: n }, (_, i) => this.ctx.lib.symbols.ggml_graph_node(this.handle, i));
    const flags = nodes.map((p) => new Tensor(this.ctx, p).flags);
    if (!flags.some((f) => (f & 4) !== 0)) throw new GgmlError("ERR_GGML_ARGUMENT", "the graph has no tensor marked param: nothing to differentiate");
    if (!flags.some((f) => (f & 8) !== 0)) throw new GgmlError("ERR_GGML_ARGUMENT", "the graph has no tensor marked loss");
    // The backward pass makes a few tensors per forward node; its graph must hold them too.
    if (ctx.freeTensors < 8 * n) throw new GgmlError("ERR_GGML_CONTEXT_FULL", `the backward pass of ${n} nodes may need ${8 * n} tensors; the context has room for ${ctx.freeTensors}`);
    if (this.size < 4 * n) throw new GgmlError("ERR_GGML_GRAPH_FULL", `the backward pass of ${n} nodes needs a graph of about ${4 * n}; this one holds ${this.size}`);
    const accs = new BigUint64Array(n);
    for (const [node, acc] of accumulators) {
      const i = nodes.indexOf(node.ptr);
      if (i < 0) throw new GgmlError("ERR_GGML_ARGUMENT", `an accumulator was given for ${node.name || "a tensor"}, which is not a node of the graph`);
      if (!acc.sameShape(node) || acc.type !== TensorType.F32) throw new GgmlShapeError("backward", `the accumulator of ${node.name} must be F32 ${shapeText(node)}`);
      accs[i] = BigInt(acc.ptr);
    }
    this.ctx.lib.symbols.ggml_build_backward_expand(ctx.live, this.handle, accs);
    return this;
  }

  /**
   * Rewrites every out_prod(W, transpose(g)) — how ggml's backward pass takes the gradient of
   * mul_mat(W, x) with respect to x — into mul_mat(Wᵀ, g), where `transposed` maps W's pointer to
   * a contiguous F32 Wᵀ: a persistent copy, or a node computed before the backward pass. The values are the same; the CPU backend runs mul_mat on its
   * tiled GEMM kernels and out_prod as a row-by-row multiply-add, 2.5× slower (measured on a
   * training step). Call it after {@link backward} and before the graph is allocated. Returns
   * the nodes rewritten.
   */
  transposeProducts(transposed: ReadonlyMap<Pointer, Tensor>): number {
    this.live;
    let rewritten = 0;
    const used = new Set<Tensor>();
    const n = this.nodeCount;
    for (let i = 0; i < n; i++) {
      const node = this.node(i);
      if (node.op !== GgmlOp.outProd || node.type !== TensorType.F32) continue;
      const copy = transposed.get(node.sourcePtr(0));
      if (copy === undefined) continue;
      const view = new Tensor(this.ctx, node.sourcePtr(1));
      if (view.op !== GgmlOp.transpose) continue;
      const grad = new Tensor(this.ctx, view.sourcePtr(0));
      const [c, g, n] = [copy.shape4, grad.shape4, node.shape4];
      const fits = c[0] === g[0] && c[1] === n[0] && g[1] === n[1] && g[2] === n[2] && g[3] === n[3] && g[2]! % c[2]! === 0 && g[3]! % c[3]! === 0;
      if (!fits || grad.type !== TensorType.F32 || !grad.contiguous || copy.type !== TensorType.F32 || !copy.contiguous) continue;
      node.recompute(GgmlOp.mulMat, [copy, grad]);
      used.add(copy);
      rewritten++;
    }
    // The copies join the graph as leaves, so the scheduler places them with the weights.
    for (const copy of used) this.expand(copy);
    return rewritten;
  }

  /** The gradient of `tensor` after {@link backward}, or undefined where the loss does not depend on it. */
  grad(tensor: Tensor): Tensor | undefined {
    const ptr = this.ctx.lib.symbols.ggml_graph_get_grad(this.live, tensor.ptr);
    return ptr === 0 ? undefined : new Tensor(this.ctx, ptr);
  }
}
