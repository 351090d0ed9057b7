// llama.cpp with its layers split over several GPUs: gpuffi (LlamaModel, split mode "layer")
// against native llama-bench -sm layer, from the same CUDA build, on the same model. It runs
// bench/llama.bench.ts (pp512, tg128, generate()) with exactly the first `--gpus` GPUs visible.
// Layer split is the default of both sides in llama.cpp 0.5.0 (llama_model_default_params and
// llama-bench's -sm); this checks both defaults before it starts, so that the figures cannot
// silently compare another placement.
//   <runtime> bench/split.bench.ts LLAMA_BENCH MODEL RESULTS_DIR [--gpus N] [-- llama.bench.ts options]
// Writes llama-layer-split-<N>gpu-<runtime>.{md,json}. Refuses, with exit code 2, when fewer
// than N GPUs are visible (N ≥ 2; default 2).
import { execFileSync, spawnSync } from "node:child_process";
import { dirname, resolve } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { cudaRuntime } from "../src/cuda/index.ts";
import { Llama } from "../src/llama/index.ts";
import { SplitMode } from "../src/llama/bindings.ts";
import { runtimeCommand } from "../test/cuda/nccl/rendezvous-helpers.ts";

const { values, positionals } = parseArgs({ args: process.argv.slice(2), options: { gpus: { type: "string", default: "2" } }, allowPositionals: true });
const [llamaBench, modelPath, resultsDir, ...passThrough] = positionals;
const gpus = Number(values.gpus);
function refuse(why: string): never {
  console.error(`bench/split.bench.ts: ${why}`);
  process.exit(2);
}
if (!llamaBench || !modelPath || !resultsDir || !(Number.isInteger(gpus) && gpus >= 2)) {
  refuse("usage: bench/split.bench.ts LLAMA_BENCH MODEL RESULTS_DIR [--gpus N ≥ 2] [-- llama.bench.ts options]");
}

let visible = 0;
try {
  visible = cudaRuntime().deviceCount();
} catch (error) {
  refuse(`no usable GPU: ${(error as Error).message.split("\n")[0]}`);
}
if (visible < gpus) refuse(`needs ${gpus} GPUs; ${visible} visible`);

const llamaDir = process.env.GPUFFI_LLAMA_DIR ?? dirname(resolve(llamaBench));
const llama = Llama.load({ dir: llamaDir });
const ours = llama.lib.symbols.llama_model_default_params().split_mode;
llama.dispose();
if (ours !== SplitMode.layer) refuse(`llama_model_default_params() in ${llamaDir} splits with mode ${ours}, not layer (${SplitMode.layer})`);
const help = execFileSync(resolve(llamaBench), ["--help"], { encoding: "utf8" });
if (!/--split-mode .*\(default: layer\)/.test(help)) refuse(`${llamaBench} does not split by layer by default: ${help.split("\n").find((l) => l.includes("--split-mode"))}`);

// The first N of the GPUs this process may use (CUDA_VISIBLE_DEVICES may already narrow them).
const devices = (process.env.CUDA_VISIBLE_DEVICES?.split(",") ?? Array.from({ length: visible }, (_, i) => String(i))).slice(0, gpus);
const [command, args] = runtimeCommand(fileURLToPath(new URL("./llama.bench.ts", import.meta.url)));
const run = spawnSync(command, [...args, llamaBench, modelPath, resultsDir, "--label", `layer-split-${gpus}gpu`, ...passThrough], {
  stdio: "inherit",
  env: { ...process.env, GPUFFI_LLAMA_DIR: llamaDir, CUDA_VISIBLE_DEVICES: devices.join(",") },
});
process.exit(run.status ?? 1);
