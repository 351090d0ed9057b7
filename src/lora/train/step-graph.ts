// The two graphs a training step runs. LossGraph: forward and (when training) backward over one
// micro-batch, adding the LoRA gradients into the parameters' accumulators. OptimizerGraph: the
// gradient norm, clipping, and one AdamW or SGD step per parameter. Each keeps its own scheduler,
// so both stay allocated between steps and a step re-plans nothing.
import { BackendBuffer, type ComputeGraph, type GgmlBackend, GgmlContext, Scheduler, type Tensor, TensorType } from "../../ggml/index.ts";
import type { TrainingSequence } from "./dataset.ts";
import { type BatchInputs, type LlamaGraphParts, batchInputs, buildLlamaLoss } from "./llama-graph.ts";
import type { LoraParameters } from "./lora-parameters.ts";
import { TrainingError } from "./errors.ts";

/** Forward (+ backward) over `batch` sequences of `seqLen` positions. */
export class LossGraph implements Disposable {
  readonly #ctx: GgmlContext;
  readonly #graph: ComputeGraph;
  readonly #inputs: BatchInputs;
  readonly #loss: Tensor;
  readonly #sched: Scheduler;
  // Tensors that persist on the training device: the one-hot labels (set_rows writes into them in
  // place, and the scheduler gives an in-place view of a graph input no device memory: on CUDA
  // that wrote through a null base, measured with compute-sanitizer on the H200) and the loss's
  // gradient seed.
  readonly #persistent: { ctx: GgmlContext; buffer: BackendBuffer; labels: Tensor; seed: Tensor };
  readonly #mask: Float32Array;
  readonly #positions: Int32Array;

