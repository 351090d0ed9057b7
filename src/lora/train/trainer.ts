// LoraTrainer: a LoRA adapter trained on a frozen llama base through ggml's autodiff and optimizer
// ops, on the CPU or a CUDA GPU. Training is an async iterator of step reports that honours an
// AbortSignal at step boundaries; the adapter can be saved, checkpointed with its optimizer state,
// or handed to a loaded model for serving without a file.
import { type GgmlBackend, Ggml, type GgmlDeviceName, disableCudaGraphs } from "../../ggml/index.ts";
import { Llama, LlamaModel, LoraAdapter } from "../../llama/index.ts";
import { type GgufFile, openGguf } from "../../formats/index.ts";
import { writeFile } from "node:fs/promises";
import { type LlamaShape, type Target, llamaShape } from "./architecture.ts";
import { BaseWeights } from "./base-weights.ts";
import { type TrainingState, baseIdentity, checkResumable, readCheckpoint, writeCheckpoint } from "./checkpoint.ts";
import { BatchOrder, Dataset, type TrainingSequence, modelTokenizer } from "./dataset.ts";
import { TrainingError } from "./errors.ts";
import { type LoraWeights, encodeLoraGguf, readLoraGguf } from "./lora-weights.ts";
import { LoraParameters } from "./lora-parameters.ts";
import { type ResolvedOptions, type TrainingOptions, learningRate, resolveOptions } from "./options.ts";
import { LossGraph, OptimizerGraph } from "./step-graph.ts";
import { type GradientReducer, shardOf } from "./data-parallel.ts";

export interface TrainerOptions extends TrainingOptions {
  /** The base model (GGUF). */
  readonly base: string;
  /** Training data: a file (text or JSONL, see docs/training.md) or a Dataset. */
  readonly data: string | Dataset;
  /** Held-out data whose loss {@link LoraTrainer.evaluate} reports. */
  readonly eval?: string | Dataset;
  /** Continue this adapter (GGUF): its rank, alpha and targets are kept. */
  readonly init?: string;
  /** Resume from a checkpoint directory written by {@link LoraTrainer.checkpoint}. */
  readonly resume?: string;
  /** `cpu` (default) or `cuda:N`. */
  readonly device?: GgmlDeviceName;
  /** CPU threads (default: the CPU backend's own default). */
  readonly threads?: number;
  /** The libllama / ggml to use (default: Llama.shared()). */
  readonly llama?: Llama;
  /**
   * On the CPU, keep a transposed copy of each F32 base matrix so the backward pass multiplies
   * with tiled GEMM kernels instead of ggml's slower out-product (default true): a step about a
   * third faster for the weights' bytes again. Ignored on GPUs, whose out-product is a GEMM.
   */
  readonly transposedCopies?: boolean;
  /**
   * Leave ggml's CUDA graphs on (default false: a trainer on a GPU turns them off for the process
   * where nothing ran on CUDA yet, see disableCudaGraphs: they made one training step in three or
   * four 2.2× slower on the H200).
   */
  readonly cudaGraphs?: boolean;
  /**
   * Data parallelism: this process is one rank; it trains its slice of every global batch and
   * sums gradients with the other ranks before each step (NcclGradientReducer across GPUs,
   * TcpGradientReducer across CPU processes; trainDataParallel starts and connects the ranks).
   * `batch` stays the global batch; it must divide into ranks × gradAccum.
   */
  readonly reducer?: GradientReducer;
}

export interface StepReport {
  /** Optimizer steps taken, this one included. */
  readonly step: number;
  readonly totalSteps: number;
  readonly epoch: number;
  /** The mean cross-entropy over the step's counted positions, before the update. */
  readonly loss: number;
  readonly lr: number;
  /** The gradient's global norm before clipping. */
  readonly gradNorm: number;
  /** Counted positions trained this step (the whole global batch, over every rank). */
  readonly tokens: number;
  /** `tokens` over this step's time. */
  readonly tokensPerSecond: number;
  readonly stepMs: number;
  /** Counted positions of this rank's slice of the batch (`tokens` without a reducer). */
  readonly rankTokens: number;
  readonly rankTokensPerSecond: number;
  /** Milliseconds in the reducer's sum (waiting for slower ranks included); 0 without a reducer. */
  readonly allReduceMs: number;
}

