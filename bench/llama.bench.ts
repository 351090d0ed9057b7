// pp512 / tg128 tokens/s through gpuffi next to native llama-bench from the same build on the
// same model in the same run, plus the cost of a LoRA hot swap between two requests.
//   <runtime> bench/llama.bench.ts LLAMA_BENCH MODEL RESULTS_DIR [--gpu-layers N] [--threads N]
//       [--reps N] [--lora-a FILE --lora-b FILE] [--label NAME]
// The libllama used is the one next to LLAMA_BENCH (GPUFFI_LLAMA_DIR defaults to its directory).
// gpuffi's loops mirror llama-bench's test_prompt/test_gen: random tokens, the same context
// sizes, llama_synchronize after each decode; "generate" adds sampling and the async iterator.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, hostname } from "node:os";
import { dirname, join, resolve } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { runtimeName, runtimeVersion } from "../src/ffi/index.ts";
import { Batch, Llama, LlamaContext, LlamaModel, LoraAdapter } from "../src/lora/index.ts";

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  options: {
    "gpu-layers": { type: "string", default: "99" },
    threads: { type: "string", default: String(availableParallelism()) },
    reps: { type: "string", default: "10" },
    "lora-a": { type: "string" },
    "lora-b": { type: "string" },
    label: { type: "string", default: "gpu" },
  },
  allowPositionals: true,
});
const [llamaBench, modelPath, resultsDir] = positionals;
if (!llamaBench || !modelPath || !resultsDir) {
  throw new Error("usage: bench/llama.bench.ts LLAMA_BENCH MODEL RESULTS_DIR [--gpu-layers N] [--threads N] [--reps N] [--lora-a FILE --lora-b FILE] [--label NAME]");
}
const gpuLayers = Number(values["gpu-layers"]);
const threads = Number(values.threads);
const reps = Number(values.reps);
const [promptTokens, genTokens] = [512, 128];

// ----- native llama-bench ----------------------------------------------------------------------

interface NativeResult { n_prompt: number; n_gen: number; avg_ts: number; stddev_ts: number }
function runLlamaBench(): NativeResult[] {
  return JSON.parse(execFileSync(resolve(llamaBench!), [
    "-m", modelPath!, "-p", String(promptTokens), "-n", String(genTokens), "-ngl", String(gpuLayers), "-t", String(threads), "-r", String(reps), "-o", "json",
  ], { encoding: "utf8", maxBuffer: 64 << 20, stdio: ["ignore", "pipe", "inherit"] })) as NativeResult[];
}
// llama-bench and gpuffi's loops take turns, twice each, and each side's better figure counts:
// a pp512 run lasts ~8 ms on an H100, and figures moved by ±20% between runs of the same binary.
const nativeRuns = [runLlamaBench()];
const nativeTs = (test: "pp" | "tg") =>
  Math.max(...nativeRuns.map((run) => run.find((r) => (test === "pp" ? r.n_prompt === promptTokens && r.n_gen === 0 : r.n_gen === genTokens && r.n_prompt === 0))!.avg_ts));

// ----- gpuffi ----------------------------------------------------------------------------------

const llama = Llama.load({ dir: process.env.GPUFFI_LLAMA_DIR ?? dirname(resolve(llamaBench)) });
const model = await LlamaModel.load(modelPath, { llama, gpuLayers });
const vocab = model.shape.vocab;
const random = () => Math.floor(Math.random() * vocab);
const bos = model.specialTokens.bos;

function timed(run: () => void): number {
  const start = performance.now();
  run();
  return (performance.now() - start) / 1000;
}

/** One llama-bench-like measurement: a warm-up, then `reps` timed runs; mean tokens/s. */
function measure(contextSize: number, tokens: number, body: (context: LlamaContext, batch: Batch) => void): number {
  const context = LlamaContext.create(model, { contextSize, threads });
  const batch = new Batch(llama, context.batchSize);
  try {
    const rates: number[] = [];
    for (let rep = -1; rep < reps; rep++) {
      context.clearMemory();
      const seconds = timed(() => body(context, batch));
      if (rep >= 0) rates.push(tokens / seconds);
    }
    return rates.reduce((a, b) => a + b, 0) / rates.length;
  } finally {
    batch.dispose();
    context.dispose();
  }
}

const measurePrompt = () => measure(promptTokens, promptTokens, (context, batch) => {
  for (let done = 0; done < promptTokens; done += batch.capacity) {
    batch.clear();
    const n = Math.min(batch.capacity, promptTokens - done);
    for (let i = 0; i < n; i++) batch.add(done === 0 && i === 0 ? bos : random(), done + i, 0, i === n - 1);
    context.decode(batch);
  }
  context.synchronize();
});

const measureGeneration = () => measure(genTokens, genTokens, (context, batch) => {
  let token = bos;
  for (let i = 0; i < genTokens; i++) {
    batch.clear();
    batch.add(token, i, 0, true);
    context.decode(batch);
    context.synchronize();
    token = random();
  }
});

