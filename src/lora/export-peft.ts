// llama.cpp GGUF LoRA adapter → PEFT directory (adapter_model.safetensors + adapter_config.json),
// the inverse of `lora convert` for the seven llama projections: "blk.N.attn_q.weight.lora_a"
// (ggml [in, r]) becomes "base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight"
// (torch [r, in], the same bytes), ".lora_b" (ggml [r, out]) becomes "….lora_B.weight"
// ([out, r]) with q/k rows put back into Hugging Face's order (rope-permute.ts).
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  type GgufHeader, type LoraTarget, type SafetensorsSpec, type SafetensorsTensorSpec, encodeSafetensors, loraTargets, openGguf,
} from "../formats/index.ts";
import { headCounts } from "./convert/convert.ts";
import { LoraShapeError, UnsupportedAdapterError } from "./convert/errors.ts";
import { peftLayerModules } from "./convert/peft-names.ts";
import { unpermuteRopeRows } from "./convert/rope-permute.ts";
import { type LoraWeights, checkLoraWeights, loraTargetOf, readLoraGguf } from "./train/lora-weights.ts";

export interface ExportPeftOptions {
  /** The base model's GGUF: its head counts put q/k rows back, its shapes are checked. */
  readonly base?: string;
  /** Attention heads (`attention.head_count`), instead of a base; with `base`, it must agree. */
  readonly heads?: number;
  /** Key/value heads (`attention.head_count_kv`), default `heads`. */
  readonly kvHeads?: number;
  /** adapter_config.json's base_model_name_or_path; default the adapter's general.base_model.0.name, else the base's general.name. */
  readonly baseModelName?: string;
}

export interface ExportPeftResult {
  readonly pairs: number;
  readonly rank: number;
  /** lora_alpha as written (the adapter's alpha, or the rank for an alpha of 0, which llama.cpp reads as scale 1). */
  readonly alpha: number;
  readonly targetModules: readonly string[];
}

/** PEFT's module path and name of each target, from the converter's table (the inverse direction). */
const peftModules = Object.fromEntries(
  (Object.entries(loraTargets) as [LoraTarget, string][]).map(([target, tensor]) => {
    const path = Object.keys(peftLayerModules).find((p) => peftLayerModules[p] === tensor)!;
    return [target, { path, module: path.split(".").pop()! }];
  }),
) as Record<LoraTarget, { path: string; module: string }>;

interface BaseInfo {
  readonly heads: number | undefined;
  readonly kvHeads: number | undefined;
  readonly name: string | undefined;
  readonly shapes: ReadonlyMap<string, readonly number[]>;
}

function baseInfo(header: GgufHeader): BaseInfo {
  const arch = header.metadata.get("general.architecture");
  const count = (key: string) => {
    const value = arch?.type === "string" ? header.metadata.get(`${arch.value}.${key}`) : undefined;
    return typeof value?.value === "number" ? value.value : undefined;
  };
  const heads = count("attention.head_count");
  const name = header.metadata.get("general.name");
  return { heads, kvHeads: count("attention.head_count_kv") ?? heads, name: name?.type === "string" ? name.value : undefined, shapes: new Map(header.tensors.map((t) => [t.name, t.shape])) };
}

const bytesOf = (values: Float32Array) => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

/**
 * The PEFT form of `weights` in memory: the safetensors spec (names sorted, F32, {"format": "pt"})
 * and adapter_config.json's object. `heads` (and `kvHeads`, default `heads`) are needed when q or k
 * is adapted; `baseShapes` (the base's ggml shapes by tensor name) adds the shape check.
 */
