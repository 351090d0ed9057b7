// PEFT LoRA adapter directory → llama.cpp GGUF adapter, tensor for tensor what llama.cpp's
// convert_lora_to_gguf.py writes: per adapted weight "<gguf name>.lora_a" (PEFT's A, ggml shape
// [in, r]) and ".lora_b" (PEFT's B, [r, out]; rows of q/k reordered for ggml's rope), the token
// embedding's A transposed, pairs in the order of their first tensor in sorted PEFT names (the
// order safetensors' load_file yields), and adapter.lora.alpha.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type GgufHeader, type GgufSpec, type GgufTensorSpec, type GgufValue, type SafetensorsTensorInfo, GgmlType, InvalidOptionError,
  openGguf, openSafetensors, writeGgufFile,
} from "../../formats/index.ts";
import { LoraShapeError, UnsupportedAdapterError } from "./errors.ts";
import { decodeFloats, encodeFloats } from "./float-data.ts";
import { type PeftLoraConfig, expectedRank, parsePeftConfig } from "./peft-config.ts";
import { type PeftTensorName, parsePeftTensorName } from "./peft-names.ts";
import { permuteRopeRows } from "./rope-permute.ts";

/** "keep" writes each pair in its own dtype (F32 when A and B differ, as the reference does). */
export type ConvertOutType = "keep" | "f32" | "f16" | "bf16";

export interface ConvertOptions {
  /** The base model's GGUF: its shapes are checked, its head counts order q/k rows, its architecture is recorded. */
  readonly base?: string;
  /**
   * The attention head count (llama.cpp's `<arch>.attention.head_count`), to reorder q_proj and
   * k_proj rows without a base GGUF. With `base`, it must agree with the base's.
   */
  readonly heads?: number;
  /** The key/value head count (`attention.head_count_kv`) for k_proj; default `heads`. Needs `heads`. */
  readonly kvHeads?: number;
  readonly outType?: ConvertOutType;
  /** Called after each written pair. */
  readonly onProgress?: (done: number, total: number) => void;
}

export interface ConvertResult {
  readonly pairs: number;
  readonly alpha: number;
  readonly architecture: string;
}

const ggmlTypeOfDtype: Record<string, number> = { F32: GgmlType.F32, F16: GgmlType.F16, BF16: GgmlType.BF16 };
const outTypes: Record<Exclude<ConvertOutType, "keep">, number> = { f32: GgmlType.F32, f16: GgmlType.F16, bf16: GgmlType.BF16 };

interface Pair {
  readonly target: string;
  readonly name: PeftTensorName;
  a?: SafetensorsTensorInfo;
  b?: SafetensorsTensorInfo;
}

/** The attention head counts that order q and k rows; undefined when nobody said. */
export interface HeadCounts {
  readonly heads: number | undefined;
  readonly kvHeads: number | undefined;
}

/** What the conversion needs from the base model. */
interface BaseInfo extends HeadCounts {
  readonly architecture: string;
  readonly shapes: ReadonlyMap<string, readonly number[]>;
}

function baseInfo(header: GgufHeader): BaseInfo {
  const arch = header.metadata.get("general.architecture");
  if (arch?.type !== "string") throw new UnsupportedAdapterError("base", "the base model has no general.architecture");
  const count = (key: string) => {
    const value = header.metadata.get(`${arch.value}.${key}`);
    return typeof value?.value === "number" ? value.value : undefined;
  };
  const heads = count("attention.head_count");
  return { architecture: arch.value, shapes: new Map(header.tensors.map((t) => [t.name, t.shape])), heads, kvHeads: count("attention.head_count_kv") ?? heads };
}

/** Groups the safetensors tensors into A/B pairs per adapted GGUF tensor. */
function pairTensors(tensors: readonly SafetensorsTensorInfo[]): Pair[] {
  const pairs = new Map<string, Pair>();
  for (const info of [...tensors].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0))) {
    const name = parsePeftTensorName(info.name);
    if (name === undefined) continue;
    const pair = pairs.get(name.target) ?? { target: name.target, name };
    pairs.set(name.target, pair);
    if (pair[name.part === "A" ? "a" : "b"] !== undefined) throw new LoraShapeError(info.name, `a second lora_${name.part} for ${name.target}`);
    pair[name.part === "A" ? "a" : "b"] = info;
  }
  if (pairs.size === 0) throw new UnsupportedAdapterError("adapter_model.safetensors", "holds no LoRA tensors");
  return [...pairs.values()];
}

