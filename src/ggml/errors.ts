// The typed errors of the ggml layer. ggml reports most misuse with GGML_ASSERT, which aborts the
// process: everything JS can check (shapes, types, capacity, allocation) is checked here first
// and reported with one of these instead.
import { GpuffiError } from "../ffi/index.ts";

/** A ggml call failed or was refused; `code` says which (ERR_GGML_*). */
export class GgmlError extends GpuffiError {
  override name = "GgmlError";
}

/** Operands whose shapes or types the op cannot take; the message names the op and the shapes. */
export class GgmlShapeError extends GgmlError {
  override name = "GgmlShapeError";
  constructor(op: string, message: string) {
    super("ERR_GGML_SHAPE", `${op}: ${message}`);
  }
}
