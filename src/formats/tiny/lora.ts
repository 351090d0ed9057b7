// A tiny LoRA adapter for a GGUF base model, in llama.cpp's adapter format
// (src/llama-adapter.cpp): general.type "adapter", adapter.type "lora", adapter.lora.alpha,
// the base's general.architecture, and per adapted weight W (ggml shape [n_in, n_out]) the
// pair "<W name>.lora_a" of shape [n_in, rank] and "<W name>.lora_b" of shape [rank, n_out].
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
    ],
    tensors,
  };
}
