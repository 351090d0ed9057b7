// The float64 reference a LoRA trainer is checked against: the forward pass of a
// llama-architecture model with LoRA, written to follow llama.cpp's graph exactly
// (src/models/llama.cpp with llama-graph.cpp's build_norm, build_lora_mm, build_attn, build_ffn):
//   x = token_embd[token]
//   per layer: h = rms_norm(x)·attn_norm; q, k, v = proj(h); RoPE on q and k;
//              causal GQA attention with scale 1/√head_dim; x += o(attn)
//              h = rms_norm(x)·ffn_norm; x += down(silu(gate(h))·up(h))
//   logits = output · (rms_norm(x)·output_norm)   (token_embd when output.weight is absent)
// with every projection y = W·x + (alpha/r)·B·(A·x), as llama.cpp applies an adapter at scale 1.
// rms_norm(x) = x / √(mean(x²) + eps) (ggml_rms_norm). RoPE is ggml's NORMAL mode: it rotates
// the adjacent pairs (x[2i], x[2i+1]) of each head by θ = pos·freq_base^(−2i/n_rot)
// (ggml-cpu/ops.cpp: theta_scale = powf(freq_base, −2/n_dims), rotate_pairs with n_offset 1);
// dimensions past n_rot pass through. q head h reads KV head ⌊h / (heads/kvHeads)⌋ (ggml_mul_mat's
// broadcast over the head dimension, and HF's repeat_kv alike).
//
// Layouts are ggml's: a weight of ggml shape [nIn, nOut] is nOut rows of nIn; LoRA A [nIn, r] is
// r rows of nIn; B [r, nOut] is nOut rows of r (src/formats/tiny/lora.ts, llama-adapter.cpp).
import { type GgufSpec, type GgufTensorSpec, type GgufValue, GgmlType, f16ToF32Array } from "../../../src/formats/index.ts";
import { seededRandom } from "../../../src/formats/tiny/random.ts";

/** One weight matrix: `nOut` rows of `nIn`. */
export interface ReferenceMatrix {
  readonly data: Float64Array;
  readonly nIn: number;
  readonly nOut: number;
}

export interface ReferenceModel {
  readonly embd: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly headDim: number;
  /** Dimensions RoPE rotates in each head (llama.rope.dimension_count). */
  readonly nRot: number;
  readonly ff: number;
  readonly vocab: number;
  readonly eps: number;
  readonly ropeBase: number;
  /** True when output.weight is absent and the output reuses token_embd. */
  readonly tied: boolean;
  /** Every tensor by its GGUF name, as float64 (norms as nIn = n, nOut = 1). */
  readonly weights: ReadonlyMap<string, ReferenceMatrix>;
}

export interface ReferenceLoraPair {
  /** ggml [nIn, rank]: rank rows of nIn. */
  a: Float64Array;
  /** ggml [rank, nOut]: nOut rows of rank. */
  b: Float64Array;
}

export interface ReferenceLora {
  rank: number;
  alpha: number;
  /** By the adapted weight's GGUF name, e.g. "blk.0.attn_q.weight". */
  pairs: Map<string, ReferenceLoraPair>;
}

export interface ReferenceSequence {
  readonly tokens: Int32Array;
  /**
   * counted[i] ≠ 0: position i (predicting tokens[i + 1]) counts in the loss. Length
   * tokens.length − 1, or tokens.length (the last entry is then ignored: nothing follows it).
   */
  readonly counted: Uint8Array;
}

function metadataMap(spec: GgufSpec): Map<string, GgufValue> {
  const md = spec.metadata;
  if (md instanceof Map) return md as Map<string, GgufValue>;
  if (Symbol.iterator in md) return new Map(md as Iterable<readonly [string, GgufValue]>);
  return new Map(Object.entries(md as Record<string, GgufValue>));
}

function numberKey(md: Map<string, GgufValue>, key: string, fallback?: number): number {
  const value = md.get(key);
  if (value === undefined) {
    if (fallback !== undefined) return fallback;
    throw new Error(`reference: metadata ${key} is missing`);
  }
  if (typeof value.value !== "number") throw new Error(`reference: metadata ${key} is not a number`);
  return value.value;
}