/** Checks one pair's shapes (against the base when given) and returns its rank. */
function checkPair(pair: Pair, config: PeftLoraConfig, base: BaseInfo | undefined): { a: SafetensorsTensorInfo; b: SafetensorsTensorInfo; rank: number } {
  const { a, b } = pair;
  if (a === undefined || b === undefined) throw new LoraShapeError(pair.target, `lora_${a === undefined ? "A" : "B"} of module "${pair.name.module}" is missing`);
  for (const t of [a, b]) {
    if (t.shape.length !== 2) throw new LoraShapeError(t.name, `expected 2 dimensions, got [${t.shape.join(", ")}]`);
    if (ggmlTypeOfDtype[t.dtype] === undefined) throw new UnsupportedAdapterError("dtype", `tensor "${t.name}" is ${t.dtype}; only F32, F16 and BF16 convert`);
  }
  const [rank, inputs] = a.shape as [number, number];
  const [outputs, rankB] = b.shape as [number, number];
  if (rankB !== rank) throw new LoraShapeError(b.name, `rank ${rankB} differs from lora_A's ${rank}`);
  const expected = expectedRank(config, pair.name.module);
  if (rank !== expected) throw new LoraShapeError(a.name, `rank ${rank}, but adapter_config.json gives module "${pair.name.module}" rank ${expected}`);
  const baseShape = base?.shapes.get(pair.target);
  if (base !== undefined) {
    if (baseShape === undefined) throw new LoraShapeError(pair.target, "is not a tensor of the base model (wrong base?)");
    // ggml shape [n_in, n_out]; the embedding's A spans the vocabulary (its rows), B the embedding width.
    const [wantIn, wantOut] = pair.name.embedding ? [outputs, inputs] : [inputs, outputs];
    if (baseShape.length !== 2 || baseShape[0] !== wantIn || baseShape[1] !== wantOut) {
      throw new LoraShapeError(pair.target, `the adapter implies ggml shape [${wantIn}, ${wantOut}], the base has [${baseShape.join(", ")}] (wrong base?)`);
    }
  }
  return { a, b, rank };
}

function transpose(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c]!;
  return out;
}

/** Tensor bytes converted from `from` to `to` (unchanged bytes when the types agree). */
function retype(bytes: Uint8Array, from: number, to: number): Uint8Array {
  return from === to ? bytes : encodeFloats(decodeFloats(bytes, from), to);
}

/** The head counts from the options (checked against the base's when both say), else the base's. */
export function headCounts(options: { readonly heads?: number; readonly kvHeads?: number }, base: HeadCounts | undefined): HeadCounts {
  const { heads, kvHeads } = options;
  for (const [name, value] of [["heads", heads], ["kvHeads", kvHeads]] as const) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) throw new InvalidOptionError(name, `must be a positive integer, got ${value}`);
  }
  if (heads === undefined) {
    if (kvHeads !== undefined) throw new InvalidOptionError("kvHeads", "goes with heads (the query head count)");
    return { heads: base?.heads, kvHeads: base?.kvHeads };
  }
  const given = { heads, kvHeads: kvHeads ?? heads };
  if (base?.heads !== undefined && (base.heads !== given.heads || base.kvHeads !== given.kvHeads)) {
    throw new InvalidOptionError("heads", `${given.heads} query and ${given.kvHeads} key/value heads, but the base model has ${base.heads} and ${base.kvHeads} (attention.head_count, head_count_kv)`);
  }
  return given;
}

/**
 * The head count that orders a q or k pair's rows (undefined for other pairs), after checking
 * that its rows split into heads of even size and that q and k agree on that size.
 */
function ropeHeads(pairs: readonly Pair[], rows: readonly number[], counts: HeadCounts): (number | undefined)[] {
  let headSize: { size: number; target: string } | undefined;
  return pairs.map((pair, i) => {
    if (pair.name.rope === undefined) return undefined;
    const heads = pair.name.rope === "q" ? counts.heads : counts.kvHeads;
    if (heads === undefined) {
      throw new UnsupportedAdapterError("head counts", `${pair.name.module} needs the attention head counts to reorder its rows for llama.cpp's rope: pass the base GGUF (--base) or --heads N [--kv-heads N]`);
    }
    const size = rows[i]! / heads;
    if (!Number.isInteger(size) || size % 2 !== 0) throw new LoraShapeError(pair.target, `its ${rows[i]} rows do not split into ${heads} heads of even size (wrong ${pair.name.rope === "q" ? "head" : "key/value head"} count?)`);
    if (headSize !== undefined && headSize.size !== size) {
      throw new LoraShapeError(pair.target, `${heads} heads of ${size} rows, but ${headSize.target} has heads of ${headSize.size} (wrong head counts?)`);
    }
    headSize ??= { size, target: pair.target };
    return heads;
  });
}

