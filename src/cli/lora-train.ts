// `gpuffi lora train`: a LoRA adapter trained on a base GGUF from a data file, with a progress
// line per step (or one JSON object per step), checkpoints and resume.
import { join } from "node:path";
import process from "node:process";
import { LoraTrainer, type Schedule, type Target, type TrainerOptions } from "../lora/index.ts";
import { type CliIO, UsageError, integerOption, numberOption, parseCommandArgs } from "./command.ts";

export const trainUsage = `usage: gpuffi lora train --base BASE.gguf --data FILE --out ADAPTER.gguf [--init ADAPTER.gguf]
         [--rank N] [--alpha N] [--targets q,k,v,o,gate,up,down] [--ctx N] [--batch N] [--epochs N | --steps N]
         [--optimizer adamw|sgd] [--lr X] [--beta1 X] [--beta2 X] [--eps X] [--weight-decay X]
         [--schedule constant|linear|cosine] [--warmup N] [--grad-accum N] [--clip X] [--seed N | --no-shuffle]
         [--eval FILE] [--device cpu|cuda:N] [--threads N] [--checkpoint-every N] [--checkpoint-dir DIR] [--resume DIR] [--json]

train    fits a LoRA adapter to FILE (text, or JSONL of {"tokens"}, {"prompt","completion"} or
         {"messages"}: docs/training.md) and writes it to ADAPTER.gguf, which llama.cpp and
         gpuffi's LoraAdapter load. Defaults: rank 8, alpha 2·rank, all seven projections, ctx 512,
         batch 1, one epoch, AdamW as PyTorch's (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay
         0.01), constant rate, no clipping. --batch counts sequences per optimizer step;
         --grad-accum splits them into micro-batches. --checkpoint-every N writes DIR/step-N
         (adapter + optimizer state); --resume continues one exactly. Ctrl-C stops at the next
         step and writes the adapter. --json prints one JSON object per step.`;

const numbers = ["lr", "beta1", "beta2", "eps", "weight-decay", "clip", "alpha"] as const;
const integers = ["rank", "ctx", "batch", "epochs", "steps", "warmup", "grad-accum", "seed", "threads", "checkpoint-every"] as const;

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
  using trainer = await LoraTrainer.create(options);
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once("SIGINT", stop);
  const started = performance.now();
  let done = 0;
  try {
    for await (const r of trainer.run({ signal: controller.signal })) {
      done++;
      if (values.json) io.out(JSON.stringify(r));
      else {
        const eta = ((performance.now() - started) / done) * (r.totalSteps - r.step);
        io.err(`step ${r.step}/${r.totalSteps}  loss ${r.loss.toFixed(4)}  lr ${r.lr.toExponential(2)}  ${r.tokensPerSecond.toFixed(0)} tokens/s  ETA ${(eta / 1000).toFixed(0)} s`);
      }
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