/** A tensor's values as float64 (F32 and F16 tensors). */
export function tensorValues(tensor: GgufTensorSpec): Float64Array {
  const bytes = tensor.data.slice();
  if (tensor.type === GgmlType.F32) return Float64Array.from(new Float32Array(bytes.buffer, 0, bytes.length / 4));
  if (tensor.type === GgmlType.F16) return Float64Array.from(f16ToF32Array(new Uint16Array(bytes.buffer, 0, bytes.length / 2)));
  throw new Error(`reference: tensor ${tensor.name} has ggml type ${tensor.type}; only F32 and F16 are supported`);
}

/** Parses a llama-architecture GGUF spec (as makeTinyModel makes) into float64 weights. */
export function referenceModel(spec: GgufSpec): ReferenceModel {
  const md = metadataMap(spec);
  const arch = md.get("general.architecture");
  if (arch?.type !== "string" || arch.value !== "llama") throw new Error(`reference: architecture must be llama, got ${JSON.stringify(arch?.value)}`);
  const embd = numberKey(md, "llama.embedding_length");
  const layers = numberKey(md, "llama.block_count");
  const heads = numberKey(md, "llama.attention.head_count");
  const kvHeads = numberKey(md, "llama.attention.head_count_kv", heads);
  const ff = numberKey(md, "llama.feed_forward_length");
  const headDim = embd / heads;
  const nRot = numberKey(md, "llama.rope.dimension_count", headDim);
  // llama.cpp holds both as float (hparams.f_norm_rms_eps, rope_freq_base_train); a spec that has
  // not been through a file may carry the unrounded double.
  const eps = Math.fround(numberKey(md, "llama.attention.layer_norm_rms_epsilon"));
  const ropeBase = Math.fround(numberKey(md, "llama.rope.freq_base", 10000));
  const weights = new Map<string, ReferenceMatrix>();
  for (const t of spec.tensors) {
    const [nIn, nOut = 1] = t.shape as [number, number?];
    weights.set(t.name, { data: tensorValues(t), nIn, nOut });
  }
  const embdMatrix = weights.get("token_embd.weight");
  if (embdMatrix === undefined) throw new Error("reference: token_embd.weight is missing");
  const vocab = embdMatrix.nOut;
  const tied = !weights.has("output.weight");
  const need = (name: string, nIn: number, nOut: number) => {
    const w = weights.get(name);
    if (w === undefined) throw new Error(`reference: ${name} is missing`);
    if (w.nIn !== nIn || w.nOut !== nOut) throw new Error(`reference: ${name} is [${w.nIn}, ${w.nOut}], expected [${nIn}, ${nOut}]`);
  };
  need("token_embd.weight", embd, vocab);
  need("output_norm.weight", embd, 1);
  if (!tied) need("output.weight", embd, vocab);
  const kvSize = headDim * kvHeads;
  for (let l = 0; l < layers; l++) {
    need(`blk.${l}.attn_norm.weight`, embd, 1);
    need(`blk.${l}.attn_q.weight`, embd, embd);
    need(`blk.${l}.attn_k.weight`, embd, kvSize);
    need(`blk.${l}.attn_v.weight`, embd, kvSize);
    need(`blk.${l}.attn_output.weight`, embd, embd);
    need(`blk.${l}.ffn_norm.weight`, embd, 1);
    need(`blk.${l}.ffn_gate.weight`, embd, ff);
    need(`blk.${l}.ffn_up.weight`, embd, ff);
    need(`blk.${l}.ffn_down.weight`, ff, embd);
  }
  return { embd, layers, heads, kvHeads, headDim, nRot, ff, vocab, eps, ropeBase, tied, weights };
}

