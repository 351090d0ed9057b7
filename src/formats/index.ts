// gpuffi's model-file layer: GGUF and safetensors in pure TypeScript, fp16/bf16 conversions and
// tiny test-model generators. No FFI: usable anywhere, and by the cuda, ggml, llama and lora layers.
export * from "./errors.ts";
export * from "./half.ts";
export type { ByteInput } from "./byte-source.ts";
export { GgmlType, type GgmlTypeInfo, type GgmlTypeName, ggmlTypes, ggmlTypeInfo, ggmlTypeByName, ggmlTensorBytes } from "./gguf/ggml-types.ts";
export { dequantize, dequantizableTypes } from "./gguf/dequantize.ts";
export * from "./gguf/values.ts";
export { GgufFile, type GgufHeader, type GgufReadOptions, type GgufTensorInfo, GGUF_DEFAULT_ALIGNMENT, openGguf, parseGguf } from "./gguf/reader.ts";
export { type GgufSpec, type GgufTensorSpec, encodeGguf, writeGgufFile } from "./gguf/writer.ts";
export { type SafetensorsDtype, safetensorsDtypeSizes } from "./safetensors/dtypes.ts";
export { SAFETENSORS_MAX_HEADER_BYTES, SafetensorsFile, type SafetensorsHeader, type SafetensorsTensorInfo, openSafetensors, parseSafetensors } from "./safetensors/reader.ts";
export { type SafetensorsSpec, type SafetensorsTensorSpec, encodeSafetensors, writeSafetensorsFile } from "./safetensors/writer.ts";
export { type TinyModelOptions, makeTinyModel, tinyModelDefaults } from "./tiny/model.ts";
export { type LoraTarget, type TinyLoraOptions, loraTargets, makeTinyLora } from "./tiny/lora.ts";
export { type Random, seededRandom, uniformValues } from "./tiny/random.ts";
