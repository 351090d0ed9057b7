// A tiny llama-architecture GGUF with seeded random weights: the fixture for llama.cpp tests.
// Keys, value types, tensor names and shapes follow what llama.cpp's loader requires
// (src/models/llama.cpp load_arch_hparams/load_arch_tensors, src/llama-model.cpp
// load_hparams, src/llama-vocab.cpp load); its loader checks value types strictly.
import { InvalidOptionError } from "../errors.ts";
import { f32ToF16Array } from "../half.ts";
import { GgmlType } from "../gguf/ggml-types.ts";
import type { GgufValue } from "../gguf/values.ts";
import type { GgufSpec, GgufTensorSpec } from "../gguf/writer.ts";
import { type Random, seededRandom, uniformValues } from "./random.ts";
import { TINY_VOCAB_BASE_SIZE, tinyVocab } from "./vocab.ts";

export interface TinyModelOptions {
  seed?: number;
  layers?: number;
  embd?: number;
  heads?: number;
  kvHeads?: number;
  ff?: number;
  ctx?: number;
  /** Type of the weight matrices; norms stay f32 as in converted models. */
  type?: "f32" | "f16";
  /** Vocabulary size: the tiny vocabulary padded with filler pieces (at least its own size). */
  vocab?: number;
}

export const tinyModelDefaults: Required<TinyModelOptions> = {
  seed: 1,
  layers: 2,
  embd: 64,
  heads: 2,
  kvHeads: 1,
  ff: 128,
  ctx: 256,
  type: "f32",
  vocab: TINY_VOCAB_BASE_SIZE,
};

const u32 = (value: number): GgufValue => ({ type: "u32", value });
const f32 = (value: number): GgufValue => ({ type: "f32", value });
const str = (value: string): GgufValue => ({ type: "string", value });

function checkOptions(o: Required<TinyModelOptions>): void {
  for (const key of ["layers", "embd", "heads", "kvHeads", "ff", "ctx"] as const) {
    if (!Number.isSafeInteger(o[key]) || o[key] < 1 || o[key] > 0xffffffff) throw new InvalidOptionError(key, `must be a positive integer, got ${o[key]}`);
  }
  if (!Number.isSafeInteger(o.seed)) throw new InvalidOptionError("seed", `must be an integer, got ${o.seed}`);
  if (o.type !== "f32" && o.type !== "f16") throw new InvalidOptionError("type", `must be f32 or f16, got ${String(o.type)}`);
  if (!Number.isSafeInteger(o.vocab) || o.vocab < TINY_VOCAB_BASE_SIZE) throw new InvalidOptionError("vocab", `must be an integer ≥ ${TINY_VOCAB_BASE_SIZE}, got ${o.vocab}`);
  if (o.embd % o.heads !== 0) throw new InvalidOptionError("heads", `${o.heads} does not divide embd ${o.embd}`);
  if (o.heads % o.kvHeads !== 0) throw new InvalidOptionError("kvHeads", `${o.kvHeads} does not divide heads ${o.heads}`);
  // RoPE rotates pairs of dimensions.
  if ((o.embd / o.heads) % 2 !== 0) throw new InvalidOptionError("heads", `head size ${o.embd / o.heads} must be even`);
}

function bytesOf(values: Float32Array | Uint16Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/** Builds the GGUF (metadata and tensors) of a tiny llama model; write it with encodeGguf/writeGgufFile. */
export function makeTinyModel(options: TinyModelOptions = {}): GgufSpec {
  const o = { ...tinyModelDefaults, ...options };
  checkOptions(o);
  const vocab = tinyVocab(o.vocab);
  const nVocab = vocab.tokens.length;
  const headSize = o.embd / o.heads;
  const kvSize = headSize * o.kvHeads;
  const random = seededRandom(o.seed);

  const tensors: GgufTensorSpec[] = [];
  const norm = (name: string): void => {
    tensors.push({ name, type: GgmlType.F32, shape: [o.embd], data: bytesOf(new Float32Array(o.embd).fill(1)) });
  };
  const matrix = (name: string, nIn: number, nOut: number): void => {
    tensors.push(weight(random, name, nIn, nOut, o.type));
  };

  matrix("token_embd.weight", o.embd, nVocab);
  for (let i = 0; i < o.layers; i++) {
    norm(`blk.${i}.attn_norm.weight`);
    matrix(`blk.${i}.attn_q.weight`, o.embd, o.embd);
    matrix(`blk.${i}.attn_k.weight`, o.embd, kvSize);
    matrix(`blk.${i}.attn_v.weight`, o.embd, kvSize);
    matrix(`blk.${i}.attn_output.weight`, o.embd, o.embd);
    norm(`blk.${i}.ffn_norm.weight`);
    matrix(`blk.${i}.ffn_gate.weight`, o.embd, o.ff);
    matrix(`blk.${i}.ffn_up.weight`, o.embd, o.ff);
    matrix(`blk.${i}.ffn_down.weight`, o.ff, o.embd);
  }
  norm("output_norm.weight");
  matrix("output.weight", o.embd, nVocab);

  const metadata: [string, GgufValue][] = [
    ["general.architecture", str("llama")],
    ["general.name", str("gpuffi tiny llama")],
    // llama_ftype: 0 = all F32, 1 = mostly F16.
    ["general.file_type", u32(o.type === "f16" ? 1 : 0)],
    ["llama.vocab_size", u32(nVocab)],
    ["llama.context_length", u32(o.ctx)],
    ["llama.embedding_length", u32(o.embd)],
    ["llama.block_count", u32(o.layers)],
    ["llama.feed_forward_length", u32(o.ff)],
    ["llama.attention.head_count", u32(o.heads)],
    ["llama.attention.head_count_kv", u32(o.kvHeads)],
    // llama.cpp requires n_rot == head size for this architecture.
    ["llama.rope.dimension_count", u32(headSize)],
    ["llama.rope.freq_base", f32(10000)],
    ["llama.attention.layer_norm_rms_epsilon", f32(1e-5)],
    ["tokenizer.ggml.model", str("llama")],
    ["tokenizer.ggml.tokens", { type: "array", value: { type: "string", value: vocab.tokens } }],
    ["tokenizer.ggml.scores", { type: "array", value: { type: "f32", value: vocab.scores } }],
    ["tokenizer.ggml.token_type", { type: "array", value: { type: "i32", value: vocab.tokenTypes } }],
    ["tokenizer.ggml.bos_token_id", u32(vocab.bosId)],
    ["tokenizer.ggml.eos_token_id", u32(vocab.eosId)],
    ["tokenizer.ggml.unknown_token_id", u32(vocab.unkId)],
    ["tokenizer.ggml.add_bos_token", { type: "bool", value: true }],
  ];
  return { metadata, tensors };
}

/**
 * A random nOut × nIn weight matrix (ggml shape [nIn, nOut]), scaled by 1/sqrt(nIn) so
 * activations stay in a sane range through the layers.
 */
export function weight(random: Random, name: string, nIn: number, nOut: number, type: "f32" | "f16"): GgufTensorSpec {
  const values = uniformValues(random, nIn * nOut, 1 / Math.sqrt(nIn));
  return type === "f16"
    ? { name, type: GgmlType.F16, shape: [nIn, nOut], data: bytesOf(f32ToF16Array(values)) }
    : { name, type: GgmlType.F32, shape: [nIn, nOut], data: bytesOf(values) };
}