/** The options a resumed run must share with the checkpoint it resumes. */
const resumeKeys = ["rank", "alpha", "targets", "ctx", "batch", "gradAccum", "optimizer", "lr", "beta1", "beta2", "eps", "weightDecay", "schedule", "warmup", "clip", "seed", "shuffle"] as const;

function jsonOptions(o: ResolvedOptions): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined).map(([k, v]) => [k, Array.isArray(v) ? [...v] : v]));
}

export class LoraTrainer implements Disposable {
  #step = 0;
  #disposed = false;
  /** A rank asked to stop: every rank saw it in the same step's sum and stops after that step. */
  #stopAgreed = false;

  private constructor(
    readonly options: ResolvedOptions,
    readonly shape: LlamaShape,
    readonly backend: GgmlBackend,
    private readonly cpu: GgmlBackend | undefined,
    private readonly base: BaseWeights,
    readonly lora: LoraParameters,
    private readonly data: Dataset,
    private readonly evalData: Dataset | undefined,
    private order: BatchOrder,
    private readonly train: LossGraph,
    private readonly evaluation: LossGraph,
    private readonly optimizer: OptimizerGraph,
    private readonly identity: { base: string; data: string },
    private readonly reducer: GradientReducer | undefined,
  ) {}

  static async create(options: TrainerOptions): Promise<LoraTrainer> {
    const llama = options.llama ?? Llama.shared();
    const file: GgufFile = await openGguf(options.base);
    const disposers: (() => void)[] = [];
    try {
      const shape = llamaShape(file);
      const checkpoint = options.resume === undefined ? undefined : await readCheckpoint(options.resume);
      const init = checkpoint?.weights ?? (options.init === undefined ? undefined : await readLoraGguf(options.init));
      const merged: TrainingOptions = init === undefined ? options : { ...options, rank: init.rank, alpha: init.alpha, targets: init.targets as Target[] };
      const resolved = resolveOptions(merged, shape.contextLength);
      if (init !== undefined) checkAdapterFits(init, shape);

      const needsTokenizer = !(options.data instanceof Dataset) || (options.eval !== undefined && !(options.eval instanceof Dataset));
      const vocabModel = needsTokenizer ? await LlamaModel.load(options.base, { vocabOnly: true, llama }) : undefined;
      if (vocabModel) disposers.push(() => vocabModel.dispose());
      const read = async (d: string | Dataset) => (d instanceof Dataset ? d : Dataset.read(d, { ctx: resolved.ctx, tokenizer: modelTokenizer(vocabModel!) }));
      const data = await read(options.data);
      const evalData = options.eval === undefined ? undefined : await read(options.eval);
      for (const d of [data, evalData]) if (d !== undefined) checkVocabulary(d, shape.vocab);
      vocabModel?.dispose();
      disposers.pop();

      const ggml = Ggml.open(llama.dir);
      if ((options.device ?? "cpu") !== "cpu" && options.cudaGraphs !== true) disableCudaGraphs();
      const backend = ggml.backend(options.device ?? "cpu", { threads: options.threads });
      disposers.push(() => backend.dispose());
      const cpu = backend.isCpu ? undefined : ggml.backend("cpu", { threads: options.threads });
      if (cpu) disposers.push(() => cpu.dispose());
      const backends = cpu ? [backend, cpu] : [backend];
      const base = await BaseWeights.load(file, backend, { transposedCopies: options.transposedCopies ?? true });
      disposers.push(() => base.dispose());
      const lora = LoraParameters.create(shape, resolved, backend);
      disposers.push(() => lora.dispose());
      if (init === undefined) lora.initialize(resolved.seed);
      else lora.load(init);
      if (options.reducer?.hostMemory && !backend.isCpu) throw new TrainingError("ERR_TRAIN_ARGUMENT", `the reducer sums gradients in host memory, but the trainer runs on ${options.device}: use NcclGradientReducer across GPUs`);
      const ranks = options.reducer?.ranks ?? 1;
      if (resolved.batch % (ranks * resolved.gradAccum) !== 0) {
        throw new TrainingError("ERR_TRAIN_ARGUMENT", `batch ${resolved.batch} does not split into ${ranks} rank${ranks === 1 ? "" : "s"} × ${resolved.gradAccum} micro-batches`);
      }
      const micro = resolved.batch / (ranks * resolved.gradAccum);
      const parts = { shape, base, lora, seqLen: resolved.ctx, batch: micro };
      const train = new LossGraph(parts, backends, true);
      disposers.push(() => train.dispose());
      const evaluation = new LossGraph(parts, backends, false);
      disposers.push(() => evaluation.dispose());
      const optimizer = new OptimizerGraph(lora, backends, resolved.optimizer, resolved.clip);
      disposers.push(() => optimizer.dispose());

      const identity = { base: await baseIdentity(options.base), data: data.fingerprint };
      const order = new BatchOrder(data.sequences.length, { seed: resolved.seed, shuffle: resolved.shuffle });
      const trainer = new LoraTrainer(resolved, shape, backend, cpu, base, lora, data, evalData, order, train, evaluation, optimizer, identity, options.reducer);
      if (checkpoint !== undefined) {
        const state = checkpoint.state;
        checkResumable(state, { baseIdentity: identity.base, options: jsonOptions(resolved), dataFingerprint: identity.data }, resumeKeys);
        trainer.order = new BatchOrder(data.sequences.length, { seed: resolved.seed, shuffle: resolved.shuffle, epoch: state.epoch, index: state.index });
        trainer.#step = state.step;
        lora.loadMoments(state.moments);
      }
      return trainer;
    } catch (error) {
      for (const dispose of disposers.reverse()) dispose();
      throw error;
    } finally {
      await file.close();
    }
  }

