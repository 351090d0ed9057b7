// `gpuffi lora train`: a LoRA adapter trained on a base GGUF from a data file, with a progress
// line per step (or one JSON object per step), checkpoints and resume.
import { join } from "node:path";
import process from "node:process";
import { type DataParallelStepReport, LoraTrainer, type Schedule, type StepReport, type Target, type TrainerOptions, trainDataParallel } from "../lora/index.ts";
import { type CliIO, UsageError, integerOption, numberOption, parseCommandArgs } from "./command.ts";

export const trainUsage = `usage: gpuffi lora train --base BASE.gguf --data FILE --out ADAPTER.gguf [--init ADAPTER.gguf]
         [--rank N] [--alpha N] [--targets q,k,v,o,gate,up,down] [--ctx N] [--batch N] [--epochs N | --steps N]
         [--optimizer adamw|sgd] [--lr X] [--beta1 X] [--beta2 X] [--eps X] [--weight-decay X]
         [--schedule constant|linear|cosine] [--warmup N] [--grad-accum N] [--clip X] [--seed N | --no-shuffle]
         [--eval FILE] [--device cpu|cuda:N | --gpus N | --ranks N] [--threads N]
         [--checkpoint-every N] [--checkpoint-dir DIR] [--resume DIR] [--json]

train    fits a LoRA adapter to FILE (text, or JSONL of {"tokens"}, {"prompt","completion"} or
         {"messages"}: docs/training.md) and writes it to ADAPTER.gguf, which llama.cpp and
         gpuffi's LoraAdapter load. Defaults: rank 8, alpha 2·rank, all seven projections, ctx 512,
         batch 1, one epoch, AdamW as PyTorch's (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay
         0.01), constant rate, no clipping. --batch counts sequences per optimizer step;
         --grad-accum splits them into micro-batches. --checkpoint-every N writes DIR/step-N
         (adapter + optimizer state); --resume continues one exactly. Ctrl-C stops at the next
         step and writes the adapter. --json prints one JSON object per step.
         --gpus N trains data-parallel in N processes, rank r on cuda:r, gradients summed over
         NCCL; --ranks N does the same in N CPU processes, summed over TCP. --batch stays the
         global batch (it must be a multiple of N × --grad-accum): every rank trains its slice
         and the steps equal one process's. Rank 0 writes the checkpoints and the adapter; a
         checkpoint resumes with any N. If a rank dies, the others are ended and the error
         names it. --threads is per rank (CPU ranks default to the cores divided among them).`;

const numbers = ["lr", "beta1", "beta2", "eps", "weight-decay", "clip", "alpha"] as const;
const integers = ["rank", "ctx", "batch", "epochs", "steps", "warmup", "grad-accum", "seed", "threads", "checkpoint-every", "gpus", "ranks"] as const;