  constructor(
    readonly parts: LlamaGraphParts,
    backends: readonly GgmlBackend[],
    readonly train: boolean,
  ) {
    const { shape, seqLen, batch } = parts;
    const lib = backends[0]!.ggml.base;
    // A llama block is about 60 nodes, each adapted projection 4 more; the backward pass triples that.
    const nodes = (2 + shape.layers) * (64 + 4 * parts.lora.targets.length) * (train ? 4 : 1) + 64;
    const size = Math.max(2048, 2 ** Math.ceil(Math.log2(nodes * 2)));
    // What is made here is freed here if a later part fails (an allocation that does not fit):
    // the labels alone can be gigabytes of device memory.
    const made: Disposable[] = [];
    const keep = <T extends Disposable>(resource: T): T => (made.push(resource), resource);
    try {
      this.#ctx = keep(new GgmlContext(lib, { tensors: size * 2, graphs: { count: 1, size, grads: train } }));
      const persistentCtx = keep(new GgmlContext(lib, { tensors: 2 }));
      const labels = persistentCtx.tensor(TensorType.F32, [shape.vocab, seqLen * batch], "labels");
      const seed = persistentCtx.tensor(TensorType.F32, [1], "loss seed");
      this.#persistent = { ctx: persistentCtx, buffer: keep(BackendBuffer.allocate(persistentCtx, backends[0]!)), labels, seed };
      this.#inputs = batchInputs(this.#ctx, seqLen, batch, labels);
      // On the CPU the backward pass multiplies with transposes (BaseWeights explains why).
      const transposes = train && parts.base.transposed.size > 0 ? new Map(parts.base.transposed) : undefined;
      this.#loss = buildLlamaLoss(this.#ctx, parts, this.#inputs, transposes);
      this.#graph = this.#ctx.graph(size, { grads: train }).expand(this.#loss);
      for (const [source, transposed] of transposes ?? []) if (!parts.base.transposed.has(source)) this.#graph.expand(transposed);
      if (train) {
        const accumulators = new Map<Tensor, Tensor>([[this.#loss, seed]]);
        for (const p of parts.lora.parameters) accumulators.set(p.value, p.grad);
        this.#graph.backward(this.#ctx, accumulators);
        // Gradients must reach the accumulators even where a parameter's gradient is not otherwise used.
        for (const p of parts.lora.parameters) {
          const grad = this.#graph.grad(p.value);
          if (grad === undefined) throw new TrainingError("ERR_TRAIN_GRAPH", `${p.name} does not influence the loss`);
          this.#graph.expand(grad);
        }
        this.transposedProducts = transposes === undefined ? 0 : this.#graph.transposeProducts(transposes);
      }
      this.#sched = keep(new Scheduler(backends, { graphSize: size }));
      this.#sched.allocate(this.#graph);
    } catch (error) {
      for (const resource of made.reverse()) resource[Symbol.dispose]();
      throw error;
    }
    this.#mask = new Float32Array(seqLen * seqLen);
    for (let q = 0; q < seqLen; q++) for (let k = q + 1; k < seqLen; k++) this.#mask[q * seqLen + k] = -Infinity;
    this.#positions = new Int32Array(seqLen * batch).map((_, i) => i % seqLen);
  }

  get nodeCount(): number {
    return this.#graph.nodeCount;
  }

  /** Backward products through a frozen weight that multiply with its transposed copy (BaseWeights). */
  readonly transposedProducts: number = 0;

  /** Pieces the scheduler split the graph into between backends (1: one backend runs all of it). */
  get splits(): number {
    return this.#sched.splits;
  }

  /** Bytes of compute buffer per backend. */
  computeBytes(backend: GgmlBackend): number {
    return this.#sched.bufferBytes(backend);
  }

  /**
   * Runs the graph on `sequences` (at most `batch`; missing ones are padding) with every counted
   * position weighted 1/`stepCounted`: the returned loss is this micro-batch's share of the step's
   * mean, and the gradients added are its share of the step's gradient.
   */
  async run(sequences: readonly TrainingSequence[], stepCounted: number): Promise<number> {
    const { seqLen: T, batch: B, shape } = this.parts;
    if (sequences.length > B) throw new TrainingError("ERR_TRAIN_ARGUMENT", `${sequences.length} sequences for a batch of ${B}`);
    const n = T * B;
    const tokens = new Int32Array(n);
    const rows = new Int32Array(n);
    const rowMask = new Float32Array(n);
    const labelIndex = new Int32Array(n);
    let slot = 0;
    sequences.forEach((s, b) => {
      const length = s.tokens.length - 1;
      if (length > T) throw new TrainingError("ERR_TRAIN_ARGUMENT", `${s.source}: ${length + 1} tokens for sequences of ${T + 1}`);
      for (let t = 0; t < length; t++) {
        tokens[b * T + t] = s.tokens[t]!;
        if (!s.counted[t]) continue;
        rows[slot] = b * T + t;
        rowMask[slot] = 1;
        labelIndex[slot] = slot * shape.vocab + s.tokens[t + 1]!;
        slot++;
      }
    });
    for (let free = slot; free < n; free++) labelIndex[free] = free * shape.vocab;
    this.#sched.allocate(this.#graph);
    const i = this.#inputs;
    i.tokens.write(tokens);
    i.positions.write(this.#positions);
    i.mask.write(this.#mask);
    i.rows.write(rows);
    i.rowMask.write(rowMask);
    i.labels.fill(0);
    i.labelIndex.write(labelIndex);
    i.labelValue.write(rowMask);
    const share = n / stepCounted;
    if (this.train) this.#persistent.seed.write(new Float32Array([share]));
    await this.#sched.compute(this.#graph);
    return this.#loss.read(new Float32Array(1))[0]! * share;
  }

  dispose(): void {
    this.#sched.dispose();
    this.#ctx.dispose();
    this.#persistent.buffer.dispose();
    this.#persistent.ctx.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

export type OptimizerName = "adamw" | "sgd";

export interface OptimizerHyper {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Steps taken including this one (bias correction). */
  readonly step: number;
}

/** Gradient norm, clipping and one optimizer step for every LoRA parameter. */
export class OptimizerGraph implements Disposable {
  readonly #ctx: GgmlContext;
  readonly #graph: ComputeGraph;
  readonly #sched: Scheduler;
  readonly #hyper: Tensor;
  readonly #clipValue: Tensor | undefined;
  readonly #norm: Tensor;

  constructor(
    lora: LoraParameters,
    backends: readonly GgmlBackend[],
    readonly optimizer: OptimizerName,
    readonly clip: number | undefined,
  ) {
    const lib = backends[0]!.ggml.base;
    const n = lora.parameters.length;
    const size = Math.max(256, 2 ** Math.ceil(Math.log2(8 * n + 16)));
    this.#ctx = new GgmlContext(lib, { tensors: size * 2, graphs: { count: 1, size, grads: false } });
    const ctx = this.#ctx;
    this.#hyper = ctx.tensor(TensorType.F32, [optimizer === "adamw" ? 7 : 2], "optimizer hyper-parameters").markInput();
    let norm2: Tensor | undefined;
    for (const p of lora.parameters) {
      const s = ctx.sum(ctx.sqr(p.grad));
      norm2 = norm2 === undefined ? s : norm2.add(s);
    }
    this.#norm = ctx.sqrt(norm2!).markOutput();
    this.#graph = ctx.graph(size).expand(this.#norm);
    let factor: Tensor | undefined;
    if (clip !== undefined) {
      // min(1, clip/‖g‖) as clip / max(‖g‖, clip): computed on the device, no round trip.
      this.#clipValue = ctx.tensor(TensorType.F32, [1], "clip").markInput();
      factor = ctx.div(this.#clipValue, ctx.clamp(this.#norm, clip, 3.4e38));
    }
    for (const p of lora.parameters) {
      const grad = factor === undefined ? p.grad : ctx.mul(p.grad, factor);
      this.#graph.expand(optimizer === "adamw" ? ctx.adamwStep(p.value, grad, p.m, p.v, this.#hyper) : ctx.sgdStep(p.value, grad, this.#hyper));
    }
    this.#sched = new Scheduler(backends, { graphSize: size });
    this.#sched.allocate(this.#graph);
  }

  /** One step; returns the gradient norm before clipping. */
  async run(h: OptimizerHyper): Promise<number> {
    this.#sched.allocate(this.#graph);
    this.#hyper.write(
      this.optimizer === "adamw"
        ? new Float32Array([h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, 1 / (1 - h.beta1 ** h.step), 1 / (1 - h.beta2 ** h.step)])
        : new Float32Array([h.lr, h.weightDecay]),
    );
    this.#clipValue?.write(new Float32Array([this.clip!]));
    await this.#sched.compute(this.#graph);
    return this.#norm.read(new Float32Array(1))[0]!;
  }

  dispose(): void {
    this.#sched.dispose();
    this.#ctx.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
