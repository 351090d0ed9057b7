// PEFT → GGUF LoRA conversion.
export { LoraShapeError, QuantizedBaseError, UnknownModuleError, UnsupportedAdapterError } from "./errors.ts";
export { type ConvertOptions, type ConvertOutType, type ConvertResult, convertPeftAdapter, peftToGguf } from "./convert.ts";
export { type PeftLoraConfig, parsePeftConfig } from "./peft-config.ts";
export { permuteRopeRows, unpermuteRopeRows } from "./rope-permute.ts";