/** A GGUF LoRA adapter spec (makeTinyLora's format) as float64 pairs. */
export function referenceLoraFromSpec(spec: GgufSpec): ReferenceLora {
  const md = metadataMap(spec);
  const alpha = numberKey(md, "adapter.lora.alpha", 0);
  const byName = new Map(spec.tensors.map((t) => [t.name, t]));
  const pairs = new Map<string, ReferenceLoraPair>();
  let rank = 0;
  for (const t of spec.tensors) {
    if (!t.name.endsWith(".lora_a")) continue;
    const target = t.name.slice(0, -".lora_a".length);
    const b = byName.get(`${target}.lora_b`);
    if (b === undefined) throw new Error(`reference: ${t.name} has no lora_b`);
    const r = t.shape[1]!;
    if (b.shape[0] !== r) throw new Error(`reference: ${target} has A of rank ${r} and B of rank ${b.shape[0]}`);
    if (rank !== 0 && r !== rank) throw new Error(`reference: mixed ranks ${rank} and ${r}`);
    rank = r;
    pairs.set(target, { a: tensorValues(t), b: tensorValues(b) });
  }
  if (pairs.size === 0) throw new Error("reference: the adapter has no lora_a/lora_b pairs");
  // llama.cpp: scale = alpha ? adapter_scale·alpha/rank : adapter_scale (llama-adapter.h get_scale).
  return { rank, alpha: alpha === 0 ? rank : alpha, pairs };
}

/** A deep copy of `lora` (the arrays are copied). */
export function cloneLora(lora: ReferenceLora): ReferenceLora {
  return { rank: lora.rank, alpha: lora.alpha, pairs: new Map([...lora.pairs].map(([k, p]) => [k, { a: p.a.slice(), b: p.b.slice() }])) };
}

function matrix(model: ReferenceModel, name: string): ReferenceMatrix {
  const w = model.weights.get(name);
  if (w === undefined) throw new Error(`reference: ${name} is missing`);
  return w;
}

/** y = W·x + (alpha/r)·B·(A·x) for the weight `name`. */
function project(model: ReferenceModel, lora: ReferenceLora | undefined, name: string, x: Float64Array): Float64Array {
  const { data: w, nIn, nOut } = matrix(model, name);
  const y = new Float64Array(nOut);
  for (let o = 0; o < nOut; o++) {
    let sum = 0;
    const row = o * nIn;
    for (let i = 0; i < nIn; i++) sum += w[row + i]! * x[i]!;
    y[o] = sum;
  }
  const pair = lora?.pairs.get(name);
  if (pair !== undefined && lora !== undefined) {
    const r = lora.rank;
    if (pair.a.length !== nIn * r || pair.b.length !== nOut * r) throw new Error(`reference: LoRA pair for ${name} does not fit [${nIn}, ${nOut}] at rank ${r}`);
    const ax = new Float64Array(r);
    for (let k = 0; k < r; k++) {
      let sum = 0;
      const row = k * nIn;
      for (let i = 0; i < nIn; i++) sum += pair.a[row + i]! * x[i]!;
      ax[k] = sum;
    }
    const scale = lora.alpha / r;
    for (let o = 0; o < nOut; o++) {
      let sum = 0;
      const row = o * r;
      for (let k = 0; k < r; k++) sum += pair.b[row + k]! * ax[k]!;
      y[o]! += scale * sum;
    }
  }
  return y;
}

/** rms_norm(x) · weight. */
function rmsNorm(x: Float64Array, weight: Float64Array, eps: number): Float64Array {
  let sum = 0;
  for (let i = 0; i < x.length; i++) sum += x[i]! * x[i]!;
  const scale = 1 / Math.sqrt(sum / x.length + eps);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = x[i]! * scale * weight[i]!;
  return y;
}

/** ggml rope NORMAL mode, in place, on `heads` heads of `headDim` at position `pos`. */
function rope(x: Float64Array, heads: number, headDim: number, nRot: number, base: number, pos: number): void {
  for (let h = 0; h < heads; h++) {
    const off = h * headDim;
    for (let i = 0; 2 * i < nRot; i++) {
      const theta = pos * Math.pow(base, (-2 * i) / nRot);
      const c = Math.cos(theta);
      const s = Math.sin(theta);
      const x0 = x[off + 2 * i]!;
      const x1 = x[off + 2 * i + 1]!;
      x[off + 2 * i] = x0 * c - x1 * s;
      x[off + 2 * i + 1] = x0 * s + x1 * c;
    }
  }
}

