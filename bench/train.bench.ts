// Training throughput: gpuffi's LoRA trainer on ggml against PyTorch + PEFT in the same job.
//   bun bench/train.bench.ts BASE.gguf OUT_DIR [--device cuda:0 | --gpus N | --ranks N] [--batch 4] [--ctx 512] [--steps 10] [--warmup 2]
//                            [--threads N] [--no-transposed-copies] [--peft FILE.jsonl] [--label h200] [--tag NAME] [--jsonl FILE]
// BASE: a TinyLlama-shaped model (gpu-run.sh makes one with make-tiny-model). LoRA r16 alpha32 on
// all seven projections, AdamW, random tokens, as bench/train_peft.py does for PEFT; --peft names
// that script's output from the same job, whose modes are set beside ours as ratios.
// --gpus N trains data-parallel in N processes (rank r on cuda:r, NCCL), --ranks N in N CPU
// processes (TCP); --batch stays the global batch. The record then also holds every step's loss
// and the median all-reduce time. --jsonl FILE appends the record to FILE instead of writing
// OUT_DIR/train-<label>.jsonl; --tag names the record's purpose (bench/train-multi.ts reads them).
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { openGguf, seededRandom } from "../src/formats/index.ts";
import { type DataParallelStepReport, Dataset, LoraTrainer, type StepReport, llamaShape, trainDataParallel } from "../src/lora/index.ts";

const args = process.argv.slice(2);
const flag = (name: string, fallback: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : fallback;
};
const [base, out] = args.filter((a, i) => !a.startsWith("--") && !args[i - 1]?.startsWith("--"));
if (base === undefined || out === undefined) throw new Error("usage: train.bench.ts BASE.gguf OUT_DIR [--device cuda:0] ...");
const gpus = args.includes("--gpus") ? Number(flag("gpus", "1")) : undefined;
const ranks = args.includes("--ranks") ? Number(flag("ranks", "1")) : undefined;
const processes = gpus ?? ranks;
if (gpus !== undefined && ranks !== undefined) throw new Error("--gpus N (CUDA) or --ranks N (CPU), not both");
const device = gpus !== undefined ? `cuda:0-${gpus - 1}` : ranks !== undefined ? "cpu" : flag("device", "cuda:0");
const batch = Number(flag("batch", "4"));
const ctx = Number(flag("ctx", "512"));
const steps = Number(flag("steps", "10"));
const warmup = Number(flag("warmup", "2"));
const threads = args.includes("--threads") ? Number(flag("threads", "1")) : undefined;
const label = flag("label", "gpu");
// On the CPU: ggml's own out-products in the backward pass instead of the transposed copies.
const transposedCopies = !args.includes("--no-transposed-copies");

