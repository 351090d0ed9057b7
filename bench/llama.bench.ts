// pp512 / tg128 tokens/s through gpuffi next to native llama-bench from the same build on the
// same model in the same run, plus the cost of a LoRA hot swap between two requests.
//   <runtime> bench/llama.bench.ts LLAMA_BENCH MODEL RESULTS_DIR [--gpu-layers N] [--threads N]
//       [--reps N] [--turns N] [--pause-ms N] [--lora-a FILE --lora-b FILE] [--node-llama-cpp PACKAGES] [--label NAME]
// The libllama used is the one next to LLAMA_BENCH (GPUFFI_LLAMA_DIR defaults to its directory).
// --node-llama-cpp adds node-llama-cpp on the same libllama as a third side taking turns
// (bench/node-llama-cpp.bench.mjs in a child process of this runtime, Bun or Node; PACKAGES is
// the node_modules that scripts/pack-device.sh --node-llama-cpp packs).
// gpuffi's loops do what llama-bench's test_prompt/test_gen do (tools/llama-bench/llama-bench.cpp
// in llama.cpp 0.5.0): a context of n_prompt + n_gen tokens with llama.cpp's default batch sizes,
// flash attention and KV types; a ggml threadpool with ggml's default parameters (poll 50)
// attached; one warm-up (the whole prompt, or one generated token); the KV cache cleared before
// every timed repetition; random tokens after BOS; logits of the last token of each decode only;
// llama_synchronize at the end of the prompt and after every generated token. "generate" adds
// greedy sampling (on the GPU where the model's logits are computed there, and once more with
// sampleOnDevice: false, on the CPU) and the async iterator; "pp512, no threadpool" is gpuffi's
// default context, kept to show what attaching the pool changes.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, hostname } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runtimeName, runtimeVersion } from "../src/ffi/index.ts";
import { Batch, Llama, LlamaContext, LlamaModel, LlamaThreadpool, LoraAdapter } from "../src/llama/index.ts";

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  options: {
    "gpu-layers": { type: "string", default: "99" },
    threads: { type: "string", default: String(availableParallelism()) },
    reps: { type: "string", default: "10" },
    turns: { type: "string", default: "6" },
    "pause-ms": { type: "string", default: "1000" },
    "lora-a": { type: "string" },
    "lora-b": { type: "string" },
    "node-llama-cpp": { type: "string" },
    label: { type: "string", default: process.env.GPUFFI_BENCH_LABEL ?? "gpu" },
  },
  allowPositionals: true,
});
const [llamaBench, modelPath, resultsDir] = positionals;
if (!llamaBench || !modelPath || !resultsDir) {
  throw new Error("usage: bench/llama.bench.ts LLAMA_BENCH MODEL RESULTS_DIR [--gpu-layers N] [--threads N] [--reps N] [--turns N] [--pause-ms N] [--lora-a FILE --lora-b FILE] [--node-llama-cpp PACKAGES] [--label NAME]");
}
const gpuLayers = Number(values["gpu-layers"]);
const threads = Number(values.threads);
const reps = Number(values.reps);
const turns = Number(values.turns);
const pauseMs = Number(values["pause-ms"]);
const [promptTokens, genTokens] = [512, 128];

type Samples = number[]; // tokens/s of each timed repetition
const mean = (xs: Samples) => xs.reduce((a, b) => a + b, 0) / xs.length;
const median = (xs: Samples) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const stddev = (xs: Samples) => Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / Math.max(xs.length - 1, 1));

// ----- native llama-bench, and node-llama-cpp in a process of its own ---------------------------

const llamaDir = process.env.GPUFFI_LLAMA_DIR ?? dirname(resolve(llamaBench));

/** One test of a child process's run, in llama-bench's JSON shape. */
interface ChildResult { n_prompt: number; n_gen: number; avg_ts: number; stddev_ts: number; samples_ts: Samples }
const runChild = (command: string, args: string[]) =>
  JSON.parse(execFileSync(command, args, { encoding: "utf8", maxBuffer: 64 << 20, stdio: ["ignore", "pipe", "inherit"] })) as ChildResult[];