  /** Optimizer steps taken so far. */
  get step(): number {
    return this.#step;
  }

  /** Steps the run takes: `steps`, or `epochs` passes over the data. */
  get totalSteps(): number {
    return this.options.steps ?? Math.ceil((this.options.epochs * this.data.sequences.length) / this.options.batch);
  }

  /** Bytes the base weights, the LoRA state and the graphs' compute buffers hold on the training device. */
  get memory(): { base: number; transposed: number; lora: number; compute: number; widened: Readonly<Record<string, number>> } {
    return {
      base: this.base.storage.bytes,
      transposed: this.base.storage.transposedBytes,
      lora: this.lora.bytes,
      compute: this.train.computeBytes(this.backend) + this.evaluation.computeBytes(this.backend),
      widened: this.base.storage.widened,
    };
  }

  #assertLive(): void {
    if (this.#disposed) throw new TrainingError("ERR_TRAIN_DISPOSED", "the trainer was disposed");
  }

  /**
   * Runs one optimizer step on the next batch. With a reducer, an aborted `signal` is this rank's
   * vote to stop: the votes are summed with the gradients, and when any rank voted, {@link run}
   * ends after this step on every rank alike.
   */
  async trainStep(options: { signal?: AbortSignal } = {}): Promise<StepReport> {
    this.#assertLive();
    const o = this.options;
    const started = performance.now();
    const epoch = this.order.epoch;
    const batch = this.order.next(o.batch).map((i) => this.data.sequences[i]!);
    const counted = countOf(batch);
    if (counted === 0) throw new TrainingError("ERR_TRAIN_DATA", `step ${this.#step + 1}: no position of the batch counts in the loss`);
    this.lora.clearGradients();
    const shard = this.reducer === undefined ? batch : shardOf(batch, this.reducer.rank, this.reducer.ranks);
    const micro = shard.length / o.gradAccum;
    let loss = 0;
    for (let i = 0; i < shard.length; i += micro) loss += await this.train.run(shard.slice(i, i + micro), counted);
    let allReduceMs = 0;
    if (this.reducer !== undefined) {
      // One collective carries the gradients, this rank's share of the loss and its stop vote.
      this.lora.stepSlot.write(new Float32Array([loss, options.signal?.aborted ? 1 : 0]));
      const buffer = this.lora.gradientBuffer;
      const reducing = performance.now();
      await this.reducer.sum(buffer.base, buffer.byteLength);
      allReduceMs = performance.now() - reducing;
      const [sum, votes] = this.lora.stepSlot.read(new Float32Array(2));
      loss = sum!;
      if (votes! > 0) this.#stopAgreed = true;
    }
    const step = this.#step + 1;
    const lr = learningRate(o, step, this.totalSteps);
    const gradNorm = await this.optimizer.run({ lr, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, step });
    this.#step = step;
    const stepMs = performance.now() - started;
    const rankTokens = this.reducer === undefined ? counted : countOf(shard);
    return {
      step,
      totalSteps: this.totalSteps,
      epoch,
      loss,
      lr,
      gradNorm,
      tokens: counted,
      tokensPerSecond: (counted * 1000) / stepMs,
      stepMs,
      rankTokens,
      rankTokensPerSecond: (rankTokens * 1000) / stepMs,
      allReduceMs,
    };
  }

