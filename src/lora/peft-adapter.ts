// A PEFT adapter directory loaded straight into a model: converted to a GGUF adapter in memory
// (the converter of `lora convert`) and handed to llama.cpp as bytes, with no temporary file.
import { encodeGguf } from "../formats/index.ts";
import { LoraAdapter, type LlamaModel } from "../llama/index.ts";
import { type ConvertOptions, peftToGguf } from "./convert/convert.ts";

/** As for `convertPeftAdapter`; the head counts default to the model's own. */
export type PeftAdapterOptions = Omit<ConvertOptions, "onProgress">;

/**
 * Loads the PEFT LoRA adapter in `dir` (adapter_config.json, adapter_model.safetensors) for
 * `model`. q_proj/k_proj rows are reordered with the model's head counts unless `heads` /
 * `kvHeads` say otherwise; `base` (the model's GGUF) adds the converter's shape checks, which
 * llama.cpp otherwise does itself when it takes the adapter.
 */
export async function loadPeftAdapter(model: LlamaModel, dir: string, options: PeftAdapterOptions = {}): Promise<LoraAdapter> {
  const shape = options.heads === undefined && options.base === undefined ? model.shape : undefined;
  const { spec } = await peftToGguf(dir, {
    ...options,
    ...(shape === undefined ? {} : { heads: shape.heads, kvHeads: shape.headsKv }),
  });
  return LoraAdapter.fromBytes(model, encodeGguf(spec), { name: dir });
}
