// Tensor: a handle to one `struct ggml_tensor` in a GgmlContext. Shape, strides, type, flags and
// name are read from the struct in place (its layout is ABI: graph-bindings.ts); the ops are the
// context's methods, offered here on the tensor for readable graph code (`x.mul(w).add(y)`).
import { type Pointer, nativeView } from "../ffi/index.ts";
import { GgmlType, ggmlTypeInfo } from "../formats/index.ts";
import { GgmlError, GgmlShapeError } from "./errors.ts";
import { GGML_MAX_SRC, TensorFlag, ggmlTensor } from "./graph-bindings.ts";
import type { GgmlContext, RopeOptions } from "./context.ts";

/** ne0 first, up to 4 dimensions. */
export type Shape = readonly number[];

/** The element types graphs use most; any ggml type id is accepted where a type is asked for. */
export const TensorType = { F32: GgmlType.F32, F16: GgmlType.F16, BF16: GgmlType.BF16, Q8_0: GgmlType.Q8_0, Q4_0: GgmlType.Q4_0, I32: GgmlType.I32 } as const;

const field = Object.fromEntries(ggmlTensor.layout.map((f) => [f.name, f.offset])) as Record<keyof typeof ggmlTensor.fields, number>;

/** A ggml type's name ("F32", "Q8_0", …); throws for an id ggml does not know. */
export function typeName(type: number): string {
  const info = ggmlTypeInfo(type);
  if (info === undefined) throw new GgmlError("ERR_GGML_ARGUMENT", `${type} is not a ggml type`);
  return info.name;
}

/** `[64, 8, 1, 1] F32` for messages. */
export function shapeText(t: Tensor): string {
  return `${t.name ? `${t.name} ` : ""}[${t.shape.join(", ")}] ${typeName(t.type)}`;
}

type Data = Float32Array | Int32Array | Uint16Array | Uint8Array;

export class Tensor {
  #view: DataView | undefined;
  #shape: number[] | undefined;

  /** @internal Tensors are made by a GgmlContext. */
  constructor(
    readonly ctx: GgmlContext,
    /** @internal `struct ggml_tensor *` */
    readonly ptr: Pointer,
  ) {}

  #struct(): DataView {
    this.ctx.live;
    return (this.#view ??= new DataView(nativeView(this.ptr, ggmlTensor.size)));
  }

  /** @internal Throws if the tensor's context was freed. */
  assertUsable(): void {
    this.ctx.live;
  }

  /** The ggml type id (see {@link TensorType}). */
  get type(): number {
    return this.#struct().getInt32(field.type, true);
  }

  /** The shape without trailing 1s (ne0 first), at least one dimension. */
  get shape(): number[] {
    const four = this.shape4;
    let n = 4;
    while (n > 1 && four[n - 1] === 1) n--;
    return four.slice(0, n);
  }

  /** All four ne. */
  get shape4(): number[] {
    if (this.#shape === undefined) {
      const view = this.#struct();
      this.#shape = [0, 1, 2, 3].map((i) => Number(view.getBigInt64(field.ne + 8 * i, true)));
    }
    return this.#shape;
  }

  /** Byte strides nb0..nb3. */
  get strides(): number[] {
    const view = this.#struct();
    return [0, 1, 2, 3].map((i) => Number(view.getBigUint64(field.nb + 8 * i, true)));
  }

  get elements(): number {
    return this.shape4.reduce((a, b) => a * b, 1);
  }

  /** Bytes of data (`ggml_nbytes`). */
  get byteLength(): number {
    return this.ctx.lib.symbols.ggml_nbytes(this.ptr);
  }

  get flags(): number {
    return this.#struct().getInt32(field.flags, true);
  }

  /** The op that computes the tensor (`enum ggml_op`; 0 for a leaf). */
  get op(): number {
    return this.#struct().getInt32(field.op, true);
  }