const silu = (v: number) => v / (1 + Math.exp(-v));

function checkTokens(model: ReferenceModel, tokens: Int32Array): void {
  if (tokens.length === 0) throw new RangeError("reference: no tokens");
  for (const t of tokens) {
    if (!Number.isInteger(t) || t < 0 || t >= model.vocab) throw new RangeError(`reference: token ${t} is outside the vocabulary (0…${model.vocab - 1})`);
  }
}

/** The logits (one row of `vocab` per position) of `tokens` at positions 0…n−1. */
export function referenceLogits(model: ReferenceModel, lora: ReferenceLora | undefined, tokens: Int32Array): Float64Array[] {
  checkTokens(model, tokens);
  const { embd, heads, kvHeads, headDim, nRot, eps, ropeBase } = model;
  const n = tokens.length;
  const group = heads / kvHeads;
  const kqScale = 1 / Math.sqrt(headDim);
  const tokenEmbd = matrix(model, "token_embd.weight").data;
  const x = Array.from(tokens, (t) => tokenEmbd.slice(t * embd, (t + 1) * embd));

  for (let l = 0; l < model.layers; l++) {
    const p = `blk.${l}.`;
    const attnNorm = matrix(model, `${p}attn_norm.weight`).data;
    const q: Float64Array[] = [];
    const k: Float64Array[] = [];
    const v: Float64Array[] = [];
    for (let t = 0; t < n; t++) {
      const h = rmsNorm(x[t]!, attnNorm, eps);
      const qt = project(model, lora, `${p}attn_q.weight`, h);
      const kt = project(model, lora, `${p}attn_k.weight`, h);
      rope(qt, heads, headDim, nRot, ropeBase, t);
      rope(kt, kvHeads, headDim, nRot, ropeBase, t);
      q.push(qt);
      k.push(kt);
      v.push(project(model, lora, `${p}attn_v.weight`, h));
    }
    const scores = new Float64Array(n);
    for (let t = 0; t < n; t++) {
      const attn = new Float64Array(embd);
      for (let hd = 0; hd < heads; hd++) {
        const qOff = hd * headDim;
        const kvOff = Math.floor(hd / group) * headDim;
        let max = -Infinity;
        for (let s = 0; s <= t; s++) {
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += q[t]![qOff + d]! * k[s]![kvOff + d]!;
          scores[s] = dot * kqScale;
          if (scores[s]! > max) max = scores[s]!;
        }
        let total = 0;
        for (let s = 0; s <= t; s++) {
          scores[s] = Math.exp(scores[s]! - max);
          total += scores[s]!;
        }
        for (let s = 0; s <= t; s++) {
          const weight = scores[s]! / total;
          for (let d = 0; d < headDim; d++) attn[qOff + d]! += weight * v[s]![kvOff + d]!;
        }
      }
      const out = project(model, lora, `${p}attn_output.weight`, attn);
      for (let i = 0; i < embd; i++) x[t]![i]! += out[i]!;
    }
    const ffnNorm = matrix(model, `${p}ffn_norm.weight`).data;
    for (let t = 0; t < n; t++) {
      const h = rmsNorm(x[t]!, ffnNorm, eps);
      const gate = project(model, lora, `${p}ffn_gate.weight`, h);
      const up = project(model, lora, `${p}ffn_up.weight`, h);
      for (let i = 0; i < gate.length; i++) gate[i] = silu(gate[i]!) * up[i]!;
      const down = project(model, lora, `${p}ffn_down.weight`, gate);
      for (let i = 0; i < embd; i++) x[t]![i]! += down[i]!;
    }
  }

  const outputNorm = matrix(model, "output_norm.weight").data;
  const outputName = model.tied ? "token_embd.weight" : "output.weight";
  return x.map((xt) => project(model, lora, outputName, rmsNorm(xt, outputNorm, eps)));
}

/** −log softmax(logits)[target], computed stably. */
export function crossEntropy(logits: Float64Array, target: number): number {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  let total = 0;
  for (const v of logits) total += Math.exp(v - max);
  return Math.log(total) + max - logits[target]!;
}