const runLlamaBench = () => runChild(resolve(llamaBench), [
  "-m", modelPath, "-p", String(promptTokens), "-n", String(genTokens), "-ngl", String(gpuLayers), "-t", String(threads), "-r", String(reps), "-o", "json",
]);
const nodeLlamaCpp = values["node-llama-cpp"];
if (nodeLlamaCpp !== undefined && runtimeName === "deno") throw new Error("--node-llama-cpp runs its child on this runtime: use Bun or Node");
const runNodeLlamaCpp = () => runChild(process.execPath, [
  fileURLToPath(new URL("node-llama-cpp.bench.mjs", import.meta.url)), "--packages", nodeLlamaCpp!, "--llama-dir", llamaDir,
  "--model", modelPath, "--gpu-layers", String(gpuLayers), "--threads", String(threads), "--reps", String(reps),
]);

// ----- gpuffi ----------------------------------------------------------------------------------

const llama = Llama.load({ dir: llamaDir });
const model = await LlamaModel.load(modelPath, { llama, gpuLayers });
const vocab = model.shape.vocab;
const random = () => Math.floor(Math.random() * vocab);
const bos = model.specialTokens.bos;

function timed(run: () => void): number {
  const start = performance.now();
  run();
  return (performance.now() - start) / 1000;
}

// test_prompt: batches of n_batch random tokens (BOS first), llama_synchronize at the end.
function decodePrompt(context: LlamaContext, batch: Batch, count: number): void {
  for (let done = 0; done < count; done += batch.capacity) {
    batch.clear();
    const n = Math.min(batch.capacity, count - done);
    for (let i = 0; i < n; i++) batch.add(done === 0 && i === 0 ? bos : random(), done + i, 0, i === n - 1);
    context.decode(batch);
  }
  context.synchronize();
}

// test_gen: one token per decode from BOS on, llama_synchronize after each.
function decodeGenerated(context: LlamaContext, batch: Batch, count: number): void {
  let token = bos;
  for (let i = 0; i < count; i++) {
    batch.clear();
    batch.add(token, i, 0, true);
    context.decode(batch);
    context.synchronize();
    token = random();
  }
}

/** One llama-bench test instance: a fresh context (and threadpool), a warm-up, `reps` timed runs. */
function measure(test: { prompt: number; gen: number }, threadpool: boolean): Samples {
  const pool = threadpool ? LlamaThreadpool.create({ llama, threads }) : undefined;
  const context = LlamaContext.create(model, { contextSize: test.prompt + test.gen, threads, threadpool: pool });
  const batch = new Batch(llama, context.batchSize);
  const run = () => (test.prompt > 0 ? decodePrompt(context, batch, test.prompt) : decodeGenerated(context, batch, test.gen));
  try {
    if (test.prompt > 0) decodePrompt(context, batch, test.prompt);
    else decodeGenerated(context, batch, 1);
    const samples: Samples = [];
    for (let rep = 0; rep < reps; rep++) {
      context.clearMemory();
      samples.push((test.prompt + test.gen) / timed(run));
    }
    return samples;
  } finally {
    batch.dispose();
    context.dispose();
    pool?.dispose();
  }
}

// generate(): greedy sampling in llama.cpp (on the GPU, part of each decode, unless sampleOnDevice
// is false) and the async iterator's turn of the event loop per token.
async function measureGenerate(sampleOnDevice?: boolean): Promise<Samples> {
  const pool = LlamaThreadpool.create({ llama, threads });
  const context = LlamaContext.create(model, { contextSize: genTokens + 8, threads, threadpool: pool });
  try {
    const samples: Samples = [];
    for (let rep = -1; rep < reps; rep++) {
      context.clearMemory();
      const start = performance.now();
      const { tokens } = await context.generateText([bos], { maxTokens: genTokens, temperature: 0, stopAtEndOfGeneration: false, sampleOnDevice });
      if (rep >= 0) samples.push(tokens.length / ((performance.now() - start) / 1000));
    }
    return samples;
  } finally {
    context.dispose();
    pool.dispose();
  }
}

