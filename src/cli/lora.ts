// `gpuffi lora convert|merge|export-peft`: PEFT adapters to llama.cpp GGUF, adapters merged into a
// base, and GGUF adapters back to PEFT.
import { CublasHandle, CudaContext } from "../cuda/index.ts";
import { type ConvertOutType, CudaMergeDevice, type DequantizedTensor, type MergeDevice, convertPeftAdapter, exportPeftAdapter, mergeLoraFiles } from "../lora/index.ts";
import { type CliIO, type Command, UsageError, integerOption, parseCommandArgs, withProgressBar } from "./command.ts";
import { train, trainUsage } from "./lora-train.ts";

const usage = `usage: gpuffi lora convert PEFT_DIR OUT.gguf [--base BASE.gguf | --heads N [--kv-heads N]] [--outtype keep|f32|f16|bf16]
       gpuffi lora merge BASE.gguf ADAPTER.gguf[:SCALE]... OUT.gguf [--device cpu|cuda] [--dequantize [--dequantize-to f16|f32]]
       gpuffi lora export-peft ADAPTER.gguf DIR [--base BASE.gguf | --heads N [--kv-heads N]] [--base-model-name NAME]

convert  turns a PEFT LoRA (adapter_config.json + adapter_model.safetensors) into a llama.cpp
         GGUF adapter. --base checks the shapes against the base model and supplies the head
         counts that q_proj/k_proj need to reorder their rows for llama.cpp's rope; without a
         base, --heads (attention heads) and --kv-heads (key/value heads, default --heads)
         give them. --outtype keep (default) keeps F32/F16/BF16.
merge    writes BASE with W + Σ SCALE·(alpha/r)·B·A for every adapted tensor, tensor by tensor
         (F32, F16 and BF16 bases; SCALE defaults to 1). --device cuda runs the products on
         GPU 0 with cuBLAS (fp32); cpu (default) sums in float64. Adapted tensors of a
         quantized base are refused unless --dequantize is given: Q8_0, Q4_0, Q4_1, Q5_0 and
         Q5_1 tensors are then dequantized as ggml does and written as F16 (--dequantize-to
         f32: F32); the other tensors keep their type.
export-peft  writes a GGUF LoRA adapter (one rank; q, k, v, o, gate, up, down projections,
         as the trainer writes them) as a PEFT directory: adapter_model.safetensors (F32) and
         adapter_config.json. q/k rows go back to Hugging Face's order, which needs the head
         counts: from --base, or --heads and --kv-heads. --base also checks the shapes.
         --base-model-name sets base_model_name_or_path (default: the adapter's
         general.base_model.0.name, else the base's general.name).`;

const outTypes: readonly ConvertOutType[] = ["keep", "f32", "f16", "bf16"];

/** "FILE:SCALE" → path and scale; a suffix that is not a number belongs to the path. */
function parseAdapter(spec: string): { path: string; scale: number } {
  const at = spec.lastIndexOf(":");
  const scale = at > 0 ? Number(spec.slice(at + 1)) : Number.NaN;
  return at > 0 && spec.slice(at + 1).trim() !== "" && Number.isFinite(scale) ? { path: spec.slice(0, at), scale } : { path: spec, scale: 1 };
}

async function convert(argv: string[], io: CliIO): Promise<number> {
  const { positionals, values } = parseCommandArgs(argv, { base: "string", heads: "string", "kv-heads": "string", outtype: "string" }, ["PEFT_DIR", "OUT.gguf"]);
  const outType = (values.outtype ?? "keep") as ConvertOutType;
  if (!outTypes.includes(outType)) throw new UsageError(`--outtype takes ${outTypes.join(", ")}, got "${String(values.outtype)}"`);
  if (values["kv-heads"] !== undefined && values.heads === undefined) throw new UsageError("--kv-heads goes with --heads");
  const count = (name: string) => (values[name] === undefined ? undefined : integerOption(values, name, 0, 1));
  const result = await withProgressBar("converting", (onProgress) => convertPeftAdapter(positionals[0]!, positionals[1]!, {
    base: values.base as string | undefined,
    heads: count("heads"),
    kvHeads: count("kv-heads"),
    outType,
    onProgress,
  }));
  io.out(`wrote ${positionals[1]} (${result.pairs} pairs, alpha ${result.alpha}, ${result.architecture})`);
  return 0;
}