/** Reads a PEFT adapter directory and builds the GGUF adapter (held in memory: adapters are small next to their models). */
export async function peftToGguf(dir: string, options: ConvertOptions = {}): Promise<ConvertResult & { readonly spec: GgufSpec }> {
  const config = parsePeftConfig(JSON.parse(await readFile(join(dir, "adapter_config.json"), "utf8")));
  const base = options.base === undefined ? undefined : await (async () => {
    await using file = await openGguf(options.base!);
    return baseInfo(file.header);
  })();
  await using weights = await openSafetensors(join(dir, "adapter_model.safetensors"));
  const pairs = pairTensors(weights.tensors);
  const checked = pairs.map((pair) => checkPair(pair, config, base));
  const ranks = new Set(checked.map((c) => c.rank));
  // rsLoRA scales by alpha/√r; llama.cpp by alpha/r, which agree for alpha·√r when every rank is the same.
  if (config.rsLora && ranks.size > 1) throw new UnsupportedAdapterError("use_rslora", `rsLoRA with several ranks (${[...ranks].join(", ")}) needs one alpha per rank`);
  const alpha = config.rsLora ? config.alpha * Math.sqrt(config.rank) : config.alpha;
  const rope = ropeHeads(pairs, checked.map((c) => c.b.shape[0]!), headCounts(options, base));

  const tensors: GgufTensorSpec[] = [];
  for (const [i, pair] of pairs.entries()) {
    const { a, b, rank } = checked[i]!;
    const [typeA, typeB] = [ggmlTypeOfDtype[a.dtype]!, ggmlTypeOfDtype[b.dtype]!];
    const out = options.outType === undefined || options.outType === "keep" ? (typeA === typeB ? typeA : GgmlType.F32) : outTypes[options.outType];
    const [inputs, outputs] = [a.shape[1]!, b.shape[0]!];
    let dataA = await weights.readTensor(a.name);
    let dataB = await weights.readTensor(b.name);
    const heads = rope[i];
    if (heads !== undefined) dataB = permuteRopeRows(dataB, outputs, dataB.length / outputs, heads);
    let shapeA = [inputs, rank];
    if (pair.name.embedding) {
      // llama.cpp gathers the embedding's A by token (llm_build_inp_embd), so it wants A's rows per token.
      dataA = encodeFloats(transpose(decodeFloats(dataA, typeA), rank, inputs), out);
      shapeA = [rank, inputs];
    } else {
      dataA = retype(dataA, typeA, out);
    }
    tensors.push({ name: `${pair.target}.lora_a`, type: out, shape: shapeA, data: dataA });
    tensors.push({ name: `${pair.target}.lora_b`, type: out, shape: [rank, outputs], data: retype(dataB, typeB, out) });
    options.onProgress?.(i + 1, pairs.length);
  }
  const architecture = base?.architecture ?? "llama";
  const metadata: [string, GgufValue][] = [
    ["general.architecture", { type: "string", value: architecture }],
    ["general.type", { type: "string", value: "adapter" }],
    ["adapter.type", { type: "string", value: "lora" }],
    ["adapter.lora.alpha", { type: "f32", value: alpha }],
  ];
  if (config.baseModel !== undefined) metadata.push(["general.base_model.0.name", { type: "string", value: config.baseModel }]);
  return { spec: { metadata, tensors }, pairs: pairs.length, alpha, architecture };
}

/** Converts the PEFT adapter in `dir` (adapter_config.json, adapter_model.safetensors) to a GGUF adapter at `out`. */
export async function convertPeftAdapter(dir: string, out: string, options: ConvertOptions = {}): Promise<ConvertResult> {
  const { spec, ...result } = await peftToGguf(dir, options);
  await writeGgufFile(out, spec);
  return result;
}
