// `gpuffi generate -m MODEL [--lora FILE[:SCALE]]... [--gpu-layers N] [-n N] [--seed N] [--json] PROMPT`.
import process from "node:process";
import { parseArgs } from "node:util";
import { Llama, LlamaContext, LlamaModel, LoraAdapter } from "../llama/index.ts";
import { type CliIO, type Command, UsageError, integerOption, toJson } from "./command.ts";

const usage = `usage: gpuffi generate -m MODEL [--lora FILE[:SCALE]]... [--gpu-layers N] [-n N] [--seed N] [--temp T] [--json] PROMPT

Generates a continuation of PROMPT with llama.cpp, optionally through LoRA adapters.
  -m, --model FILE       the GGUF model
  --lora FILE[:SCALE]    a LoRA adapter and its scale (default 1); repeatable
  --gpu-layers N         layers to offload to the GPU (default: all that a GPU build can take)
  -n N                   tokens to generate (default 64)
  --seed N               sampling seed (default: random)
  --temp T               temperature; 0 is greedy (default 0.8)
  --json                 print {"text", "tokens", ...} instead of the text`;

function progressBar(fraction: number): string {
  const width = 30;
  const done = Math.round(fraction * width);
  return `\rloading [${"#".repeat(done)}${" ".repeat(width - done)}] ${(fraction * 100).toFixed(0).padStart(3)}%`;
}

function parseLora(spec: string): { path: string; scale: number } {
  const at = spec.lastIndexOf(":");
  const scale = at > 0 ? Number(spec.slice(at + 1)) : Number.NaN;
  if (at > 0 && Number.isFinite(scale)) return { path: spec.slice(0, at), scale };
  return { path: spec, scale: 1 };
}

export const generateCommand: Command = {
  name: "generate",
  synopsis: "generate -m MODEL [--lora FILE[:SCALE]]... [--gpu-layers N] [-n N] [--seed N] [--json] PROMPT",
  summary: "generate text with llama.cpp, with hot-swappable LoRA adapters",
  usage,
  async run(argv: string[], io: CliIO): Promise<number> {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        options: {
          model: { type: "string", short: "m" },
          lora: { type: "string", multiple: true },
          "gpu-layers": { type: "string" },
          n: { type: "string", short: "n" },
          seed: { type: "string" },
          temp: { type: "string" },
          json: { type: "boolean" },
        },
        allowPositionals: true,
        strict: true,
      });
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    const { values, positionals } = parsed;
    const scalars = { ...values, lora: undefined };
    if (values.model === undefined) throw new UsageError("-m MODEL is required");
    if (positionals.length !== 1) throw new UsageError(`expected one PROMPT, got ${positionals.length}`);
    const temperature = values.temp === undefined ? 0.8 : Number(values.temp);
    if (!Number.isFinite(temperature)) throw new UsageError(`--temp needs a number, got "${values.temp}"`);
    const gpuLayers = values["gpu-layers"] === undefined ? "all" : integerOption(scalars, "gpu-layers", 0);
    const maxTokens = integerOption(scalars, "n", 64);
    const seed = values.seed === undefined ? undefined : integerOption(scalars, "seed", 0);

    const llama = Llama.shared();
    const showProgress = process.stderr.isTTY === true && values.json !== true;
    const model = await LlamaModel.load(values.model, { llama, gpuLayers, onProgress: showProgress ? (p) => process.stderr.write(progressBar(p)) : undefined });
    if (showProgress) process.stderr.write("\n");
    const adapters: LoraAdapter[] = [];
    let context: LlamaContext | undefined;
    try {
      const settings = [];
      for (const { path, scale } of (values.lora ?? []).map(parseLora)) {
        const adapter = await LoraAdapter.load(model, path);
        adapters.push(adapter);
        settings.push({ adapter, scale });
      }
      context = LlamaContext.create(model);
      const started = performance.now();
      const { text, tokens } = await context.generateText(positionals[0]!, { maxTokens, seed, temperature, adapters: settings });
      const seconds = (performance.now() - started) / 1000;
      const ranOn = llama.supportsGpuOffload && gpuLayers !== 0 ? "GPU" : "CPU";
      if (values.json === true) {
        io.out(toJson({ text, tokens, adapters: settings.map(({ adapter, scale }) => ({ path: adapter.path, scale, alpha: adapter.alpha, rank: adapter.rank })), ranOn, seconds }));
      } else {
        io.out(positionals[0]! + text);
        io.err(`${tokens.length} tokens in ${seconds.toFixed(2)} s (${(tokens.length / seconds).toFixed(1)} tokens/s) on ${ranOn}` +
          (settings.length > 0 ? `, adapters: ${settings.map(({ adapter, scale }) => `${adapter.path}×${scale}`).join(", ")}` : ""));
      }
      return 0;
    } finally {
      context?.dispose();
      for (const adapter of adapters) adapter.dispose();
      model.dispose();
    }
  },
};