  /**
   * Trains until `totalSteps`, yielding a report after every step. An aborted `signal` stops the
   * run at the next step boundary (the adapter then holds every completed step). With a reducer
   * the ranks must stop together: the abort is this rank's vote in the next step's sum, and every
   * rank ends after that step.
   */
  async *run(options: { signal?: AbortSignal } = {}): AsyncGenerator<StepReport> {
    while (this.#step < this.totalSteps && !this.#stopAgreed) {
      if (this.reducer === undefined && options.signal?.aborted) return;
      yield await this.trainStep(options);
      // Hands the event loop a turn between steps (on Bun a step's computation runs on the JS thread).
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }

  /** The mean cross-entropy over the counted positions of the evaluation data (or `data`). */
  async evaluate(data: Dataset | undefined = this.evalData): Promise<number> {
    this.#assertLive();
    if (data === undefined) throw new TrainingError("ERR_TRAIN_ARGUMENT", "no evaluation data: pass `eval` to create() or a Dataset here");
    checkVocabulary(data, this.shape.vocab);
    const micro = this.options.batch / (this.options.gradAccum * (this.reducer?.ranks ?? 1));
    const total = data.countedTokens;
    let loss = 0;
    for (let i = 0; i < data.sequences.length; i += micro) {
      const chunk = data.sequences.slice(i, i + micro);
      if (chunk.some((s) => s.tokens.length - 1 > this.options.ctx)) throw new TrainingError("ERR_TRAIN_DATA", `evaluation data was cut for a longer ctx than ${this.options.ctx}`);
      loss += await this.evaluation.run(chunk, total);
    }
    return loss;
  }

  /** The adapter as it is now. */
  weights(): LoraWeights {
    this.#assertLive();
    return this.lora.read(this.shape.architecture);
  }

  /** Writes the adapter as a GGUF that llama.cpp (and LoraAdapter) loads. */
  async save(path: string): Promise<void> {
    await writeFile(path, encodeLoraGguf(this.weights()));
  }

  /** Writes a checkpoint directory: the adapter and the optimizer state to resume from exactly. */
  async checkpoint(dir: string): Promise<void> {
    const state: TrainingState = {
      step: this.#step,
      epoch: this.order.epoch,
      index: this.order.index,
      seed: this.options.seed,
      options: jsonOptions(this.options),
      baseIdentity: this.identity.base,
      dataFingerprint: this.identity.data,
      moments: this.options.optimizer === "adamw" ? this.lora.readMoments() : new Map(),
      optimizer: this.options.optimizer,
    };
    await writeCheckpoint(dir, this.weights(), state);
  }

  /** The adapter loaded on `model` (the same base) without a file, ready to hot-swap into a context. */
  toAdapter(model: LlamaModel): LoraAdapter {
    return LoraAdapter.fromBytes(model, encodeLoraGguf(this.weights()), { name: "trained" });
  }

  dispose(): void {
    this.#assertLive();
    this.#disposed = true;
    this.optimizer.dispose();
    this.evaluation.dispose();
    this.train.dispose();
    this.lora.dispose();
    this.base.dispose();
    this.cpu?.dispose();
    this.backend.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

function countOf(batch: readonly TrainingSequence[]): number {
  let n = 0;
  for (const s of batch) for (const c of s.counted) n += c;
  return n;
}

function checkVocabulary(data: Dataset, vocab: number): void {
  for (const s of data.sequences) {
    for (const t of s.tokens) if (t < 0 || t >= vocab) throw new TrainingError("ERR_TRAIN_DATA", `${s.source}: token ${t} is outside the base model's vocabulary of ${vocab}`);
    if (s.tokens.length < 2) throw new TrainingError("ERR_TRAIN_DATA", `${s.source}: a sequence needs at least 2 tokens, got ${s.tokens.length}`);
  }
}

function checkAdapterFits(init: LoraWeights, shape: LlamaShape): void {
  if (init.architecture !== shape.architecture) throw new TrainingError("ERR_TRAIN_ARGUMENT", `the adapter is for ${init.architecture}, the base is ${shape.architecture}`);
  for (const p of init.pairs) {
    const layer = Number(/^blk\.(\d+)\./.exec(p.weight)?.[1] ?? -1);
    if (layer < 0 || layer >= shape.layers) throw new TrainingError("ERR_TRAIN_ARGUMENT", `the adapter adapts ${p.weight}, which the base does not have`);
  }
}

