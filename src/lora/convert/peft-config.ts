// adapter_config.json as PEFT writes it (peft.LoraConfig), reduced to what decides whether and
// how the adapter can become a llama.cpp LoRA: one alpha for the whole file, per-tensor ranks.
import { UnsupportedAdapterError } from "./errors.ts";

export interface PeftLoraConfig {
  readonly rank: number;
  readonly alpha: number;
  /** rsLoRA scales by alpha/√r instead of alpha/r. */
  readonly rsLora: boolean;
  /** Ranks of the modules whose key matches (PEFT's `rank_pattern`). */
  readonly rankPattern: ReadonlyMap<string, number>;
  readonly baseModel: string | undefined;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const isEmpty = (v: unknown) => v === undefined || v === null || (Array.isArray(v) && v.length === 0) || (isObject(v) && Object.keys(v).length === 0);

function positiveNumber(config: Json, key: string): number {
  const value = config[key];
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) throw new UnsupportedAdapterError(key, `must be a positive number, got ${JSON.stringify(value)}`);
  return value;
}

/** Validates a parsed adapter_config.json, refusing what a llama.cpp adapter cannot express. */
export function parsePeftConfig(config: unknown): PeftLoraConfig {
  if (!isObject(config)) throw new UnsupportedAdapterError("adapter_config.json", "must be a JSON object");
  const type = config.peft_type ?? "LORA";
  if (type !== "LORA") throw new UnsupportedAdapterError("peft_type", `only LORA adapters convert, this is ${JSON.stringify(type)}`);
  if (config.use_dora === true) throw new UnsupportedAdapterError("use_dora", "DoRA rescales each weight column by a learned magnitude, which llama.cpp adapters cannot apply; merge it in PEFT instead");
  if (!isEmpty(config.modules_to_save)) {
    throw new UnsupportedAdapterError("modules_to_save", `the adapter replaces whole modules (${JSON.stringify(config.modules_to_save)}), which a LoRA GGUF cannot carry`);
  }
  if (config.bias !== undefined && config.bias !== "none") throw new UnsupportedAdapterError("bias", `trained biases ("${String(config.bias)}") have no place in a llama.cpp adapter`);
  if (config.fan_in_fan_out === true) throw new UnsupportedAdapterError("fan_in_fan_out", "transposed (Conv1D) weights are not llama-family projections");
  const rank = positiveNumber(config, "r");
  const alpha = positiveNumber(config, "lora_alpha");
  // llama.cpp stores a single alpha per adapter; per-module alphas would need rescaled B matrices.
  const alphaPattern = isObject(config.alpha_pattern) ? config.alpha_pattern : {};
  for (const [key, value] of Object.entries(alphaPattern)) {
    if (value !== alpha) throw new UnsupportedAdapterError("alpha_pattern", `module "${key}" has alpha ${JSON.stringify(value)}, but a llama.cpp adapter has one alpha (${alpha}) for every tensor`);
  }
  const rankPattern = new Map<string, number>();
  for (const [key, value] of Object.entries(isObject(config.rank_pattern) ? config.rank_pattern : {})) {
    if (!Number.isSafeInteger(value) || (value as number) < 1) throw new UnsupportedAdapterError("rank_pattern", `module "${key}" has rank ${JSON.stringify(value)}`);
    rankPattern.set(key, value as number);
  }
  const baseModel = typeof config.base_model_name_or_path === "string" ? config.base_model_name_or_path : undefined;
  return { rank, alpha, rsLora: config.use_rslora === true, rankPattern, baseModel };
}

/** The rank PEFT gave `module` (its dotted path): the first matching `rank_pattern` key, else `r`. */
export function expectedRank(config: PeftLoraConfig, module: string): number {
  for (const [key, rank] of config.rankPattern) {
    // PEFT's get_pattern_key: the key matches the whole path or a dotted suffix of it, as a regex.
    if (new RegExp(`^(.*\\.)?(${key})$`).test(module)) return rank;
  }
  return config.rank;
}
