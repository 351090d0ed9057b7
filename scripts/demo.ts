// `npm run demo`: what gpuffi does on this machine, end to end, in a few seconds.
//  1. The runtime and its FFI; where the CUDA runtime was found, what it says about the driver
//     and the GPUs; libllama and its devices.
//  2. Learning: a tiny llama model (random weights, written in TypeScript) loaded into llama.cpp;
//     a LoRA adapter trained on a short text with gpuffi's trainer (on a CUDA GPU when libllama
//     has one, else on the CPU), the loss printed as it falls; greedy generation before and after
//     training, then the adapter taken off and put back on the same context, without reloading.
// Runs on any runtime: `bun scripts/demo.ts`, `deno run -A scripts/demo.ts`, `npm run demo`.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LibraryNotFoundError, capabilities, runtimeVersion } from "../src/ffi/index.ts";
import { CudaError, cudaRuntime, formatCudaVersion } from "../src/cuda/index.ts";
import { makeTinyModel, writeGgufFile } from "../src/formats/index.ts";
import { Ggml } from "../src/ggml/index.ts";
import { Llama, LlamaContext, LlamaModel } from "../src/llama/index.ts";
import { Dataset, LoraTrainer, modelTokenizer } from "../src/lora/index.ts";

const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
const line = (label: string, text: string) => console.log(`${label.padEnd(14)} ${text}`);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

console.log(`gpuffi ${version} — what runs here\n`);
line("runtime", runtimeVersion());
line("structs", capabilities.structShim ? "by value through the TinyCC shim (bun:ffi has none)" : "by value, natively");
line("async calls", capabilities.nonblockingCalls ? "off the JS thread (nonblocking FFI)" : "none in this runtime's FFI: gpuffi polls with back-off");

try {
  const cuda = cudaRuntime();
  line("libcudart", `${cuda.path} (CUDA runtime ${formatCudaVersion(cuda.runtimeVersion())})`);
  const driver = cuda.driverVersion();
  line("CUDA driver", driver === undefined ? "none installed" : `supports CUDA ${formatCudaVersion(driver)}`);
  try {
    line("GPUs", String(cuda.deviceCount()));
  } catch (error) {
    if (!(error instanceof CudaError)) throw error;
    line("GPUs", `none: ${error.message}`);
  }
} catch (error) {
  if (!(error instanceof LibraryNotFoundError)) throw error;
  line("libcudart", `not found: ${error.message.split("\n")[0]}`);
}

let llama: Llama;
try {
  llama = Llama.shared();
} catch (error) {
  if (!(error instanceof LibraryNotFoundError)) throw error;
  line("libllama", "not found (install the optional dependency @node-llama-cpp/linux-x64, or set GPUFFI_LLAMA_DIR)");
  process.exit(0);
}
line("libllama", `${llama.path} (llama.cpp ${llama.versions.llama}, ggml ${llama.versions.ggml})`);
line("devices", llama.devices().map((d) => d.description).join(", "));
console.log();

// The tiny vocabulary spells lowercase words from letters and a few merges; the comma and the
// full stop are byte tokens. 68 tokens, one training sequence.
const text = "gpuffi trained this adapter in a few seconds, and now the tiny model writes this line.";
const prompt = "gpuffi";
// ggml's CPU workers spin while they wait, and on a model this small a second thread has little
// to share: on a 2-core machine that other processes also used, a training step took 25-33 ms on
// one thread and 41-307 ms on two (generation about 1 ms a token against up to 20).
const threads = 1;
const gpu = Ggml.open(llama.dir).devices().find((d) => d.type === "gpu" && d.name.startsWith("cuda:"));
const device = gpu?.name ?? "cpu";
const where = gpu ? `on the GPU (${device}, ${llama.devices().find((d) => d.name === gpu.ggmlName)?.description ?? gpu.ggmlName})` : `on the CPU (${threads} thread)`;

const dir = mkdtempSync(join(tmpdir(), "gpuffi-demo-"));
try {
  const modelPath = join(dir, "tiny.gguf");
  // Wide enough (256) that the frozen output layer can make one token far likelier than the rest:
  // at 64 wide it stayed at 1.47 nats after 300 steps, though greedy generation was already right.
  await writeGgufFile(modelPath, makeTinyModel({ seed: 42, embd: 256, heads: 4, ff: 512 }));
  using model = await LlamaModel.load(modelPath, { llama, gpuLayers: "all" });
  using context = LlamaContext.create(model, { contextSize: 128, threads });
  const { layers, embedding, vocab, parameters } = model.shape;
  line("model", `a tiny llama, random weights: ${layers} layers ${embedding} wide, ${vocab} tokens, ${(parameters / 1e6).toFixed(1)}M parameters, ${gpu ? "on the GPU" : "on the CPU"}`);

  const data = Dataset.fromText(text, { tokenizer: modelTokenizer(model) });
  const length = data.sequences[0]!.tokens.length;
  const continuation = length - model.tokenize(prompt).length;
  const greedy = async () => prompt + (await context.generateText(prompt, { maxTokens: continuation, temperature: 0 })).text;
  const verdict = (out: string) => {
    if (out === text) return "the text, exactly";
    let i = 0;
    while (out[i] === text[i]) i++;
    return `not the text: differs from character ${i} on`;
  };
  line("text", `${JSON.stringify(text)} (${length} tokens)`);
  const before = await greedy();
  line("before", `${JSON.stringify(before)} (the base model, greedy)`);

  const steps = 100;
  using trainer = await LoraTrainer.create({ base: modelPath, data, ctx: data.ctx, rank: 8, lr: 1e-2, schedule: "cosine", steps, device, threads, llama, seed: 1 });
  line("training", `a rank-8 LoRA adapter ${where}: ${steps} steps of AdamW (lr 1e-2, cosine) on the text`);
  const trainStart = performance.now();
  for await (const r of trainer.run()) {
    if (r.step === 1 || r.step % 20 === 0) line("", `step ${String(r.step).padStart(3)}   loss ${r.loss.toFixed(3)}`);
  }
  const trainMs = performance.now() - trainStart;
  line("", `${seconds(trainMs)}, ${(trainMs / steps).toFixed(0)} ms a step`);

  using adapter = trainer.toAdapter(model);
  context.setAdapters([{ adapter, scale: 1 }]);
  const after = await greedy();
  line("after", `${JSON.stringify(after)} (with the adapter, greedy: ${verdict(after)})`);

  line("hot swap", "the adapter off and on again on the same context, nothing reloaded:");
  for (const on of [false, true]) {
    context.setAdapters(on ? [{ adapter, scale: 1 }] : []);
    const out = await greedy();
    const same = out === (on ? after : before) ? `= ${on ? "after" : "before"}` : `differs from ${on ? "after" : "before"}`;
    line(on ? "  on" : "  off", `${JSON.stringify(out)} (${same})`);
  }
  line("done", `${seconds(performance.now())} since the runtime started`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
