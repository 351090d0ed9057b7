// `npm run demo`: what gpuffi does on this machine, end to end.
//  1. The runtime and its FFI; where the CUDA runtime was found, what it says about the driver
//     and the GPUs.
//  2. A tiny llama model and a LoRA adapter, written in TypeScript (random weights, seeded), loaded
//     into llama.cpp through gpuffi, and the same prompt generated with and without the adapter —
//     switching adapters between requests on one context, without reloading anything.
// Runs on any runtime: `bun scripts/demo.ts`, `deno run -A scripts/demo.ts`, `npm run demo`.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LibraryNotFoundError, capabilities, runtimeVersion } from "../src/ffi/index.ts";
import { CudaError, cudaRuntime, formatCudaVersion } from "../src/cuda/index.ts";
import { makeTinyLora, makeTinyModel, openGguf, writeGgufFile } from "../src/formats/index.ts";
import { Llama, LlamaContext, LlamaModel, LoraAdapter } from "../src/llama/index.ts";

const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
const line = (label: string, text: string) => console.log(`${label.padEnd(14)} ${text}`);

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

const dir = mkdtempSync(join(tmpdir(), "gpuffi-demo-"));
try {
  const modelPath = join(dir, "tiny.gguf");
  const adapterPath = join(dir, "tiny-lora.gguf");
  await writeGgufFile(modelPath, makeTinyModel({ seed: 42 }));
  {
    await using base = await openGguf(modelPath);
    await writeGgufFile(adapterPath, makeTinyLora(base.header, { rank: 8, alpha: 16, seed: 7 }));
  }
  line("made", `a tiny llama model and a rank-8 LoRA adapter in ${dir}`);

  using model = await LlamaModel.load(modelPath, { llama, gpuLayers: "all" });
  using adapter = await LoraAdapter.load(model, adapterPath);
  using context = LlamaContext.create(model, { contextSize: 128 });
  const ranOn = llama.supportsGpuOffload ? "GPU (all layers offloaded)" : "CPU";
  const prompt = "the cat";
  const request = { maxTokens: 24, seed: 1, temperature: 0.8 };
  const plain = await context.generateText(prompt, { ...request, adapters: [] });
  const adapted = await context.generateText(prompt, { ...request, adapters: [{ adapter, scale: 1 }] });
  line("generated on", `${ranOn}, ${model.description}`);
  line("without LoRA", JSON.stringify(prompt + plain.text));
  line(`with LoRA ×1`, JSON.stringify(prompt + adapted.text));
  line("", "(random weights: the text is noise; what matters is that the adapter changes it, between two requests on one context)");
} finally {
  rmSync(dir, { recursive: true, force: true });
}
