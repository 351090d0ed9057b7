// `gpuffi make-tiny-lora BASE.gguf OUT.gguf --rank R --alpha A [...]`: a LoRA adapter in
// llama.cpp's GGUF adapter format, shaped for the given base model.
import { type LoraTarget, loraTargets, makeTinyLora, openGguf, writeGgufFile } from "../formats/index.ts";
import { type CliIO, type Command, UsageError, integerOption, numberOption, parseCommandArgs } from "./command.ts";

const targetNames = Object.keys(loraTargets);
const usage = `usage: gpuffi make-tiny-lora BASE.gguf OUT.gguf --rank R --alpha A [options]

Writes a LoRA adapter with seeded random A and B matrices for BASE.gguf's projections.
  --rank R         LoRA rank (required)
  --alpha A        LoRA alpha, stored as adapter.lora.alpha (required)
  --targets LIST   comma-separated subset of ${targetNames.join(",")} (default: all)
  --seed N         random seed (default 1)
  --invocation-tokens LIST
                   comma-separated token ids that switch the adapter on (an aLoRA;
                   written as adapter.alora.invocation_tokens)`;

function parseTargets(raw: string | boolean | undefined): LoraTarget[] | undefined {
  if (raw === undefined) return undefined;
  const targets = String(raw).split(",").map((t) => t.trim()).filter((t) => t !== "");
  const unknown = targets.filter((t) => !targetNames.includes(t));
  if (targets.length === 0 || unknown.length > 0) throw new UsageError(`--targets takes a comma-separated subset of ${targetNames.join(",")}, got "${String(raw)}"`);
  return targets as LoraTarget[];
}

function parseTokenList(raw: string | boolean | undefined): number[] | undefined {
  if (raw === undefined) return undefined;
  const items = String(raw).split(",").map((t) => t.trim());
  if (items.some((t) => !/^\d+$/.test(t))) throw new UsageError(`--invocation-tokens takes comma-separated token ids, got "${String(raw)}"`);
  return items.map(Number);
}

export const makeTinyLoraCommand: Command = {
  name: "make-tiny-lora",
  synopsis: "make-tiny-lora BASE.gguf OUT.gguf --rank R --alpha A [options]",
  summary: "write a LoRA adapter for BASE",
  usage,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { positionals, values } = parseCommandArgs(argv, { rank: "string", alpha: "string", targets: "string", seed: "string", "invocation-tokens": "string" }, ["BASE.gguf", "OUT.gguf"]);
    if (values.rank === undefined) throw new UsageError("--rank is required");
    const options = {
      rank: integerOption(values, "rank", 0),
      alpha: numberOption(values, "alpha"),
      targets: parseTargets(values.targets),
      seed: integerOption(values, "seed", 1),
      invocationTokens: parseTokenList(values["invocation-tokens"]),
    };
    await using base = await openGguf(positionals[0]!);
    const spec = makeTinyLora(base.header, options);
    await writeGgufFile(positionals[1]!, spec);
    const alora = options.invocationTokens === undefined ? "" : `, aLoRA invoked by ${options.invocationTokens.length} tokens`;
    io.out(`wrote ${positionals[1]} (${spec.tensors.length / 2} adapted tensors, rank ${options.rank}${alora})`);
    return 0;
  },
};
