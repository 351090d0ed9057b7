// A tiny LoRA adapter for a GGUF base model, in llama.cpp's adapter format
// (src/llama-adapter.cpp): general.type "adapter", adapter.type "lora", adapter.lora.alpha,
// the base's general.architecture, and per adapted weight W (ggml shape [n_in, n_out]) the
// pair "<W name>.lora_a" of shape [n_in, rank] and "<W name>.lora_b" of shape [rank, n_out].
// An aLoRA adds adapter.alora.invocation_tokens, an array of u32 token ids (llama.cpp refuses
// any other element type).
import { InvalidOptionError } from "../errors.ts";
import type { GgufHeader } from "../gguf/reader.ts";
import type { GgufSpec, GgufTensorSpec } from "../gguf/writer.ts";
import { seededRandom } from "./random.ts";
import { weight } from "./model.ts";

/** Short target names → the tensor names llama.cpp gives those projections. */
export const loraTargets = {
  q: "attn_q",
  k: "attn_k",
  v: "attn_v",
  o: "attn_output",
  gate: "ffn_gate",
  up: "ffn_up",
  down: "ffn_down",
} as const;

export type LoraTarget = keyof typeof loraTargets;

export interface TinyLoraOptions {
  rank: number;
  alpha: number;
  /** Which projections to adapt (default: all of them). */
  targets?: readonly LoraTarget[];
  seed?: number;
  /** aLoRA: the token ids that switch the adapter on (written as adapter.alora.invocation_tokens). */
  invocationTokens?: readonly number[];
}

/** Builds a LoRA adapter for `base` with seeded random A and B (B non-zero, so it has an effect). */
export function makeTinyLora(base: GgufHeader, options: TinyLoraOptions): GgufSpec {
  const { rank, alpha, seed = 1 } = options;
  const targets = options.targets ?? (Object.keys(loraTargets) as LoraTarget[]);
  if (!Number.isSafeInteger(rank) || rank < 1) throw new InvalidOptionError("rank", `must be a positive integer, got ${rank}`);
  if (!Number.isFinite(alpha)) throw new InvalidOptionError("alpha", `must be a finite number, got ${alpha}`);
  if (!Number.isSafeInteger(seed)) throw new InvalidOptionError("seed", `must be an integer, got ${seed}`);
  for (const t of targets) {
    if (!Object.hasOwn(loraTargets, t)) throw new InvalidOptionError("targets", `unknown target "${t}"; choose from ${Object.keys(loraTargets).join(", ")}`);
  }
  const architecture = base.metadata.get("general.architecture");
  if (architecture?.type !== "string") throw new InvalidOptionError("base", "the base model has no string general.architecture");
  const invocation = options.invocationTokens === undefined ? undefined : invocationTokens(base, options.invocationTokens);

  const wanted = new Set<string>(targets.map((t) => loraTargets[t]));
  const random = seededRandom(seed);
  const tensors: GgufTensorSpec[] = [];
  for (const t of base.tensors) {
    const match = /^blk\.\d+\.([a-z_]+)\.weight$/.exec(t.name);
    if (match === null || !wanted.has(match[1]!) || t.shape.length !== 2) continue;
    const [nIn, nOut] = t.shape as [number, number];
    tensors.push(weight(random, `${t.name}.lora_a`, nIn, rank, "f32"));
    tensors.push(weight(random, `${t.name}.lora_b`, rank, nOut, "f32"));
  }
  if (tensors.length === 0) throw new InvalidOptionError("targets", "the base model has none of the targeted tensors");

  return {
    metadata: [
      ["general.architecture", architecture],
      ["general.type", { type: "string", value: "adapter" }],
      ["general.name", { type: "string", value: "gpuffi tiny lora" }],
      ["adapter.type", { type: "string", value: "lora" }],
      ["adapter.lora.alpha", { type: "f32", value: alpha }],
      ...(invocation === undefined ? [] : [["adapter.alora.invocation_tokens", { type: "array", value: { type: "u32", value: invocation } }] as const]),
    ],
    tensors,
  };
}

function invocationTokens(base: GgufHeader, tokens: readonly number[]): Uint32Array {
  const vocab = base.metadata.get("tokenizer.ggml.tokens");
  // Token ids index the base's vocabulary; without one, any u32.
  const limit = vocab?.type === "array" ? vocab.value.value.length : 2 ** 32;
  if (tokens.length === 0) throw new InvalidOptionError("invocationTokens", "an aLoRA needs at least one invocation token");
  for (const token of tokens) {
    if (!Number.isSafeInteger(token) || token < 0 || token >= limit) {
      throw new InvalidOptionError("invocationTokens", `${token} is not a token id of the base model (0…${limit - 1})`);
    }
  }
  return Uint32Array.from(tokens);
}
