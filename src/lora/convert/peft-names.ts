// PEFT's tensor names for llama-family models and the llama.cpp tensors they adapt. PEFT saves
// "base_model.model.<module path>.lora_A.weight" ([r, in]) and ".lora_B.weight" ([out, r]) for
// linear layers, ".lora_embedding_A" ([r, vocab]) and ".lora_embedding_B" ([dim, r]) for the
// token embeddings. The module paths and their GGUF names follow gguf-py's tensor_mapping.py.
import { UnknownModuleError, UnsupportedAdapterError } from "./errors.ts";

export type RopeProjection = "q" | "k";

export interface PeftTensorName {
  /** Module path without the "base_model.model." prefix, e.g. "model.layers.0.self_attn.q_proj". */
  readonly module: string;
  readonly part: "A" | "B";
  /** The adapted base tensor in llama.cpp's GGUF, e.g. "blk.0.attn_q.weight". */
  readonly target: string;
  readonly embedding: boolean;
  /** q and k projections have their rows reordered for llama.cpp's rope (see rope-permute.ts). */
  readonly rope: RopeProjection | undefined;
}

/** A layer's PEFT module paths and the llama.cpp tensor names they adapt. */
export const peftLayerModules: Readonly<Record<string, string>> = {
  "self_attn.q_proj": "attn_q",
  "self_attn.k_proj": "attn_k",
  "self_attn.v_proj": "attn_v",
  "self_attn.o_proj": "attn_output",
  "mlp.gate_proj": "ffn_gate",
  "mlp.up_proj": "ffn_up",
  "mlp.down_proj": "ffn_down",
};

function targetOf(module: string): string | undefined {
  if (module === "lm_head") return "output.weight";
  if (module === "model.embed_tokens") return "token_embd.weight";
  const match = /^model\.layers\.(\d+)\.(.+)$/.exec(module);
  const name = match && peftLayerModules[match[2]!];
  return name === undefined || match === null ? undefined : `blk.${match[1]}.${name}.weight`;
}

/** Parses one tensor name of adapter_model.safetensors; `undefined` for tensors to skip. */
export function parsePeftTensorName(name: string): PeftTensorName | undefined {
  // The frozen base weight is never needed (convert_lora_to_gguf.py skips it too).
  if (name.endsWith(".base_layer.weight")) return undefined;
  if (name.includes("lora_magnitude_vector")) throw new UnsupportedAdapterError("DoRA", `tensor "${name}" is a DoRA magnitude vector, which llama.cpp adapters cannot apply`);
  const match = /^base_model\.model\.(.+)\.(?:lora_([AB])\.weight|lora_embedding_([AB]))$/.exec(name);
  if (match === null) {
    const hint = /(embed_tokens|lm_head)\.weight$/.test(name) ? " (a full embedding or output matrix, as modules_to_save or added tokens produce)" : "";
    throw new UnknownModuleError(name, `is not a PEFT lora_A/lora_B tensor${hint}`);
  }
  const module = match[1]!;
  const embedding = match[3] !== undefined;
  const target = targetOf(module);
  if (target === undefined || embedding !== (target === "token_embd.weight")) {
    throw new UnknownModuleError(name, `module "${module}" has no llama.cpp counterpart (known: q/k/v/o_proj, gate/up/down_proj, embed_tokens, lm_head)`);
  }
  const rope = /\.self_attn\.([qk])_proj$/.exec(module)?.[1] as RopeProjection | undefined;
  return { module, part: (match[2] ?? match[3]) as "A" | "B", target, embedding, rope };
}