async function exportPeft(argv: string[], io: CliIO): Promise<number> {
  const { positionals, values } = parseCommandArgs(argv, { base: "string", heads: "string", "kv-heads": "string", "base-model-name": "string" }, ["ADAPTER.gguf", "DIR"]);
  if (values["kv-heads"] !== undefined && values.heads === undefined) throw new UsageError("--kv-heads goes with --heads");
  const count = (name: string) => (values[name] === undefined ? undefined : integerOption(values, name, 0, 1));
  const result = await exportPeftAdapter(positionals[0]!, positionals[1]!, {
    base: values.base as string | undefined,
    heads: count("heads"),
    kvHeads: count("kv-heads"),
    baseModelName: values["base-model-name"] as string | undefined,
  });
  io.out(`wrote ${positionals[1]} (${result.pairs} pairs, r ${result.rank}, lora_alpha ${result.alpha}, ${result.targetModules.join(", ")})`);
  return 0;
}

/** Runs `body` with the merge device named on the command line (undefined: the CPU). */
async function onDevice<T>(name: "cpu" | "cuda", body: (device: MergeDevice | undefined) => Promise<T>): Promise<T> {
  if (name === "cpu") return body(undefined);
  using context = CudaContext.create({ device: 0 });
  using stream = context.createStream();
  using cublas = CublasHandle.create(context, { stream });
  using device = new CudaMergeDevice(context, cublas, stream);
  return await body(device);
}

/** "; dequantized to F16: 5 Q8_0, 2 Q4_0" for the merge's summary line, or nothing. */
function dequantizedSummary(dequantized: readonly DequantizedTensor[]): string {
  if (dequantized.length === 0) return "";
  const counts = new Map<string, number>();
  for (const { from } of dequantized) counts.set(from, (counts.get(from) ?? 0) + 1);
  return `; dequantized to ${dequantized[0]!.to}: ${[...counts].map(([from, n]) => `${n} ${from}`).join(", ")}`;
}

async function merge(argv: string[], io: CliIO): Promise<number> {
  const { positionals, values } = parseCommandArgs(argv, { device: "string", dequantize: "boolean", "dequantize-to": "string" }, ["BASE.gguf", "ADAPTER.gguf[:SCALE]...", "OUT.gguf"], true);
  const deviceName = values.device ?? "cpu";
  if (deviceName !== "cpu" && deviceName !== "cuda") throw new UsageError(`--device takes cpu or cuda, got "${String(deviceName)}"`);
  const target = values["dequantize-to"] ?? "f16";
  if (target !== "f16" && target !== "f32") throw new UsageError(`--dequantize-to takes f16 or f32, got "${String(target)}"`);
  if (values["dequantize-to"] !== undefined && !values.dequantize) throw new UsageError("--dequantize-to goes with --dequantize");
  const [base, ...others] = positionals;
  const out = others.pop()!;
  const result = await withProgressBar("merging", (onProgress) =>
    onDevice(deviceName, (mergeDevice) => mergeLoraFiles(base!, others.map(parseAdapter), out, {
      device: mergeDevice,
      dequantize: values.dequantize ? target : undefined,
      onProgress,
    })));
  io.out(`wrote ${out} (${result.mergedTensors} of ${result.tensors} tensors merged${dequantizedSummary(result.dequantized)})`);
  return 0;
}

export const loraCommand: Command = {
  name: "lora",
  synopsis: "lora convert PEFT_DIR OUT.gguf [--base BASE.gguf | --heads N [--kv-heads N]] | lora merge BASE.gguf ADAPTER.gguf[:SCALE]... OUT.gguf | lora export-peft ADAPTER.gguf DIR | lora train --base BASE.gguf --data FILE --out ADAPTER.gguf",
  summary: "convert PEFT LoRA adapters to GGUF, merge adapters into a base model, export GGUF adapters to PEFT, train adapters",
  usage: `${usage}

${trainUsage}`,
  run(argv: string[], io: CliIO): Promise<number> {
    const [sub, ...rest] = argv;
    if (sub === "convert") return convert(rest, io);
    if (sub === "merge") return merge(rest, io);
    if (sub === "export-peft") return exportPeft(rest, io);
    if (sub === "train") return train(rest, io);
    throw new UsageError(sub === undefined ? "missing subcommand (convert, merge, export-peft or train)" : `unknown subcommand "${sub}"`);
  },
};