export async function train(argv: string[], io: CliIO): Promise<number> {
  const kinds = Object.fromEntries([...numbers, ...integers, "base", "data", "out", "init", "targets", "optimizer", "schedule", "eval", "device", "checkpoint-dir", "resume"].map((k) => [k, "string" as const]));
  const { values } = parseCommandArgs(argv, { ...kinds, "no-shuffle": "boolean", json: "boolean" }, []);
  for (const required of ["base", "data", "out"]) if (values[required] === undefined) throw new UsageError(`--${required} is required`);
  if (values.seed !== undefined && values["no-shuffle"]) throw new UsageError("--seed orders the data; --no-shuffle keeps file order: give one");
  const num = (name: (typeof numbers)[number]) => (values[name] === undefined ? undefined : numberOption(values, name));
  const int = (name: (typeof integers)[number]) => (values[name] === undefined ? undefined : integerOption(values, name, 0));
  const optimizer = values.optimizer as string | undefined;
  if (optimizer !== undefined && optimizer !== "adamw" && optimizer !== "sgd") throw new UsageError(`--optimizer takes adamw or sgd, got "${optimizer}"`);
  const options: TrainerOptions = {
    base: values.base as string,
    data: values.data as string,
    eval: values.eval as string | undefined,
    init: values.init as string | undefined,
    resume: values.resume as string | undefined,
    device: (values.device as string | undefined) ?? "cpu",
    threads: int("threads"),
    rank: int("rank"),
    alpha: num("alpha"),
    targets: (values.targets as string | undefined)?.split(",").map((t) => t.trim()) as Target[] | undefined,
    ctx: int("ctx"),
    batch: int("batch"),
    gradAccum: int("grad-accum"),
    epochs: int("epochs"),
    steps: int("steps"),
    optimizer,
    lr: num("lr"),
    beta1: num("beta1"),
    beta2: num("beta2"),
    eps: num("eps"),
    weightDecay: num("weight-decay"),
    schedule: values.schedule as Schedule | undefined,
    warmup: int("warmup"),
    clip: num("clip"),
    seed: int("seed"),
    shuffle: !values["no-shuffle"],
  };
  const every = int("checkpoint-every");
  const checkpointDir = (values["checkpoint-dir"] as string | undefined) ?? `${values.out as string}.checkpoints`;
  const gpus = values.gpus === undefined ? undefined : integerOption(values, "gpus", 1, 1);
  const ranks = values.ranks === undefined ? undefined : integerOption(values, "ranks", 1, 1);
  if (gpus !== undefined || ranks !== undefined) {
    if (gpus !== undefined && ranks !== undefined) throw new UsageError("--gpus N starts one process per GPU, --ranks N that many CPU processes: give one");
    if (values.device !== undefined) throw new UsageError(`--${gpus !== undefined ? "gpus" : "ranks"} places the ranks itself (rank r on ${gpus !== undefined ? "cuda:r" : "the CPU"}); drop --device`);
    return trainRanks(options, { gpus, ranks, every: every !== undefined && every > 0 ? every : undefined, checkpointDir, out: values.out as string, json: values.json === true }, io);
  }
  using trainer = await LoraTrainer.create(options);
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  const progress = progressPrinter(values.json === true, io);
  try {
    for await (const r of trainer.run({ signal: controller.signal })) {
      progress(r);
      if (every !== undefined && every > 0 && r.step % every === 0) await trainer.checkpoint(join(checkpointDir, `step-${r.step}`));
    }
  } finally {
    process.off("SIGINT", stop);
  }
  await trainer.save(values.out as string);
  if (values.eval !== undefined) {
    const loss = await trainer.evaluate();
    if (values.json) io.out(JSON.stringify({ eval: loss, step: trainer.step }));
    else io.err(`eval loss ${loss.toFixed(4)}`);
  }
  if (!values.json) io.out(`wrote ${values.out as string} (${trainer.step} steps${controller.signal.aborted ? ", stopped early" : ""})`);
  return 0;
}

/** Prints each step: one JSON object (--json) or a progress line with the ETA. */
function progressPrinter(json: boolean, io: CliIO): (r: StepReport | DataParallelStepReport) => void {
  const started = performance.now();
  let done = 0;
  return (r) => {
    done++;
    if (json) return io.out(JSON.stringify(r));
    const eta = ((performance.now() - started) / done) * (r.totalSteps - r.step);
    const reduce = "ranks" in r ? `  all-reduce ${Math.max(...r.ranks.map((x) => x.allReduceMs)).toFixed(1)} ms` : "";
    io.err(`step ${r.step}/${r.totalSteps}  loss ${r.loss.toFixed(4)}  lr ${r.lr.toExponential(2)}  ${r.tokensPerSecond.toFixed(0)} tokens/s${reduce}  ETA ${(eta / 1000).toFixed(0)} s`);
  };
}

/** --gpus N / --ranks N: the same run in N rank processes; rank 0 checkpoints and writes the adapter. */
async function trainRanks(
  options: TrainerOptions,
  how: { gpus?: number; ranks?: number; every?: number; checkpointDir: string; out: string; json: boolean },
  io: CliIO,
): Promise<number> {
  const { device: _device, ...rest } = options;
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  try {
    const run = await trainDataParallel({
      ...rest,
      ...(how.gpus !== undefined ? { gpus: how.gpus } : { ranks: how.ranks! }),
      out: how.out,
      ...(how.every === undefined ? {} : { checkpointEvery: how.every, checkpointDir: how.checkpointDir }),
      signal: controller.signal,
    });
    const progress = progressPrinter(how.json, io);
    for await (const r of run) progress(r);
    const result = await run.result;
    if (result.evalLoss !== undefined) {
      if (how.json) io.out(JSON.stringify({ eval: result.evalLoss, step: result.step }));
      else io.err(`eval loss ${result.evalLoss.toFixed(4)}`);
    }
    if (!how.json) io.out(`wrote ${how.out} (${result.step} steps on ${run.ranks} ${run.device === "cuda" ? "GPU" : "CPU rank"}${run.ranks === 1 ? "" : "s"}${result.stopped ? ", stopped early" : ""})`);
    return 0;
  } finally {
    process.off("SIGINT", stop);
  }
}