const turns = [{ pp: measurePrompt(), tg: measureGeneration() }];
nativeRuns.push(runLlamaBench());
turns.push({ pp: measurePrompt(), tg: measureGeneration() });
const pp = Math.max(...turns.map((t) => t.pp));
const tg = Math.max(...turns.map((t) => t.tg));

// generate(): greedy sampling in llama.cpp and the async iterator's turn of the event loop per token.
const generateRates: number[] = [];
{
  const context = LlamaContext.create(model, { contextSize: genTokens + 8, threads });
  try {
    for (let rep = -1; rep < reps; rep++) {
      context.clearMemory();
      const start = performance.now();
      const { tokens } = await context.generateText([bos], { maxTokens: genTokens, temperature: 0, stopAtEndOfGeneration: false });
      if (rep >= 0) generateRates.push(tokens.length / ((performance.now() - start) / 1000));
    }
  } finally {
    context.dispose();
  }
}
const generateTs = generateRates.reduce((a, b) => a + b, 0) / generateRates.length;

// ----- LoRA hot swap between two requests ------------------------------------------------------

let hotSwap: { setAdaptersMs: number; firstDecodeExtraMs: number } | undefined;
if (values["lora-a"] && values["lora-b"]) {
  const a = await LoraAdapter.load(model, values["lora-a"]);
  const b = await LoraAdapter.load(model, values["lora-b"]);
  const context = LlamaContext.create(model, { contextSize: 64, threads });
  const batch = new Batch(llama, 8);
  const decodeOne = () => {
    batch.clear();
    batch.add(bos, 0, 0, true);
    context.clearMemory();
    context.decode(batch);
    context.synchronize();
  };
  const swaps: number[] = [];
  const firsts: number[] = [];
  const steady: number[] = [];
  for (let i = 0; i < 20; i++) {
    const adapter = i % 2 === 0 ? a : b;
    swaps.push(timed(() => context.setAdapters([{ adapter }])));
    firsts.push(timed(decodeOne));
    steady.push(timed(decodeOne));
  }
  const median = (xs: number[]) => xs.sort((x, y) => x - y)[xs.length >> 1]! * 1000;
  hotSwap = { setAdaptersMs: median(swaps), firstDecodeExtraMs: median(firsts) - median(steady) };
  batch.dispose();
  context.dispose();
  a.dispose();
  b.dispose();
}
model.dispose();

// ----- report ----------------------------------------------------------------------------------

const rows = [
  { test: `pp${promptTokens}`, native: nativeTs("pp"), gpuffi: pp },
  { test: `tg${genTokens}`, native: nativeTs("tg"), gpuffi: tg },
  { test: `tg${genTokens} via generate()`, native: nativeTs("tg"), gpuffi: generateTs },
];
const result = {
  runtime: runtimeVersion(),
  host: hostname(),
  cpu: cpus()[0]?.model,
  devices: llama.devices().map((d) => d.description),
  library: llama.path,
  versions: llama.versions,
  model: modelPath,
  gpuLayers,
  threads,
  reps,
  rows: rows.map((r) => ({ ...r, ratio: r.gpuffi / r.native })),
  turns: { gpuffi: turns, llamaBench: nativeRuns.map((run) => run.map((r) => ({ n_prompt: r.n_prompt, n_gen: r.n_gen, avg_ts: r.avg_ts, stddev_ts: r.stddev_ts }))) },
  hotSwap,
};
const markdown = [
  `# llama.cpp through gpuffi vs llama-bench (${result.runtime}, ${result.devices.join(" + ")})`,
  "",
  `model ${modelPath}, ${gpuLayers} GPU layers, ${threads} threads, ${reps} repetitions, ${llama.versions.llama} (${llama.versions.commit}); llama-bench and gpuffi took turns twice, each side's better figure is shown`,
  "",
  "| test | llama-bench t/s | gpuffi t/s | ratio |",
  "| --- | ---: | ---: | ---: |",
  ...result.rows.map((r) => `| ${r.test} | ${r.native.toFixed(1)} | ${r.gpuffi.toFixed(1)} | ${r.ratio.toFixed(3)} |`),
  ...(hotSwap ? ["", `LoRA hot swap between requests: setAdapters ${hotSwap.setAdaptersMs.toFixed(3)} ms; first one-token decode after it minus a steady one: ${hotSwap.firstDecodeExtraMs.toFixed(3)} ms (medians of 20)`] : []),
].join("\n");
console.log(markdown);
mkdirSync(resultsDir, { recursive: true });
const name = `llama-${values.label}-${runtimeName}`;
writeFileSync(join(resultsDir, `${name}.json`), JSON.stringify(result, null, 2) + "\n");
writeFileSync(join(resultsDir, `${name}.md`), markdown + "\n");
