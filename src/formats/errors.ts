// Typed errors of the model-file layer. Readers report *where* a file went wrong (the field
// and its byte offset) so a corrupt download can be diagnosed without a hex editor.
import { GpuffiError } from "../ffi/errors.ts";

/** A file is not valid in its format. `offset` is the byte offset of the offending field. */
export class FormatError extends GpuffiError {
  override name = "FormatError";
  constructor(
    code: string,
    readonly format: string,
    readonly field: string,
    readonly offset: number,
    detail: string,
  ) {
    super(code, `invalid ${format} file: ${field} at byte ${offset}: ${detail}`);
  }
}

/** A GGUF file broke the format's rules (or gpuffi's safety limits). */
export class GgufFormatError extends FormatError {
  override name = "GgufFormatError";
  constructor(field: string, offset: number, detail: string) {
    super("ERR_GGUF_FORMAT", "GGUF", field, offset, detail);
  }
}

/** A safetensors file broke the format's rules. */
export class SafetensorsFormatError extends FormatError {
  override name = "SafetensorsFormatError";
  constructor(field: string, offset: number, detail: string) {
    super("ERR_SAFETENSORS_FORMAT", "safetensors", field, offset, detail);
  }
}

/** What a writer was asked to write cannot be represented in the format. */
export class FormatWriteError extends GpuffiError {
  override name = "FormatWriteError";
  constructor(
    readonly format: string,
    readonly field: string,
    detail: string,
  ) {
    super("ERR_FORMAT_WRITE", `cannot write ${format}: ${field}: ${detail}`);
  }
}

/** A tensor was asked for by a name the file does not contain. */
export class TensorNotFoundError extends GpuffiError {
  override name = "TensorNotFoundError";
  constructor(readonly tensor: string) {
    super("ERR_TENSOR_NOT_FOUND", `no tensor named "${tensor}" in the file`);
  }
}

/** An option passed to a generator is out of range or inconsistent with the others. */
export class InvalidOptionError extends GpuffiError {
  override name = "InvalidOptionError";
  constructor(
    readonly option: string,
    detail: string,
  ) {
    super("ERR_INVALID_OPTION", `${option}: ${detail}`);
  }
}

/** An operation was asked for a ggml type it does not handle; the message lists those it does. */
export class UnsupportedGgmlTypeError extends GpuffiError {
  override name = "UnsupportedGgmlTypeError";
  constructor(readonly typeName: string, detail: string) {
    super("ERR_GGML_TYPE_UNSUPPORTED", `ggml type ${typeName}: ${detail}`);
  }
}
