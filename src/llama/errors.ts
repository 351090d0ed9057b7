// The errors of the llama.cpp layer. llama.cpp reports most failures only as a NULL or a
// negative number and a line in its log, so each error names the call and what was asked.
import { GpuffiError } from "../ffi/index.ts";

/** A llama.cpp call failed; `code` tells which kind of operation. */
export class LlamaError extends GpuffiError {
  override name = "LlamaError";
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/**
 * The libllama found is not the version these bindings were written for. Its structs may be laid
 * out differently, and passing them would corrupt memory instead of failing cleanly.
 */
export class LlamaVersionError extends LlamaError {
  override name = "LlamaVersionError";
  constructor(
    readonly path: string,
    readonly expected: { readonly llama: string; readonly ggml: string },
    readonly found: { readonly llama: string; readonly ggml: string },
  ) {
    super(
      "ERR_LLAMA_VERSION",
      `${path} is llama.cpp ${found.llama} (ggml ${found.ggml}), but gpuffi's bindings are for llama.cpp ${expected.llama} ` +
        `(ggml ${expected.ggml}); their struct layouts may differ. Use a matching build (scripts/build-llama.sh), or pass ` +
        `allowVersionMismatch: true / set GPUFFI_LLAMA_ALLOW_MISMATCH=1 to load it anyway at your own risk.`,
    );
  }
}
