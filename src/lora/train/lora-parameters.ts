// The trainable side: an A [n_in, r] and B [r, n_out] pair in F32 per adapted base matrix (the
// layout llama.cpp's adapters use), their optimizer moments, and their gradient accumulators,
// each group in its own backend buffer so that one call clears the accumulators of a step.
import { seededRandom } from "../../formats/index.ts";
import { BackendBuffer, type GgmlBackend, GgmlContext, type Tensor, TensorType } from "../../ggml/index.ts";
import { type LlamaShape, type Target, targetWeight } from "./architecture.ts";
import { TrainingError } from "./errors.ts";
import type { LoraWeights } from "./lora-weights.ts";

export interface LoraPairTensors {
  /** The base matrix adapted, e.g. `blk.0.attn_q.weight`. */
  readonly weight: string;
  readonly layer: number;
  readonly target: Target;
  readonly nIn: number;
  readonly nOut: number;
  readonly a: Tensor;
  readonly b: Tensor;
}

/** One trainable tensor with its moments and gradient accumulator. */
export interface Parameter {
  /** `<weight>.lora_a` or `<weight>.lora_b`: the adapter GGUF's tensor name. */
  readonly name: string;
  readonly value: Tensor;
  readonly m: Tensor;
  readonly v: Tensor;
  readonly grad: Tensor;
}

/** In and out widths of a target's matrix. */
export function targetDims(shape: LlamaShape, target: Target): [number, number] {
  const kv = shape.kvHeads * shape.headDim;
  switch (target) {
    case "q": return [shape.embd, shape.embd];
    case "k": return [shape.embd, kv];
    case "v": return [shape.embd, kv];
    case "o": return [shape.embd, shape.embd];
    case "gate": return [shape.embd, shape.ff];
    case "up": return [shape.embd, shape.ff];
    case "down": return [shape.ff, shape.embd];
  }
}

export class LoraParameters implements Disposable {
  /** Pairs by base weight name. */
  readonly byWeight: ReadonlyMap<string, LoraPairTensors>;

  private constructor(
    readonly rank: number,
    readonly alpha: number,
    readonly targets: readonly Target[],
    readonly pairs: readonly LoraPairTensors[],
    readonly parameters: readonly Parameter[],
    private readonly contexts: GgmlContext[],
    private readonly buffers: { values: BackendBuffer; moments: BackendBuffer; grads: BackendBuffer },
    /**
     * Two F32 beside the accumulators, all-reduced with them: a rank's share of the step's loss,
     * and its vote (0 or 1) to stop after this step, so that every rank stops at the same step.
     */
    readonly stepSlot: Tensor,
  ) {
    this.byWeight = new Map(pairs.map((p) => [p.weight, p]));
  }

  /** llama.cpp's adapter scale: alpha / rank (alpha 0 means a scale of 1). */
  get scale(): number {
    return this.alpha === 0 ? 1 : this.alpha / this.rank;
  }

  static create(shape: LlamaShape, options: { rank: number; alpha: number; targets: readonly Target[] }, backend: GgmlBackend): LoraParameters {
    const { rank, alpha, targets } = options;
    const count = shape.layers * targets.length * 2;
    const lib = backend.ggml.base;
    const [values, moments, grads] = [count, 2 * count, count + 1].map((tensors) => new GgmlContext(lib, { tensors })) as [GgmlContext, GgmlContext, GgmlContext];
    const pairs: LoraPairTensors[] = [];
    const parameters: Parameter[] = [];
    for (let layer = 0; layer < shape.layers; layer++) {
      for (const target of targets) {
        const weight = targetWeight(layer, target);
        const [nIn, nOut] = targetDims(shape, target);
        const a = values.tensor(TensorType.F32, [nIn, rank], `${weight}.lora_a`).markParam();
        const b = values.tensor(TensorType.F32, [rank, nOut], `${weight}.lora_b`).markParam();
        pairs.push({ weight, layer, target, nIn, nOut, a, b });
        for (const value of [a, b]) {
          const like = (ctx: GgmlContext, suffix: string) => ctx.tensor(TensorType.F32, value.shape, `${value.name}.${suffix}`);
          parameters.push({ name: value.name, value, m: like(moments, "m"), v: like(moments, "v"), grad: like(grads, "grad") });
        }
      }
    }
    const stepSlot = grads.tensor(TensorType.F32, [2], "loss sum and stop votes");
    const allocated: BackendBuffer[] = [];
    try {
      for (const ctx of [values, moments, grads]) allocated.push(BackendBuffer.allocate(ctx, backend));
    } catch (error) {
      for (const b of allocated) b.dispose();
      for (const c of [values, moments, grads]) c.dispose();
      throw error;
    }
    const [valuesBuffer, momentsBuffer, gradsBuffer] = allocated as [BackendBuffer, BackendBuffer, BackendBuffer];
    momentsBuffer.clear();
    gradsBuffer.clear();
    return new LoraParameters(rank, alpha, targets, pairs, parameters, [values, moments, grads], { values: valuesBuffer, moments: momentsBuffer, grads: gradsBuffer }, stepSlot);
  }

