// Tiny models and adapters for the llama.cpp tests, made with the formats layer's generators
// and written once per process to a temporary directory.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type GgufSpec, type TinyLoraOptions, encodeGguf, makeTinyLora, makeTinyModel, parseGguf } from "../../src/formats/index.ts";
import { LibraryNotFoundError } from "../../src/ffi/index.ts";
import { Llama, LlamaModel } from "../../src/llama/index.ts";

let dir: string | undefined;
function write(name: string, spec: GgufSpec): string {
  dir ??= mkdtempSync(join(tmpdir(), "gpuffi-lora-"));
  const path = join(dir, name);
  writeFileSync(path, encodeGguf(spec));
  return path;
}

/** Why the llama.cpp tests cannot run here, or `undefined` when libllama loads. */
export const llamaUnavailable: string | undefined = (() => {
  try {
    Llama.shared();
    return undefined;
  } catch (error) {
    const reason = error instanceof LibraryNotFoundError ? error.attempts.map((a) => `${a.path}: ${a.rejected}`).join("; ") : (error as Error).message;
    return `libllama not found (install @node-llama-cpp/linux-x64 or set GPUFFI_LLAMA_DIR): ${reason}`;
  }
})();

/**
 * GPU tests run only against a CUDA build (GPUFFI_LLAMA_DIR pointing at one). Not
 * `supportsGpuOffload`: llama.cpp answers true for any build with the RPC backend.
 */
export const gpuUnavailable: string | undefined =
  llamaUnavailable ?? (Llama.shared().devices().some((d) => d.type === "gpu") ? undefined : "no CUDA build of libllama: set GPUFFI_LLAMA_DIR");

export interface TinyFixture {
  readonly spec: GgufSpec;
  readonly path: string;
}

const cache = new Map<string, TinyFixture>();
function cached(key: string, make: () => GgufSpec): TinyFixture {
  let fixture = cache.get(key);
  if (fixture === undefined) {
    const spec = make();
    fixture = { spec, path: write(`${key}.gguf`, spec) };
    cache.set(key, fixture);
  }
  return fixture;
}

/** The f32 tiny llama (2 layers, n_embd 64): exact enough on CPU for 1e-4 comparisons. */
export function tinyModel(): TinyFixture {
  return cached("model", () => makeTinyModel({ seed: 7 }));
}

/** Runs `body` with {@link tinyModel} loaded on the CPU, and disposes the model afterwards. */
export async function withTinyModel<T>(body: (model: LlamaModel) => Promise<T>): Promise<T> {
  const model = await LlamaModel.load(tinyModel().path);
  try {
    return await body(model);
  } finally {
    model.dispose();
  }
}

/** A LoRA adapter for {@link tinyModel}. */
export function tinyLora(name: string, options: TinyLoraOptions): TinyFixture {
  return cached(`lora-${name}`, () => makeTinyLora(parseGguf(encodeGguf(tinyModel().spec)), options));
}

/** Writes any other GGUF (e.g. a merged model) next to the fixtures. */
export function writeFixture(name: string, spec: GgufSpec): string {
  return write(name, spec);
}