const vocab = await (async () => {
  const file = await openGguf(base);
  try {
    return llamaShape(file).vocab;
  } finally {
    await file.close();
  }
})();
const random = seededRandom(1);
const options = {
  base,
  data: Dataset.fromSequences(
    Array.from({ length: batch * (steps + warmup) }, (_, i) => ({
      tokens: Int32Array.from({ length: ctx + 1 }, () => 1 + Math.floor(random() * (vocab - 1))),
      counted: new Uint8Array(ctx).fill(1),
      source: `random ${i}`,
    })),
    ctx,
  ),
  threads,
  transposedCopies,
  rank: 16,
  alpha: 32,
  ctx,
  batch,
  steps: steps + warmup,
  shuffle: false,
};
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
// The process's CPU time beside each step's wall time: a slow step that burns CPU is host work
// (ggml's CPU threads, the runtime), one that does not is waiting on the GPU.
let cpu = process.cpuUsage();
const print = (r: StepReport | DataParallelStepReport) => {
  const reduce = "ranks" in r ? `, all-reduce ${r.ranks.map((x) => x.allReduceMs.toFixed(1)).join("/")} ms` : "";
  const used = process.cpuUsage(cpu);
  cpu = process.cpuUsage();
  console.log(`step ${r.step}: loss ${r.loss.toFixed(4)} ${r.tokensPerSecond.toFixed(0)} tokens/s (${r.stepMs.toFixed(1)} ms; CPU ${((used.user + used.system) / 1000).toFixed(1)} ms${reduce})`);
};
const reports: (StepReport | DataParallelStepReport)[] = [];
let memory: { base: number; lora: number; compute: number };
if (processes === undefined) {
  using trainer = await LoraTrainer.create({ ...options, device });
  for await (const r of trainer.run()) {
    reports.push(r);
    print(r);
  }
  memory = trainer.memory;
} else {
  const run = await trainDataParallel({ ...options, ...(gpus !== undefined ? { gpus } : { ranks: ranks!, device: "cpu" as const }) });
  for await (const r of run) {
    reports.push(r);
    print(r);
  }
  memory = (await run.result).memory;
}
const timed = reports.slice(warmup);
const tokensPerSecond = (batch * ctx * timed.length * 1000) / timed.reduce((s, r) => s + r.stepMs, 0);
const result = {
  side: "gpuffi",
  device,
  transposed_copies: device === "cpu" ? transposedCopies : undefined,
  ...(processes === undefined ? {} : { processes, tag: flag("tag", "") }),
  batch,
  ctx,
  steps: timed.length,
  tokens_per_s: tokensPerSecond,
  step_ms_median: median(timed.map((r) => r.stepMs)),
  ...(processes === undefined ? {} : {
    // The slowest rank's all-reduce of each step (it includes waiting for the others), then the median over the timed steps.
    all_reduce_ms_median: median(timed.map((r) => Math.max(...(r as DataParallelStepReport).ranks.map((x) => x.allReduceMs)))),
    rank_tokens_per_s_median: (timed[0] as DataParallelStepReport).ranks.map((_, rank) => median(timed.map((r) => (r as DataParallelStepReport).ranks[rank]!.rankTokensPerSecond))),
    losses: reports.map((r) => r.loss),
  }),
  memory,
  memory_gib: (memory.base + memory.lora + memory.compute) / 2 ** 30,
};
const lines = [JSON.stringify(result)];
const peftFile = args.includes("--peft") ? flag("peft", "") : "";
const where = processes === undefined ? device : `${processes} ${gpus !== undefined ? "GPU" : "CPU"} process${processes === 1 ? "" : "es"}, global batch ${batch}`;
const table = [`| side | tokens/s | step ms (median) | memory GiB | gpuffi ÷ side |`, `|---|---|---|---|---|`, `| gpuffi (${where}${device === "cpu" ? `, ${threads ?? "default"} threads, ${transposedCopies ? "transposed copies" : "ggml's out-products"}` : ", F32 base, TF32 cuBLAS"}) | ${tokensPerSecond.toFixed(0)} | ${result.step_ms_median.toFixed(1)} | ${result.memory_gib.toFixed(2)} | 1.00 |`];
if (peftFile && !existsSync(peftFile)) table.push(`| PyTorch+PEFT | (no ${peftFile}: the anchor did not run) | | | |`);
else if (peftFile) {
  for (const line of readFileSync(peftFile, "utf8").split("\n").filter(Boolean)) {
    const p = JSON.parse(line) as { mode: string; tokens_per_s: number; step_ms_median?: number; step_ms: number; peak_gib: number };
    lines.push(line);
    table.push(`| PyTorch+PEFT ${p.mode} | ${p.tokens_per_s.toFixed(0)} | ${(p.step_ms_median ?? p.step_ms).toFixed(1)} | ${p.peak_gib.toFixed(2)} | ${(tokensPerSecond / p.tokens_per_s).toFixed(3)} |`);
  }
}
if (args.includes("--jsonl")) appendFileSync(flag("jsonl", ""), `${lines.join("\n")}\n`);
else writeFileSync(join(out, `train-${label}.jsonl`), `${lines.join("\n")}\n`);
console.log(table.join("\n"));
