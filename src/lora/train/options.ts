// The trainer's options, their defaults (PyTorch's AdamW where it has one) and their checks, and
// the learning-rate schedule they describe.
import { loraTargets } from "../../formats/index.ts";
import { type Target, allTargets } from "./architecture.ts";
import { TrainingError } from "./errors.ts";
import type { OptimizerName } from "./step-graph.ts";

export type Schedule = "constant" | "cosine" | "linear";

export interface TrainingOptions {
  /** LoRA rank (default 8). Ignored when continuing an adapter (`init`), whose rank is kept. */
  readonly rank?: number;
  /** LoRA alpha: the update is scaled by alpha/rank (default 2·rank). */
  readonly alpha?: number;
  /** Projections to adapt (default all seven). */
  readonly targets?: readonly Target[];
  /** Positions per sequence (default 512, at most the model's context length). */
  readonly ctx?: number;
  /** Sequences per optimizer step (default 1). */
  readonly batch?: number;
  /** Micro-batches the batch is split into; their gradients add up (default 1). */
  readonly gradAccum?: number;
  /** Passes over the data (default 1); `steps` overrides it. */
  readonly epochs?: number;
  readonly steps?: number;
  readonly optimizer?: OptimizerName;
  /** Learning rate (default 1e-3 for AdamW, 1e-2 for SGD, as PyTorch). */
  readonly lr?: number;
  readonly beta1?: number;
  readonly beta2?: number;
  readonly eps?: number;
  /** Decoupled weight decay (default 0.01 for AdamW, 0 for SGD, as PyTorch). */
  readonly weightDecay?: number;
  readonly schedule?: Schedule;
  /** Steps of linear warm-up from 0 (default 0). */
  readonly warmup?: number;
  /** Clip the gradient's global norm to this (default: no clipping). */
  readonly clip?: number;
  /** Seeds the adapter's initialization and the data order (default 0). */
  readonly seed?: number;
  /** Take sequences in file order (default: shuffled each epoch). */
  readonly shuffle?: boolean;
}

export type ResolvedOptions = Required<Omit<TrainingOptions, "steps" | "clip">> & { readonly steps: number | undefined; readonly clip: number | undefined };

function positiveInteger(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) throw new TrainingError("ERR_TRAIN_ARGUMENT", `${name} must be a positive integer, got ${value}`);
}

function inRange(name: string, value: number, low: number, high: number, openLow = false): void {
  if (!(typeof value === "number" && (openLow ? value > low : value >= low) && value <= high)) {
    throw new TrainingError("ERR_TRAIN_ARGUMENT", `${name} must be in ${openLow ? "(" : "["}${low}, ${high}], got ${value}`);
  }
}

/** Fills in defaults and checks every option; `modelContext` caps ctx. */
export function resolveOptions(options: TrainingOptions, modelContext: number): ResolvedOptions {
  const optimizer = options.optimizer ?? "adamw";
  if (optimizer !== "adamw" && optimizer !== "sgd") throw new TrainingError("ERR_TRAIN_ARGUMENT", `optimizer must be adamw or sgd, got ${String(optimizer)}`);
  const rank = options.rank ?? 8;
  const resolved: ResolvedOptions = {
    rank,
    alpha: options.alpha ?? 2 * rank,
    targets: options.targets ?? allTargets,
    ctx: options.ctx ?? Math.min(512, modelContext),
    batch: options.batch ?? 1,
    gradAccum: options.gradAccum ?? 1,
    epochs: options.epochs ?? 1,
    steps: options.steps,
    optimizer,
    lr: options.lr ?? (optimizer === "adamw" ? 1e-3 : 1e-2),
    beta1: options.beta1 ?? 0.9,
    beta2: options.beta2 ?? 0.999,
    eps: options.eps ?? 1e-8,
    weightDecay: options.weightDecay ?? (optimizer === "adamw" ? 0.01 : 0),
    schedule: options.schedule ?? "constant",
    warmup: options.warmup ?? 0,
    clip: options.clip,
    seed: options.seed ?? 0,
    shuffle: options.shuffle ?? true,
  };
  positiveInteger("rank", resolved.rank);
  inRange("alpha", resolved.alpha, 0, Number.MAX_VALUE);
  if (resolved.targets.length === 0) throw new TrainingError("ERR_TRAIN_ARGUMENT", "targets must name at least one projection");
  for (const t of resolved.targets) {
    if (!Object.hasOwn(loraTargets, t)) throw new TrainingError("ERR_TRAIN_ARGUMENT", `unknown target "${t}"; choose from ${allTargets.join(", ")}`);
  }
  positiveInteger("ctx", resolved.ctx);
  if (resolved.ctx > modelContext) throw new TrainingError("ERR_TRAIN_ARGUMENT", `ctx ${resolved.ctx} is beyond the model's context length ${modelContext}`);
  positiveInteger("batch", resolved.batch);
  positiveInteger("gradAccum", resolved.gradAccum);
  if (resolved.batch % resolved.gradAccum !== 0) throw new TrainingError("ERR_TRAIN_ARGUMENT", `gradAccum ${resolved.gradAccum} must divide batch ${resolved.batch}`);
  positiveInteger("epochs", resolved.epochs);
  if (resolved.steps !== undefined) positiveInteger("steps", resolved.steps);
  inRange("lr", resolved.lr, 0, 10, true);
  inRange("beta1", resolved.beta1, 0, 1);
  inRange("beta2", resolved.beta2, 0, 1);
  inRange("eps", resolved.eps, 0, 1);
  // ggml's optimizer steps take weight decay in [0, 1].
  inRange("weightDecay", resolved.weightDecay, 0, 1);
  if (!["constant", "cosine", "linear"].includes(resolved.schedule)) throw new TrainingError("ERR_TRAIN_ARGUMENT", `schedule must be constant, linear or cosine, got ${resolved.schedule}`);
  if (!Number.isSafeInteger(resolved.warmup) || resolved.warmup < 0) throw new TrainingError("ERR_TRAIN_ARGUMENT", `warmup must be a non-negative integer, got ${resolved.warmup}`);
  if (resolved.clip !== undefined) inRange("clip", resolved.clip, 0, Number.MAX_VALUE, true);
  if (!Number.isSafeInteger(resolved.seed)) throw new TrainingError("ERR_TRAIN_ARGUMENT", `seed must be an integer, got ${resolved.seed}`);
  return Object.freeze(resolved);
}

/** The learning rate of step `step` (1-based) of `total`: warm-up, then constant, linear or cosine decay to 0. */
export function learningRate(o: Pick<ResolvedOptions, "lr" | "schedule" | "warmup">, step: number, total: number): number {
  if (step <= o.warmup) return (o.lr * step) / o.warmup;
  if (o.schedule === "constant") return o.lr;
  const progress = Math.min(1, (step - o.warmup) / Math.max(1, total - o.warmup));
  return o.schedule === "linear" ? o.lr * (1 - progress) : (o.lr * (1 + Math.cos(Math.PI * progress))) / 2;
}
