// LoraAdapter: a LoRA adapter loaded for one model, to be set on any number of its contexts.
import { HostMemory, type NativeLibrary, NativeResource, type Pointer, defineSymbols, nativeView, openLibrary } from "../ffi/index.ts";
import { openGguf, parseGguf } from "../formats/index.ts";
import { LlamaError } from "./errors.ts";
import { Lifetime } from "./lifetime.ts";
import type { LlamaModel } from "./model.ts";
import { readMetadata } from "./strings.ts";

let nextId = 1;

const libcStreams = defineSymbols({
  // <stdio.h> FILE *fmemopen(void *buf, size_t size, const char *mode);
  fmemopen: { parameters: ["ptr", "usize", "cstring"], result: "ptr" },
  // <stdio.h> int fclose(FILE *stream);
  fclose: { parameters: ["ptr"], result: "i32" },
});
let libc: NativeLibrary<typeof libcStreams> | undefined;

/**
 * A LoRA adapter loaded with `llama_adapter_lora_init`. Its weights live next to the model's,
 * so it keeps the model alive natively; a context that has it set keeps it alive in turn. In
 * llama.cpp 0.5.0, `llama_adapter_lora_free` really frees (it was a no-op in some releases), so
 * disposing an adapter returns its memory once no context uses it any more.
 */
export class LoraAdapter extends NativeResource {
  /** @internal The `llama_adapter_lora *`. */
  readonly ptr: Pointer;
  /** @internal Contexts that have the adapter set retain it. */
  readonly lifetime: Lifetime;
  /** Identifies the adapter in a context's adapter set. */
  readonly id = nextId++;
  readonly model: LlamaModel;
  readonly path: string;
  /** The rank of the first adapted weight (B's inner dimension). */
  readonly rank: number;
  /** Every GGUF metadata scalar of the adapter file, as strings. */
  readonly metadata: ReadonlyMap<string, string>;
  /**
   * aLoRA: the tokens that switch the adapter on (`adapter.alora.invocation_tokens`); empty for a
   * plain LoRA. libllama only reports them: a context applies the adapter to every token, as it
   * does a plain LoRA's. Leaving the prefix before them unadapted is the caller's scheduling.
   */
  readonly invocationTokens: Int32Array;

  private constructor(model: LlamaModel, ptr: Pointer, path: string, rank: number) {
    const { symbols } = model.llama.lib;
    const lifetime = Lifetime.dependent(`LoRA adapter ${path}`, model.lifetime, () => symbols.llama_adapter_lora_free(ptr));
    super("LoraAdapter", () => lifetime.release());
    this.ptr = ptr;
    this.lifetime = lifetime;
    this.model = model;
    this.path = path;
    this.rank = rank;
    this.metadata = readMetadata(
      symbols.llama_adapter_meta_count(ptr),
      (i, b, n) => symbols.llama_adapter_meta_key_by_index(ptr, i, b, n),
      (i, b, n) => symbols.llama_adapter_meta_val_str_by_index(ptr, i, b, n),
    );
    const count = Number(symbols.llama_adapter_get_alora_n_invocation_tokens(ptr));
    this.invocationTokens = count === 0
      ? new Int32Array(0)
      : new Int32Array(nativeView(symbols.llama_adapter_get_alora_invocation_tokens(ptr), count * 4).slice(0));
  }

  /** Loads a GGUF LoRA adapter made for `model` (its tensor names and shapes must match). */
  static async load(model: LlamaModel, path: string): Promise<LoraAdapter> {
    if (model.disposed) throw new LlamaError("ERR_LLAMA_ADAPTER_LOAD", `cannot load ${path}: the model was disposed`);
    // llama.cpp does not expose the rank; the file's tensor shapes tell it.
    let rank: number;
    try {
      const file = await openGguf(path);
      rank = file.tensors.find((t) => t.name.endsWith(".lora_b"))?.shape[0] ?? 0;
      await file.close();
    } catch (error) {
      throw new LlamaError("ERR_LLAMA_ADAPTER_LOAD", `cannot read the LoRA adapter ${path}: ${(error as Error).message}`, { cause: error });
    }
    const ptr = model.llama.lib.symbols.llama_adapter_lora_init(model.ptr, path);
    if (ptr === 0) {
      throw new LlamaError("ERR_LLAMA_ADAPTER_LOAD", `llama.cpp refused the LoRA adapter ${path} for ${model.path} (wrong base model? Llama.load({ log: "stderr" }) shows why)`);
    }
    return new LoraAdapter(model, ptr, path, rank);
  }

  /**
   * Loads a GGUF LoRA adapter from its bytes in memory (a trained or converted adapter, no file):
   * llama.cpp reads it through `llama_adapter_lora_init_from_file_ptr` from a libc `fmemopen`
   * stream over a copy of the bytes in C memory. llama.cpp copies every tensor into the adapter's
   * own buffers before it returns, so the stream and the copy are released at once. `name` stands
   * in for the path in `path` and in errors.
   */
  static fromBytes(model: LlamaModel, bytes: Uint8Array, options: { readonly name?: string } = {}): LoraAdapter {
    const name = options.name ?? `(${bytes.length} bytes in memory)`;
    if (model.disposed) throw new LlamaError("ERR_LLAMA_ADAPTER_LOAD", `cannot load ${name}: the model was disposed`);
    let rank: number;
    try {
      rank = parseGguf(bytes).tensors.find((t) => t.name.endsWith(".lora_b"))?.shape[0] ?? 0;
    } catch (error) {
      throw new LlamaError("ERR_LLAMA_ADAPTER_LOAD", `cannot read the LoRA adapter ${name}: ${(error as Error).message}`, { cause: error });
    }
    libc ??= openLibrary("libc", "libc.so.6", libcStreams);
    using memory = HostMemory.from(bytes);
    // "b" means nothing to glibc; without "+" the stream cannot write into the buffer.
    const stream = libc.symbols.fmemopen(memory.ptr, bytes.length, "rb");
    if (stream === 0) throw new LlamaError("ERR_LLAMA_ADAPTER_LOAD", `fmemopen refused a stream over the ${bytes.length} bytes of ${name}`);
    let ptr: Pointer;
    try {
      ptr = model.llama.lib.symbols.llama_adapter_lora_init_from_file_ptr(model.ptr, stream);
    } finally {
      libc.symbols.fclose(stream);
    }
    if (ptr === 0) {
      throw new LlamaError("ERR_LLAMA_ADAPTER_LOAD", `llama.cpp refused the LoRA adapter ${name} for ${model.path} (wrong base model? Llama.load({ log: "stderr" }) shows why)`);
    }
    return new LoraAdapter(model, ptr, name, rank);
  }

  /** `adapter.lora.alpha`; llama.cpp scales the adapter by scale·alpha/rank (by scale alone when alpha is 0). */
  get alpha(): number {
    return Number(this.metadata.get("adapter.lora.alpha") ?? 0);
  }

  /** The base model the adapter was trained on, when the file names it. */
  get baseModel(): string | undefined {
    return this.metadata.get("general.base_model.0.name") ?? this.metadata.get("general.base_model.0.repo_url");
  }

  /** The architecture the adapter applies to (`general.architecture`). */
  get architecture(): string | undefined {
    return this.metadata.get("general.architecture");
  }
}
