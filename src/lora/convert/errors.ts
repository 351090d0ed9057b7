// Typed errors of the LoRA tools: each names the tensor or setting at fault, so a user can tell
// a wrong base model from an adapter feature that llama.cpp's format cannot express.
import { GpuffiError } from "../../ffi/errors.ts";

/** The adapter uses a PEFT feature that a llama.cpp LoRA adapter cannot represent (DoRA, modules_to_save, ...). */
export class UnsupportedAdapterError extends GpuffiError {
  override name = "UnsupportedAdapterError";
  constructor(readonly feature: string, detail: string) {
    super("ERR_LORA_UNSUPPORTED", `${feature}: ${detail}`);
  }
}

/** A tensor of the adapter belongs to a module gpuffi does not know how to map to llama.cpp's names. */
export class UnknownModuleError extends GpuffiError {
  override name = "UnknownModuleError";
  constructor(readonly tensor: string, detail: string) {
    super("ERR_LORA_UNKNOWN_MODULE", `tensor "${tensor}": ${detail}`);
  }
}

/** Shapes or types that do not fit together: A and B of one pair, an adapter and its base, a rank and its pattern. */
export class LoraShapeError extends GpuffiError {
  override name = "LoraShapeError";
  constructor(readonly tensor: string, detail: string) {
    super("ERR_LORA_SHAPE", `tensor "${tensor}": ${detail}`);
  }
}

/**
 * A tensor that an adapter changes is quantized, and was not to be dequantized (or is of a type
 * gpuffi cannot dequantize).
 */
export class QuantizedBaseError extends GpuffiError {
  override name = "QuantizedBaseError";
  constructor(readonly tensor: string, readonly typeName: string, dequantizing: boolean) {
    super("ERR_LORA_QUANTIZED_BASE", `tensor "${tensor}" is ${typeName}: ` + (dequantizing
      ? "gpuffi dequantizes Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 only; merge into the unquantized model and quantize afterwards"
      : "merging works on F32, F16 and BF16 weights; dequantize the adapted Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 tensors with --dequantize (dequantize: \"f16\" or \"f32\"), or merge into the unquantized model and quantize afterwards"));
  }
}
