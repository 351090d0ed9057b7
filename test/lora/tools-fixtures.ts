// Shared by the LoRA tool tests (convert, merge): logits through llama.cpp with adapters, the
// comparison bound, a temporary directory, a GGUF's tensors and the CLI run in-process.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openGguf } from "../../src/formats/index.ts";
import { LlamaContext, LlamaModel, LoraAdapter } from "../../src/llama/index.ts";
import { main } from "../../src/cli/main.ts";

const prompt = "the cat sat on the mat";
// f32 KV cache and no flash attention, as test/llama/numerics.ts explains: anything in f16 would
// hide last-bit differences between merged and adapted models behind ≈2e-4 of rounding.
const contextOptions = { contextSize: 64, threads: 2, cacheType: "f32", flashAttention: false } as const;

/** Logits of every prompt position of `modelPath` run on the CPU with `adapters` applied. */
export async function promptLogits(modelPath: string, adapters: readonly { path: string; scale: number }[] = []): Promise<Float32Array> {
  const model = await LlamaModel.load(modelPath, { gpuLayers: 0 });
  const loaded: LoraAdapter[] = [];
  const context = LlamaContext.create(model, contextOptions);
  try {
    for (const { path } of adapters) loaded.push(await LoraAdapter.load(model, path));
    context.setAdapters(loaded.map((adapter, i) => ({ adapter, scale: adapters[i]!.scale })));
    const tokens = model.tokenize(prompt);
    context.evaluate(tokens, { allLogits: true });
    const vocab = model.shape.vocab;
    const all = new Float32Array(tokens.length * vocab);
    for (let i = 0; i < tokens.length; i++) all.set(context.logits(i), i * vocab);
    return all;
  } finally {
    context.dispose();
    for (const adapter of loaded) adapter.dispose();
    model.dispose();
  }
}

export function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

/** Asserts |actual − expected| ≤ 1e-4 everywhere (the tiny model's logits are of order 1). */
export function assertLogitsClose(actual: Float32Array, expected: Float32Array, what: string): void {
  const worst = maxAbsDifference(actual, expected);
  assert.ok(worst <= 1e-4, `${what}: max |Δ| ${worst} exceeds 1e-4`);
}

export async function inTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "gpuffi-lora-tools-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true });
  }
}

/** Every tensor of a GGUF file: type, shape and bytes by name. */
export async function tensorsOf(path: string): Promise<Map<string, { type: number; shape: readonly number[]; data: Uint8Array }>> {
  await using file = await openGguf(path);
  const out = new Map<string, { type: number; shape: readonly number[]; data: Uint8Array }>();
  for (const t of file.tensors) out.set(t.name, { type: t.type, shape: t.shape, data: await file.readTensor(t.name) });
  return out;
}

export async function runCli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, { out: (t) => (out += `${t}\n`), err: (t) => (err += `${t}\n`) });
  return { code, out, err };
}