/**
 * Mean over counted positions of −log softmax(logits[i])[tokens[i + 1]], over every sequence of
 * the batch together (PyTorch's cross_entropy with reduction "mean" over the counted labels).
 */
export function referenceLoss(model: ReferenceModel, lora: ReferenceLora | undefined, batch: readonly ReferenceSequence[]): number {
  let total = 0;
  let count = 0;
  for (const { tokens, counted } of batch) {
    if (tokens.length < 2) throw new RangeError("reference: a sequence needs at least 2 tokens");
    if (counted.length !== tokens.length - 1 && counted.length !== tokens.length) {
      throw new RangeError(`reference: counted has ${counted.length} entries for ${tokens.length} tokens (expected ${tokens.length - 1} or ${tokens.length})`);
    }
    if (!counted.subarray(0, tokens.length - 1).some((c) => c !== 0)) continue;
    const logits = referenceLogits(model, lora, tokens);
    for (let i = 0; i + 1 < tokens.length; i++) {
      if (counted[i] === 0) continue;
      total += crossEntropy(logits[i]!, tokens[i + 1]!);
      count++;
    }
  }
  if (count === 0) throw new RangeError("reference: no counted position in the batch");
  return total / count;
}

/** Every sequence of `tokens` with all its positions counted. */
export function allCounted(tokens: Int32Array): ReferenceSequence {
  return { tokens, counted: new Uint8Array(tokens.length - 1).fill(1) };
}

/**
 * Central finite differences (L(θ + h) − L(θ − h)) / 2h of referenceLoss with respect to every
 * element of one A or B (or a seeded random sample of `samples` distinct elements), in index
 * order. `lora` itself is never modified. Default h = 1e-5: in float64 the rounding error
 * (≈1e-16·L/h) and the truncation error (≈h²·L‴/6) both stay near 1e-10.
 */
export function finiteDifferenceGrad(
  model: ReferenceModel,
  lora: ReferenceLora,
  batch: readonly ReferenceSequence[],
  pair: string,
  which: "a" | "b",
  options: { h?: number; samples?: number; seed?: number } = {},
): { index: number; grad: number }[] {
  const h = options.h ?? 1e-5;
  const work = cloneLora(lora);
  const target = work.pairs.get(pair);
  if (target === undefined) throw new Error(`reference: the adapter has no pair ${pair} (it has ${[...work.pairs.keys()].join(", ")})`);
  const values = target[which];
  let indices = Array.from(values, (_, i) => i);
  if (options.samples !== undefined && options.samples < values.length) {
    // A partial Fisher–Yates shuffle: `samples` distinct indices.
    const random = seededRandom(options.seed ?? 1);
    for (let i = 0; i < options.samples; i++) {
      const j = i + Math.floor(random() * (indices.length - i));
      [indices[i], indices[j]] = [indices[j]!, indices[i]!];
    }
    indices = indices.slice(0, options.samples).sort((x, y) => x - y);
  }
  return indices.map((index) => {
    const original = values[index]!;
    values[index] = original + h;
    const plus = referenceLoss(model, work, batch);
    values[index] = original - h;
    const minus = referenceLoss(model, work, batch);
    values[index] = original;
    return { index, grad: (plus - minus) / (2 * h) };
  });
}

/**
 * `spec` with every norm weight (…_norm.weight, F32) set to seeded values in 1 ± spread, so a
 * check also sees whether the norm weights are applied (makeTinyModel's norms are all ones).
 */
export function withRandomNorms(spec: GgufSpec, seed: number, spread = 0.2): GgufSpec {
  const random = seededRandom(seed);
  const tensors = spec.tensors.map((t) => {
    if (!t.name.endsWith("_norm.weight") || t.type !== GgmlType.F32) return t;
    const values = Float32Array.from({ length: t.shape[0]! }, () => 1 + spread * (random() * 2 - 1));
    return { ...t, data: new Uint8Array(values.buffer) };
  });
  return { ...spec, tensors };
}