// The sides take turns in one fixed cycle (llama-bench, gpuffi[, node-llama-cpp]), so that each
// always follows the same other side: a pp512 run lasts ~8 ms on an H100, and GPU clock state
// moved figures by ±20% between runs of the same binary. Every repetition of every turn is
// pooled; means (llama-bench's avg_ts) and medians are compared. (An order rotating every turn
// ran a side twice in a row at every other turn boundary: on the H200 gpuffi's loops measured
// 4-7% slower in those turns, a 2 s pause before each side did not help, and llama-bench was
// slower too where it followed itself. Each side starts after the same short pause.)
const pp = { prompt: promptTokens, gen: 0 };
const tg = { prompt: 0, gen: genTokens };
const nativeRuns: ChildResult[][] = [];
const nodeLlamaCppRuns: ChildResult[][] = [];
// node-llama-cpp is a guest here: if it fails, the run goes on without it and the report says why.
let nodeLlamaCppFailure: string | undefined;
const runNodeLlamaCppTurn = async () => {
  if (nodeLlamaCppFailure !== undefined) return;
  try {
    nodeLlamaCppRuns.push(runNodeLlamaCpp());
  } catch (error) {
    nodeLlamaCppFailure = error instanceof Error ? error.message.split("\n")[0] : String(error);
  }
};
const gpuffiTurns: { pp: Samples; tg: Samples; ppNoThreadpool: Samples; generate: Samples; generateCpuSampling: Samples }[] = [];
const sides = [
  async () => nativeRuns.push(runLlamaBench()),
  async () => gpuffiTurns.push({ pp: measure(pp, true), tg: measure(tg, true), ppNoThreadpool: measure(pp, false), generate: await measureGenerate(), generateCpuSampling: await measureGenerate(false) }),
  ...(nodeLlamaCpp === undefined ? [] : [runNodeLlamaCppTurn]),
];
for (let turn = 0; turn < turns; turn++) {
  for (let i = 0; i < sides.length; i++) {
    await new Promise((resolve) => setTimeout(resolve, pauseMs));
    await sides[i]!();
  }
}
const childSamples = (runs: ChildResult[][], test: "pp" | "tg") =>
  runs.flatMap((run) => run.find((r) => (test === "pp" ? r.n_prompt === promptTokens && r.n_gen === 0 : r.n_gen === genTokens && r.n_prompt === 0))!.samples_ts);
const nativeSamples = (test: "pp" | "tg") => childSamples(nativeRuns, test);
const gpuffiSamples = (key: keyof (typeof gpuffiTurns)[number]) => gpuffiTurns.flatMap((t) => t[key]);

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
  hotSwap = { setAdaptersMs: median(swaps) * 1000, firstDecodeExtraMs: (median(firsts) - median(steady)) * 1000 };
  batch.dispose();
  context.dispose();
  a.dispose();
  b.dispose();
}
model.dispose();

// ----- report ----------------------------------------------------------------------------------

