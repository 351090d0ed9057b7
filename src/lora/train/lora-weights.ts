// The in-memory LoRA adapter the trainer produces and continues from, and its llama.cpp GGUF
// form (src/llama-adapter.cpp, as src/formats/tiny/lora.ts writes it): general.type "adapter",
// adapter.type "lora", adapter.lora.alpha (f32), and per adapted weight W (ggml [nIn, nOut])
// "<W>.lora_a" of ggml shape [nIn, rank] and "<W>.lora_b" of [rank, nOut], here always F32.
import {
  type ByteInput, type GgufTensorSpec, type GgufValue, type LoraTarget, GgmlType, encodeGguf, loraTargets, openGguf,
} from "../../formats/index.ts";
import { LoraShapeError, UnsupportedAdapterError } from "../convert/errors.ts";
import { decodeFloats, isFloatType } from "../convert/float-data.ts";

export type { LoraTarget };

/** One adapted weight W: ΔW = B·A, applied by llama.cpp as y = W·x + scale·(alpha/rank)·B·(A·x). */
export interface LoraPair {
  /** The base tensor, e.g. "blk.0.attn_q.weight". */
  readonly weight: string;
  readonly nIn: number;
  readonly nOut: number;
  /** ggml [nIn, rank]: rank rows of nIn values (PEFT's lora_A, torch [rank, nIn], has the same bytes). */
  readonly a: Float32Array;
  /** ggml [rank, nOut]: nOut rows of rank values (PEFT's lora_B, torch [nOut, rank], in llama.cpp's q/k row order). */
  readonly b: Float32Array;
}

export interface LoraWeights {
  /** The base's `general.architecture`, e.g. "llama". */
  readonly architecture: string;
  readonly rank: number;
  /** llama.cpp scales by alpha/rank (by 1 when alpha is 0); written as f32. */
  readonly alpha: number;
  readonly targets: readonly LoraTarget[];
  readonly pairs: readonly LoraPair[];
}

const targetOfTensor = new Map<string, LoraTarget>(Object.entries(loraTargets).map(([target, tensor]) => [tensor, target as LoraTarget]));
const targetOrder = Object.keys(loraTargets) as LoraTarget[];

/** The target a base tensor name belongs to ("blk.3.ffn_up.weight" → "up"), or undefined. */
export function loraTargetOf(weight: string): LoraTarget | undefined {
  const match = /^blk\.\d+\.([a-z_]+)\.weight$/.exec(weight);
  return match === null ? undefined : targetOfTensor.get(match[1]!);
}

const isCount = (n: number) => Number.isSafeInteger(n) && n >= 1;

/** Checks that `weights` is one consistent adapter; throws LoraShapeError / UnsupportedAdapterError naming the fault. */
export function checkLoraWeights(weights: LoraWeights): void {
  const { rank, alpha, architecture } = weights;
  if (typeof architecture !== "string" || architecture === "") throw new UnsupportedAdapterError("architecture", "must be a non-empty string (the base's general.architecture)");
  if (!isCount(rank)) throw new LoraShapeError("(adapter)", `rank must be a positive integer, got ${rank}`);
  if (!Number.isFinite(alpha)) throw new UnsupportedAdapterError("alpha", `must be a finite number, got ${alpha}`);
  for (const target of weights.targets) {
    if (!Object.hasOwn(loraTargets, target)) throw new UnsupportedAdapterError("targets", `unknown target "${target}"; choose from ${targetOrder.join(", ")}`);
  }
  if (weights.pairs.length === 0) throw new UnsupportedAdapterError("pairs", "an adapter needs at least one A/B pair");
  const seen = new Set<string>();
  for (const pair of weights.pairs) {
    const target = loraTargetOf(pair.weight);
    if (target === undefined) throw new UnsupportedAdapterError("targets", `"${pair.weight}" is not one of the projections ${Object.values(loraTargets).map((t) => `blk.N.${t}.weight`).join(", ")}`);
    if (!weights.targets.includes(target)) throw new UnsupportedAdapterError("targets", `"${pair.weight}" is a ${target} projection, which is not among the targets (${weights.targets.join(", ")})`);
    if (seen.has(pair.weight)) throw new LoraShapeError(pair.weight, "has two pairs");
    seen.add(pair.weight);
    if (!isCount(pair.nIn) || !isCount(pair.nOut)) throw new LoraShapeError(pair.weight, `invalid shape nIn ${pair.nIn}, nOut ${pair.nOut}`);
    if (!(pair.a instanceof Float32Array) || pair.a.length !== pair.nIn * rank) {
      throw new LoraShapeError(`${pair.weight}.lora_a`, `needs ${pair.nIn}·${rank} = ${pair.nIn * rank} f32 values ([${pair.nIn}, ${rank}]), has ${pair.a?.length}`);
    }
    if (!(pair.b instanceof Float32Array) || pair.b.length !== rank * pair.nOut) {
      throw new LoraShapeError(`${pair.weight}.lora_b`, `needs ${rank}·${pair.nOut} = ${rank * pair.nOut} f32 values ([${rank}, ${pair.nOut}]), has ${pair.b?.length}`);
    }
  }
}

const bytesOf = (values: Float32Array) => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

/** The metadata keys encodeLoraGguf writes itself; `extraMetadata` may not repeat them. */
const ownKeys = new Set(["general.architecture", "general.type", "adapter.type", "adapter.lora.alpha"]);

