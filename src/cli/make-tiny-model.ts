// `gpuffi make-tiny-model OUT.gguf [...]`: a tiny llama GGUF with seeded random weights.
import { makeTinyModel, tinyModelDefaults, writeGgufFile } from "../formats/index.ts";
import { type CliIO, type Command, UsageError, integerOption, parseCommandArgs } from "./command.ts";

const d = tinyModelDefaults;
const usage = `usage: gpuffi make-tiny-model OUT.gguf [options]

Writes a llama-architecture GGUF with random weights and a byte-fallback SPM vocabulary,
small enough for tests. The same options and seed always give the same bytes.
  --seed N       random seed (default ${d.seed})
  --layers N     transformer blocks (default ${d.layers})
  --embd N       embedding size (default ${d.embd})
  --heads N      attention heads (default ${d.heads})
  --kv-heads N   key/value heads, dividing --heads (default ${d.kvHeads})
  --ff N         feed-forward size (default ${d.ff})
  --ctx N        training context length (default ${d.ctx})
  --type T       f32 or f16 weight matrices (default ${d.type})
  --vocab N      vocabulary size, padded with filler pieces (default and least: ${d.vocab})`;

export const makeTinyModelCommand: Command = {
  name: "make-tiny-model",
  synopsis: "make-tiny-model OUT.gguf [options]",
  summary: "write a tiny llama model with random weights",
  usage,
  async run(argv: string[], io: CliIO): Promise<number> {
    const integers = ["seed", "layers", "embd", "heads", "kv-heads", "ff", "ctx", "vocab"] as const;
    const { positionals, values } = parseCommandArgs(argv, { ...Object.fromEntries(integers.map((n) => [n, "string"])), type: "string" }, ["OUT.gguf"]);
    const type = values.type ?? d.type;
    if (type !== "f32" && type !== "f16") throw new UsageError(`--type must be f32 or f16, got "${String(type)}"`);
    const spec = makeTinyModel({
      seed: integerOption(values, "seed", d.seed),
      layers: integerOption(values, "layers", d.layers),
      embd: integerOption(values, "embd", d.embd),
      heads: integerOption(values, "heads", d.heads),
      kvHeads: integerOption(values, "kv-heads", d.kvHeads),
      ff: integerOption(values, "ff", d.ff),
      ctx: integerOption(values, "ctx", d.ctx),
      vocab: integerOption(values, "vocab", d.vocab),
      type,
    });
    await writeGgufFile(positionals[0]!, spec);
    io.out(`wrote ${positionals[0]} (${spec.tensors.length} tensors)`);
    return 0;
  },
};