const rows = [
  { test: `gpuffi pp${promptTokens}`, native: nativeSamples("pp"), measured: gpuffiSamples("pp") },
  { test: `gpuffi tg${genTokens}`, native: nativeSamples("tg"), measured: gpuffiSamples("tg") },
  { test: `gpuffi tg${genTokens} via generate()${model.outputOnGpu ? " (greedy sampled on the GPU)" : ""}`, native: nativeSamples("tg"), measured: gpuffiSamples("generate") },
  { test: `gpuffi tg${genTokens} via generate(), sampleOnDevice: false`, native: nativeSamples("tg"), measured: gpuffiSamples("generateCpuSampling") },
  { test: `gpuffi pp${promptTokens}, no threadpool`, native: nativeSamples("pp"), measured: gpuffiSamples("ppNoThreadpool") },
  ...(nodeLlamaCppRuns.length === 0 ? [] : [
    { test: `node-llama-cpp pp${promptTokens}`, native: nativeSamples("pp"), measured: childSamples(nodeLlamaCppRuns, "pp") },
    { test: `node-llama-cpp tg${genTokens} via sequence.evaluate()`, native: nativeSamples("tg"), measured: childSamples(nodeLlamaCppRuns, "tg") },
  ]),
].map((r) => ({
  test: r.test,
  native: { mean: mean(r.native), median: median(r.native), stddev: stddev(r.native) },
  measured: { mean: mean(r.measured), median: median(r.measured), stddev: stddev(r.measured) },
  ratio: mean(r.measured) / mean(r.native),
  medianRatio: median(r.measured) / median(r.native),
}));
// Paths inside the repo are recorded relative to it: results name no machine's folders.
const shown = (path: string) => (resolve(path).startsWith(process.cwd() + "/") ? relative(process.cwd(), resolve(path)) : path);
const result = {
  runtime: runtimeVersion(),
  host: hostname(),
  cpu: cpus()[0]?.model,
  devices: llama.devices().map((d) => d.description),
  library: shown(llama.path),
  versions: llama.versions,
  // OPENMP = 1 or not: without OpenMP, a context with no threadpool starts ggml's threads on every decode.
  systemInfo: llama.systemInfo,
  model: shown(modelPath),
  gpuLayers,
  threads,
  reps,
  turns,
  pauseMs,
  rows,
  samples: { gpuffi: gpuffiTurns, llamaBench: nativeRuns, nodeLlamaCpp: nodeLlamaCppRuns },
  nodeLlamaCppFailure,
  hotSwap,
};
const figure = (s: { mean: number; stddev: number }) => `${s.mean.toFixed(1)} ± ${s.stddev.toFixed(1)}`;
const markdown = [
  `# llama.cpp through gpuffi vs llama-bench (${result.runtime}, ${result.devices.join(" + ")})`,
  "",
  `model ${shown(modelPath)}, ${gpuLayers} GPU layers, ${threads} threads, ${llama.versions.llama} (${llama.versions.commit}); ` +
    `llama-bench, gpuffi${nodeLlamaCpp === undefined ? "" : " and node-llama-cpp"} took ${turns} turns of ${reps} repetitions each, in one fixed order (each side after the same other one and a ${pauseMs} ms pause); every repetition is pooled (mean ± sd, and medians)`,
  "",
  `system info: ${llama.systemInfo.trim()}`,
  "",
  "| test | llama-bench t/s | measured t/s | ratio of means | ratio of medians |",
  "| --- | ---: | ---: | ---: | ---: |",
  ...rows.map((r) => `| ${r.test} | ${figure(r.native)} | ${figure(r.measured)} | ${r.ratio.toFixed(3)} | ${r.medianRatio.toFixed(3)} |`),
  "",
  `tg${genTokens} medians turn by turn, t/s — llama-bench: ${nativeRuns.map((run) => median(childSamples([run], "tg")).toFixed(0)).join(", ")}; ` +
    `gpuffi: ${gpuffiTurns.map((t) => median(t.tg).toFixed(0)).join(", ")}; generate(): ${gpuffiTurns.map((t) => median(t.generate).toFixed(0)).join(", ")}`,
  ...(nodeLlamaCppFailure === undefined ? [] : ["", `node-llama-cpp failed after ${nodeLlamaCppRuns.length} turns: ${nodeLlamaCppFailure}`]),
  ...(hotSwap ? ["", `LoRA hot swap between requests: setAdapters ${hotSwap.setAdaptersMs.toFixed(3)} ms; first one-token decode after it minus a steady one: ${hotSwap.firstDecodeExtraMs.toFixed(3)} ms (medians of 20)`] : []),
].join("\n");
console.log(markdown);
mkdirSync(resultsDir, { recursive: true });
const name = `llama-${values.label}-${runtimeName}`;
writeFileSync(join(resultsDir, `${name}.json`), JSON.stringify(result, null, 2) + "\n");
writeFileSync(join(resultsDir, `${name}.md`), markdown + "\n");
