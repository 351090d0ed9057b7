// `gpuffi lora convert|merge`: PEFT adapters to llama.cpp GGUF, and adapters merged into a base.
import { CublasHandle, CudaContext } from "../cuda/index.ts";
import { type ConvertOutType, CudaMergeDevice, type MergeDevice, convertPeftAdapter, mergeLoraFiles } from "../lora/index.ts";
import { type CliIO, type Command, UsageError, parseCommandArgs, withProgressBar } from "./command.ts";

const usage = `usage: gpuffi lora convert PEFT_DIR OUT.gguf [--base BASE.gguf] [--outtype keep|f32|f16|bf16]
       gpuffi lora merge BASE.gguf ADAPTER.gguf[:SCALE]... OUT.gguf [--device cpu|cuda]

convert  turns a PEFT LoRA (adapter_config.json + adapter_model.safetensors) into a llama.cpp
         GGUF adapter. --base checks the shapes against the base model and supplies the head
         counts that q_proj/k_proj need; --outtype keep (default) keeps F32/F16/BF16.
merge    writes BASE with W + Σ SCALE·(alpha/r)·B·A for every adapted tensor, tensor by tensor
         (F32, F16 and BF16 bases; SCALE defaults to 1). --device cuda runs the products on
         GPU 0 with cuBLAS (fp32); cpu (default) sums in float64.`;

const outTypes: readonly ConvertOutType[] = ["keep", "f32", "f16", "bf16"];

/** "FILE:SCALE" → path and scale; a suffix that is not a number belongs to the path. */
function parseAdapter(spec: string): { path: string; scale: number } {
  const at = spec.lastIndexOf(":");
  const scale = at > 0 ? Number(spec.slice(at + 1)) : Number.NaN;
  return at > 0 && spec.slice(at + 1).trim() !== "" && Number.isFinite(scale) ? { path: spec.slice(0, at), scale } : { path: spec, scale: 1 };
}

async function convert(argv: string[], io: CliIO): Promise<number> {
  const { positionals, values } = parseCommandArgs(argv, { base: "string", outtype: "string" }, ["PEFT_DIR", "OUT.gguf"]);
  const outType = (values.outtype ?? "keep") as ConvertOutType;
  if (!outTypes.includes(outType)) throw new UsageError(`--outtype takes ${outTypes.join(", ")}, got "${String(values.outtype)}"`);
  const result = await withProgressBar("converting", (onProgress) => convertPeftAdapter(positionals[0]!, positionals[1]!, {
    base: values.base as string | undefined,
    outType,
    onProgress,
  }));
  io.out(`wrote ${positionals[1]} (${result.pairs} pairs, alpha ${result.alpha}, ${result.architecture})`);
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

async function merge(argv: string[], io: CliIO): Promise<number> {
  const device = argv.indexOf("--device");
  const rest = device >= 0 ? argv.filter((_, i) => i !== device && i !== device + 1) : argv;
  const deviceName = device >= 0 ? argv[device + 1] : "cpu";
  if (deviceName !== "cpu" && deviceName !== "cuda") throw new UsageError(`--device takes cpu or cuda, got "${deviceName ?? ""}"`);
  if (rest.some((a) => a.startsWith("-"))) throw new UsageError(`unknown option ${rest.find((a) => a.startsWith("-"))}`);
  if (rest.length < 3) throw new UsageError("expected BASE.gguf, at least one ADAPTER.gguf[:SCALE] and OUT.gguf");
  const [base, ...others] = rest;
  const out = others.pop()!;
  const result = await withProgressBar("merging", (onProgress) =>
    onDevice(deviceName, (mergeDevice) => mergeLoraFiles(base!, others.map(parseAdapter), out, { device: mergeDevice, onProgress })));
  io.out(`wrote ${out} (${result.mergedTensors} of ${result.tensors} tensors merged)`);
  return 0;
}

export const loraCommand: Command = {
  name: "lora",
  synopsis: "lora convert PEFT_DIR OUT.gguf [--base BASE.gguf] | lora merge BASE.gguf ADAPTER.gguf[:SCALE]... OUT.gguf",
  summary: "convert PEFT LoRA adapters to GGUF, merge adapters into a base model",
  usage,
  run(argv: string[], io: CliIO): Promise<number> {
    const [sub, ...rest] = argv;
    if (sub === "convert") return convert(rest, io);
    if (sub === "merge") return merge(rest, io);
    throw new UsageError(sub === undefined ? "missing subcommand (convert or merge)" : `unknown subcommand "${sub}"`);
  },
};