  /** PEFT's initialization: A Kaiming-uniform (a = √5, so U(−1/√n_in, 1/√n_in)), B zero. */
  initialize(seed: number): void {
    const random = seededRandom(seed);
    for (const pair of this.pairs) {
      const bound = 1 / Math.sqrt(pair.nIn);
      const a = new Float32Array(pair.nIn * this.rank);
      for (let i = 0; i < a.length; i++) a[i] = (random() * 2 - 1) * bound;
      pair.a.write(a);
      pair.b.write(new Float32Array(this.rank * pair.nOut));
    }
    this.buffers.moments.clear();
  }

  /** Sets A and B from an adapter of the same rank and targets (continuing it). */
  load(weights: LoraWeights): void {
    if (weights.rank !== this.rank) throw new TrainingError("ERR_TRAIN_ARGUMENT", `the adapter has rank ${weights.rank}, the trainer ${this.rank}`);
    const given = new Map(weights.pairs.map((p) => [p.weight, p]));
    for (const pair of this.pairs) {
      const p = given.get(pair.weight);
      if (p === undefined) throw new TrainingError("ERR_TRAIN_ARGUMENT", `the adapter has no ${pair.weight}`);
      if (p.nIn !== pair.nIn || p.nOut !== pair.nOut) throw new TrainingError("ERR_TRAIN_ARGUMENT", `${pair.weight}: the adapter's ${p.nIn}→${p.nOut} does not match the base's ${pair.nIn}→${pair.nOut}`);
      pair.a.write(p.a);
      pair.b.write(p.b);
    }
    if (given.size !== this.pairs.length) throw new TrainingError("ERR_TRAIN_ARGUMENT", `the adapter adapts ${given.size} matrices, the trainer ${this.pairs.length}`);
  }

  /** A copy of the adapter's current A and B. */
  read(architecture: string): LoraWeights {
    return {
      architecture,
      rank: this.rank,
      alpha: this.alpha,
      targets: [...this.targets],
      pairs: this.pairs.map((p) => ({ weight: p.weight, nIn: p.nIn, nOut: p.nOut, a: p.a.read(), b: p.b.read() })),
    };
  }

  /** AdamW's moments by parameter name. */
  readMoments(): Map<string, { m: Float32Array; v: Float32Array }> {
    return new Map(this.parameters.map((p) => [p.name, { m: p.m.read(), v: p.v.read() }]));
  }

  /** Restores the moments a checkpoint saved (none: zero, as SGD keeps). */
  loadMoments(moments: ReadonlyMap<string, { readonly m: Float32Array; readonly v: Float32Array }>): void {
    if (moments.size === 0) return this.clearMoments();
    for (const p of this.parameters) {
      const saved = moments.get(p.name);
      if (saved === undefined || saved.m.length !== p.value.elements || saved.v.length !== p.value.elements) throw new TrainingError("ERR_TRAIN_CHECKPOINT", `the checkpoint's moments of ${p.name} are missing or of another size`);
      p.m.write(saved.m);
      p.v.write(saved.v);
    }
  }

  /** Zeroes every gradient accumulator (before the first micro-batch of a step). */
  clearGradients(): void {
    this.buffers.grads.clear();
  }

  /** Zeroes the optimizer moments. */
  clearMoments(): void {
    this.buffers.moments.clear();
  }

  /** @internal The accumulators' memory (and the step slot): one contiguous range, all-reduced at once across ranks. */
  get gradientBuffer(): BackendBuffer {
    return this.buffers.grads;
  }

  /** Bytes on the backend: values, moments and accumulators. */
  get bytes(): number {
    return this.buffers.values.byteLength + this.buffers.moments.byteLength + this.buffers.grads.byteLength;
  }

  dispose(): void {
    for (const b of Object.values(this.buffers)) b.dispose();
    for (const c of this.contexts) c.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