export function loraWeightsToPeft(
  weights: LoraWeights,
  options: { readonly heads?: number; readonly kvHeads?: number; readonly baseModelName?: string; readonly baseShapes?: ReadonlyMap<string, readonly number[]> } = {},
): { safetensors: SafetensorsSpec; config: Record<string, unknown>; result: ExportPeftResult } {
  checkLoraWeights(weights);
  const { rank } = weights;
  let headSize: { size: number; weight: string } | undefined;
  const tensors: SafetensorsTensorSpec[] = [];
  const modules = new Set<LoraTarget>();
  for (const pair of weights.pairs) {
    const target = loraTargetOf(pair.weight)!;
    const layer = /^blk\.(\d+)\./.exec(pair.weight)![1];
    const shape = options.baseShapes?.get(pair.weight);
    if (options.baseShapes !== undefined && (shape === undefined || shape.length !== 2 || shape[0] !== pair.nIn || shape[1] !== pair.nOut)) {
      throw new LoraShapeError(pair.weight, shape === undefined ? "is not a tensor of the base model (wrong base?)" : `the adapter implies ggml shape [${pair.nIn}, ${pair.nOut}], the base has [${shape.join(", ")}] (wrong base?)`);
    }
    let b = bytesOf(pair.b);
    if (target === "q" || target === "k") {
      const heads = target === "q" ? options.heads : options.kvHeads ?? options.heads;
      if (heads === undefined) {
        throw new UnsupportedAdapterError("head counts", `${pair.weight} needs the attention head counts to put its rows back into Hugging Face's order: pass the base GGUF (--base) or --heads N [--kv-heads N]`);
      }
      const size = pair.nOut / heads;
      if (!Number.isInteger(size) || size % 2 !== 0) throw new LoraShapeError(pair.weight, `its ${pair.nOut} rows do not split into ${heads} heads of even size (wrong ${target === "q" ? "head" : "key/value head"} count?)`);
      if (headSize !== undefined && headSize.size !== size) throw new LoraShapeError(pair.weight, `${heads} heads of ${size} rows, but ${headSize.weight} has heads of ${headSize.size} (wrong head counts?)`);
      headSize ??= { size, weight: pair.weight };
      b = unpermuteRopeRows(b, pair.nOut, rank * 4, heads);
    }
    const prefix = `base_model.model.model.layers.${layer}.${peftModules[target].path}`;
    tensors.push({ name: `${prefix}.lora_A.weight`, dtype: "F32", shape: [rank, pair.nIn], data: bytesOf(pair.a) });
    tensors.push({ name: `${prefix}.lora_B.weight`, dtype: "F32", shape: [pair.nOut, rank], data: b });
    modules.add(target);
  }
  tensors.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  const targetModules = weights.targets.filter((t) => modules.has(t)).map((t) => peftModules[t].module);
  // llama.cpp reads alpha 0 as "scale by 1"; PEFT always scales by alpha/r, which is 1 for alpha = r.
  const alpha = weights.alpha === 0 ? rank : weights.alpha;
  // The keys and defaults of peft's LoraConfig as save_pretrained writes them.
  const config: Record<string, unknown> = {
    alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: options.baseModelName ?? null, bias: "none", fan_in_fan_out: false,
    inference_mode: true, init_lora_weights: true, layer_replication: null, layers_pattern: null, layers_to_transform: null,
    loftq_config: {}, lora_alpha: alpha, lora_dropout: 0, megatron_config: null, megatron_core: "megatron.core",
    modules_to_save: null, peft_type: "LORA", r: rank, rank_pattern: {}, revision: null, target_modules: targetModules,
    task_type: "CAUSAL_LM", use_dora: false, use_rslora: false,
  };
  return { safetensors: { metadata: { format: "pt" }, tensors }, config, result: { pairs: weights.pairs.length, rank, alpha, targetModules } };
}

/**
 * Exports the GGUF LoRA adapter at `adapter` (as the trainer writes it: one rank, the seven
 * projections, F32/F16/BF16) to a PEFT directory `dir` (created if needed): adapter_model.safetensors
 * (F32) and adapter_config.json. q/k rows need the head counts: `base` or `heads`/`kvHeads`.
 */
export async function exportPeftAdapter(adapter: string, dir: string, options: ExportPeftOptions = {}): Promise<ExportPeftResult> {
  const base = options.base === undefined ? undefined : await (async () => {
    await using file = await openGguf(options.base!);
    return baseInfo(file.header);
  })();
  const counts = headCounts(options, base);
  const weights = await readLoraGguf(adapter);
  const named = await (async () => {
    await using file = await openGguf(adapter);
    const value = file.metadata.get("general.base_model.0.name");
    return value?.type === "string" ? value.value : undefined;
  })();
  const { safetensors, config, result } = loraWeightsToPeft(weights, {
    ...counts,
    baseModelName: options.baseModelName ?? named ?? base?.name,
    baseShapes: base?.shapes,
  });
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "adapter_model.safetensors"), encodeSafetensors(safetensors));
  await writeFile(join(dir, "adapter_config.json"), `${JSON.stringify(config, null, 2)}\n`);
  return result;
}