  /** @internal The `i`th source's `struct ggml_tensor *` (0 where there is none). */
  sourcePtr(i: number): Pointer {
    return Number(this.#struct().getBigUint64(field.src + 8 * i, true)) as Pointer;
  }

  /**
   * @internal Turns the node into `op` over `sources` in place, for a graph rewrite that keeps
   * its shape, type and every consumer; only before the graph is allocated.
   */
  recompute(op: number, sources: readonly Tensor[]): void {
    this.assertUsable();
    if (sources.length > GGML_MAX_SRC) throw new GgmlError("ERR_GGML_ARGUMENT", `${sources.length} sources: a node has at most ${GGML_MAX_SRC}`);
    const view = this.#struct();
    view.setInt32(field.op, op, true);
    for (let i = 0; i < GGML_MAX_SRC; i++) view.setBigUint64(field.src + 8 * i, BigInt(sources[i]?.ptr ?? 0), true);
  }

  /** The rows are laid out one after the other (no permuted or transposed view). */
  get contiguous(): boolean {
    const info = ggmlTypeInfo(this.type)!;
    const [n0, n1, n2] = this.shape4;
    const nb = this.strides;
    return nb[0] === info.typeSize && nb[1] === (nb[0]! * n0!) / info.blockSize && nb[2] === nb[1]! * n1! && nb[3] === nb[2]! * n2!;
  }

  get transposed(): boolean {
    const nb = this.strides;
    return nb[0]! > nb[1]!;
  }

  get name(): string {
    const bytes = new Uint8Array(this.#struct().buffer, field.name, 64);
    const end = bytes.indexOf(0);
    return new TextDecoder().decode(bytes.subarray(0, end < 0 ? 64 : end));
  }

  /** Names longer than 63 bytes are cut by ggml. */
  set name(value: string) {
    this.assertUsable();
    this.ctx.lib.symbols.ggml_set_name(this.ptr, value);
  }

  sameShape(other: Tensor): boolean {
    return this.shape4.every((n, i) => n === other.shape4[i]);
  }

  /** Marks the tensor trainable: the backward pass computes its gradient. */
  markParam(): this {
    this.#flag(TensorFlag.param, "ggml_set_param");
    return this;
  }

  /** Marks the tensor a loss (one element): the backward pass differentiates it. */
  markLoss(): this {
    if (this.elements !== 1 || this.type !== TensorType.F32) throw new GgmlShapeError("set_loss", `a loss is one F32 element, got ${shapeText(this)}`);
    this.#flag(TensorFlag.loss, "ggml_set_loss");
    return this;
  }

  /** Marks the tensor a graph input: the scheduler allocates it first and never reuses its memory early. */
  markInput(): this {
    this.#flag(TensorFlag.input, "ggml_set_input");
    return this;
  }

  /** Marks the tensor a graph output: its data survives the computation. */
  markOutput(): this {
    this.#flag(TensorFlag.output, "ggml_set_output");
    return this;
  }

  #flag(flag: number, fn: "ggml_set_param" | "ggml_set_loss" | "ggml_set_input" | "ggml_set_output"): void {
    this.assertUsable();
    if (fn === "ggml_set_param" && this.type !== TensorType.F32 && this.type !== TensorType.F16) throw new GgmlShapeError("set_param", `a parameter is F32 or F16, got ${shapeText(this)}`);
    if ((this.flags & flag) === 0) this.ctx.lib.symbols[fn](this.ptr);
  }

  /** Whether the tensor's data has been placed in a buffer (a BackendBuffer, or a scheduler's). */
  get allocated(): boolean {
    const view = this.#struct();
    return view.getBigUint64(field.buffer, true) !== 0n && view.getBigUint64(field.data, true) !== 0n;
  }

  #checkData(data: Data, byteOffset: number, what: string): void {
    if (!this.allocated) throw new GgmlError("ERR_GGML_UNALLOCATED", `${what} ${shapeText(this)}: the tensor has no data yet (allocate its context or graph first)`);
    const end = byteOffset + data.byteLength;
    if (!Number.isSafeInteger(byteOffset) || byteOffset < 0 || end > this.byteLength) {
      throw new GgmlError("ERR_GGML_ARGUMENT", `${what} ${shapeText(this)}: bytes ${byteOffset}…${end} are outside its ${this.byteLength} bytes`);
    }
  }

  /** Copies `data` into the tensor (wherever its buffer lives) at `byteOffset`. */
  write(data: Data, byteOffset = 0): void {
    this.#checkData(data, byteOffset, "write");
    this.ctx.lib.symbols.ggml_backend_tensor_set(this.ptr, data, byteOffset, data.byteLength);
  }

  /** Copies the tensor's data (or `into.byteLength` bytes at `byteOffset`) out. */
  read<T extends Data = Float32Array>(into?: T, byteOffset = 0): T {
    const out = (into ?? new Float32Array(this.byteLength / 4)) as T;
    this.#checkData(out, byteOffset, "read");
    this.ctx.lib.symbols.ggml_backend_tensor_get(this.ptr, out, byteOffset, out.byteLength);
    return out;
  }

  /** Sets every byte (of `byteLength` bytes at `byteOffset`) to `value`. */
  fill(value = 0, byteOffset = 0, byteLength?: number): void {
    byteLength ??= this.byteLength - byteOffset;
    this.#checkData(new Uint8Array(byteLength), byteOffset, "fill");
    this.ctx.lib.symbols.ggml_backend_tensor_memset(this.ptr, value, byteOffset, byteLength);
  }

  // ----- ops, results in this tensor's context ---------------------------------------------------

  add(b: Tensor): Tensor { return this.ctx.add(this, b); }
  mul(b: Tensor): Tensor { return this.ctx.mul(this, b); }
  /** W·x: `weight` [n_in, n_out] applied to this [n_in, tokens]. */
  linear(weight: Tensor): Tensor { return this.ctx.mulMat(weight, this); }
  scale(s: number): Tensor { return this.ctx.scale(this, s); }
  rmsNorm(eps: number): Tensor { return this.ctx.rmsNorm(this, eps); }
  silu(): Tensor { return this.ctx.silu(this); }
  sum(): Tensor { return this.ctx.sum(this); }
  sqr(): Tensor { return this.ctx.sqr(this); }
  log(): Tensor { return this.ctx.log(this); }
  cont(): Tensor { return this.ctx.cont(this); }
  cast(type: number): Tensor { return this.ctx.cast(this, type); }
  reshape(...shape: number[]): Tensor { return this.ctx.reshape(this, shape); }
  permute(a0: number, a1: number, a2: number, a3: number): Tensor { return this.ctx.permute(this, [a0, a1, a2, a3]); }
  transpose(): Tensor { return this.ctx.transpose(this); }
  softMax(options?: { mask?: Tensor; scale?: number }): Tensor { return this.ctx.softMax(this, options); }
  rope(positions: Tensor, options: RopeOptions): Tensor { return this.ctx.rope(this, positions, options); }
}
