// What the trainer needs to know about a base model, read from its GGUF header: the llama
// architecture's hyper-parameters and the tensors its graph uses, checked before anything is
// loaded so that a model the trainer cannot build fails with a typed error, not an abort.
import { type GgufFile, type GgufValue, type LoraTarget, loraTargets } from "../../formats/index.ts";
import { TrainingError } from "./errors.ts";

/** A projection LoRA can adapt: q, k, v, o, gate, up, down (the tiny-adapter generator's names). */
export type Target = LoraTarget;
export const allTargets = Object.keys(loraTargets) as Target[];

export interface LlamaShape {
  readonly architecture: string;
  readonly embd: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  readonly ff: number;
  readonly vocab: number;
  readonly rmsEps: number;
  readonly ropeBase: number;
  readonly ropeScale: number;
  readonly ropeDims: number;
  readonly contextLength: number;
  /** No output.weight: the output projection is token_embd (tied). */
  readonly tiedOutput: boolean;
  /** rope_freqs.weight (Llama 3's frequency factors) is present. */
  readonly ropeFactors: boolean;
}

/** Architectures whose graph is llama's: RMSNorm, RoPE (normal), GQA, SwiGLU. */
const llamaLike = new Set(["llama"]);

export class ArchitectureError extends TrainingError {
  override name = "ArchitectureError";
  constructor(message: string) {
    super("ERR_TRAIN_ARCHITECTURE", message);
  }
}

function num(meta: ReadonlyMap<string, GgufValue>, key: string, fallback?: number): number {
  const value = meta.get(key);
  if (value === undefined) {
    if (fallback !== undefined) return fallback;
    throw new ArchitectureError(`the base model lacks ${key}`);
  }
  if (typeof value.value !== "number" && typeof value.value !== "bigint") throw new ArchitectureError(`${key} is not a number`);
  return Number(value.value);
}

/** Reads and checks the llama hyper-parameters and tensor table of a base GGUF. */
export function llamaShape(file: GgufFile): LlamaShape {
  const meta = file.metadata;
  const arch = meta.get("general.architecture");
  if (arch?.type !== "string") throw new ArchitectureError("the base model has no general.architecture");
  const a = arch.value as string;
  if (!llamaLike.has(a)) throw new ArchitectureError(`cannot train on architecture "${a}": the trainer builds llama graphs (${[...llamaLike].join(", ")})`);
  const embd = num(meta, `${a}.embedding_length`);
  const heads = num(meta, `${a}.attention.head_count`);
  const kvHeads = num(meta, `${a}.attention.head_count_kv`, heads);
  const headDim = embd / heads;
  const scaling = meta.get(`${a}.rope.scaling.type`);
  if (scaling !== undefined && scaling.value !== "none" && scaling.value !== "linear") {
    throw new ArchitectureError(`rope scaling "${String(scaling.value)}" is not supported by the trainer (none and linear are)`);
  }
  const factor = num(meta, `${a}.rope.scaling.factor`, 1);
  const names = new Set(file.tensors.map((t) => t.name));
  const tokenEmbd = file.tensor("token_embd.weight");
  const shape: LlamaShape = {
    architecture: a,
    embd,
    layers: num(meta, `${a}.block_count`),
    heads,
    kvHeads,
    headDim,
    ff: num(meta, `${a}.feed_forward_length`),
    vocab: tokenEmbd.shape[1] ?? 0,
    rmsEps: num(meta, `${a}.attention.layer_norm_rms_epsilon`),
    ropeBase: num(meta, `${a}.rope.freq_base`, 10000),
    ropeScale: factor > 0 ? 1 / factor : 1,
    ropeDims: num(meta, `${a}.rope.dimension_count`, headDim),
    contextLength: num(meta, `${a}.context_length`, 2048),
    tiedOutput: !names.has("output.weight"),
    ropeFactors: names.has("rope_freqs.weight"),
  };
  if (!Number.isInteger(headDim) || heads % kvHeads !== 0) throw new ArchitectureError(`heads ${heads} / kv heads ${kvHeads} do not divide embedding ${embd}`);
  if (shape.ropeDims !== headDim) throw new ArchitectureError(`rope over ${shape.ropeDims} of ${headDim} head dimensions is not a llama graph`);
  const required = ["token_embd.weight", "output_norm.weight"];
  for (let i = 0; i < shape.layers; i++) {
    required.push(`blk.${i}.attn_norm.weight`, `blk.${i}.ffn_norm.weight`, ...Object.values(loraTargets).map((t) => `blk.${i}.${t}.weight`));
  }
  const missing = required.filter((n) => !names.has(n));
  if (missing.length > 0) throw new ArchitectureError(`the base model lacks ${missing.slice(0, 5).join(", ")}${missing.length > 5 ? ` and ${missing.length - 5} more` : ""}`);
  const unsupported = file.tensors.filter((t) => /\.bias$|_exps\.|\.attn_qkv\./.test(t.name));
  if (unsupported.length > 0) throw new ArchitectureError(`the trainer's llama graph has no ${unsupported[0]!.name} (biases, experts and fused QKV are not supported)`);
  return Object.freeze(shape);
}

/** The base tensor a target adapts in layer `layer`. */
export function targetWeight(layer: number, target: Target): string {
  return `blk.${layer}.${loraTargets[target]}.weight`;
}