/** Encodes `weights` as a llama.cpp GGUF LoRA adapter (pairs in order, lora_a before lora_b, F32). */
export function encodeLoraGguf(weights: LoraWeights, extraMetadata: [string, GgufValue][] = []): Uint8Array {
  checkLoraWeights(weights);
  for (const [key] of extraMetadata) {
    if (ownKeys.has(key)) throw new UnsupportedAdapterError("extraMetadata", `"${key}" is written from the adapter itself`);
  }
  const tensors: GgufTensorSpec[] = weights.pairs.flatMap((pair) => [
    { name: `${pair.weight}.lora_a`, type: GgmlType.F32, shape: [pair.nIn, weights.rank], data: bytesOf(pair.a) },
    { name: `${pair.weight}.lora_b`, type: GgmlType.F32, shape: [weights.rank, pair.nOut], data: bytesOf(pair.b) },
  ]);
  return encodeGguf({
    metadata: [
      ["general.architecture", { type: "string", value: weights.architecture }],
      ["general.type", { type: "string", value: "adapter" }],
      ["adapter.type", { type: "string", value: "lora" }],
      ["adapter.lora.alpha", { type: "f32", value: weights.alpha }],
      ...extraMetadata,
    ],
    tensors,
  });
}

/**
 * Reads a GGUF LoRA adapter (a path, or its bytes) into LoraWeights. A and B may be F32, F16 or
 * BF16 (converted to f32). Refused with a typed error: a file that is not a LoRA adapter
 * (UnsupportedAdapterError), an adapted tensor other than the seven projections (output and
 * token embedding pairs included), a missing half, shapes that do not fit, or pairs of different
 * ranks (LoraShapeError: LoraWeights has one rank).
 */
export async function readLoraGguf(input: ByteInput): Promise<LoraWeights> {
  const where = typeof input === "string" ? input : "(bytes)";
  await using file = await openGguf(input);
  const text = (key: string) => {
    const value = file.metadata.get(key);
    return value?.type === "string" ? value.value : undefined;
  };
  const type = text("general.type");
  if (type !== undefined && type !== "adapter") throw new UnsupportedAdapterError("general.type", `${where} is a "${type}", not an adapter`);
  if (text("adapter.type") !== "lora") throw new UnsupportedAdapterError("adapter.type", `${where} is not a LoRA adapter (adapter.type ${JSON.stringify(text("adapter.type") ?? null)})`);
  const architecture = text("general.architecture");
  if (architecture === undefined) throw new UnsupportedAdapterError("general.architecture", `${where} does not name its architecture`);
  const alphaValue = file.metadata.get("adapter.lora.alpha");
  // llama.cpp reads the alpha as optional (0: scale by 1 instead of alpha/rank).
  const alpha = alphaValue === undefined ? 0 : typeof alphaValue.value === "number" ? alphaValue.value : Number.NaN;
  if (!Number.isFinite(alpha)) throw new UnsupportedAdapterError("adapter.lora.alpha", `${where}: must be a number, is ${alphaValue?.type}`);

  const halves = new Map<string, { a?: (typeof file.tensors)[number]; b?: (typeof file.tensors)[number] }>();
  for (const info of file.tensors) {
    const match = /^(.+)\.lora_([ab])$/.exec(info.name);
    if (match === null) throw new UnsupportedAdapterError("tensors", `${where}: "${info.name}" is not a .lora_a/.lora_b tensor`);
    const weight = match[1]!;
    if (loraTargetOf(weight) === undefined) {
      throw new UnsupportedAdapterError("targets", `${where}: "${weight}" is not one of the projections q, k, v, o, gate, up, down (blk.N.attn_q.weight …)`);
    }
    if (!isFloatType(info.type)) throw new UnsupportedAdapterError("dtype", `${where}: "${info.name}" is ${info.typeName}; only F32, F16 and BF16 are read`);
    if (info.shape.length !== 2) throw new LoraShapeError(info.name, `expected 2 dimensions, got [${info.shape.join(", ")}]`);
    const pair = halves.get(weight) ?? {};
    pair[match[2] as "a" | "b"] = info;
    halves.set(weight, pair);
  }
  if (halves.size === 0) throw new UnsupportedAdapterError("pairs", `${where} holds no LoRA tensors`);

  let rank: number | undefined;
  const pairs: LoraPair[] = [];
  for (const [weight, { a, b }] of halves) {
    if (a === undefined || b === undefined) throw new LoraShapeError(weight, `lora_${a === undefined ? "a" : "b"} is missing`);
    const [nIn, rankA] = a.shape as [number, number];
    const [rankB, nOut] = b.shape as [number, number];
    if (rankA !== rankB) throw new LoraShapeError(weight, `lora_a [${a.shape.join(", ")}] and lora_b [${b.shape.join(", ")}] have different ranks (lora_a must be [nIn, rank], lora_b [rank, nOut])`);
    if (rank !== undefined && rankA !== rank) throw new LoraShapeError(weight, `rank ${rankA}, but ${pairs[0]!.weight} has rank ${rank}; a trainable adapter has one rank`);
    if (rankA < 1 || nIn < 1 || nOut < 1) throw new LoraShapeError(weight, `empty shape: lora_a [${a.shape.join(", ")}], lora_b [${b.shape.join(", ")}]`);
    rank = rankA;
    // Copies: the values must not alias the input bytes or a reused read buffer.
    pairs.push({ weight, nIn, nOut, a: decodeFloats(await file.readTensor(a.name), a.type).slice(), b: decodeFloats(await file.readTensor(b.name), b.type).slice() });
  }
  const present = new Set(pairs.map((p) => loraTargetOf(p.weight)));
  return { architecture, rank: rank!, alpha, targets: targetOrder.filter((t) => present.has(t)), pairs };
}
