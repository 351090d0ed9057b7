// The numerical LoRA checks, registered once for the CPU and once with every layer offloaded.
import assert from "node:assert/strict";
import { test } from "../harness.ts";
import { LlamaContext, LlamaModel, LoraAdapter, type ModelLoadOptions } from "../../src/llama/index.ts";
import { tinyLora, tinyModel, writeFixture } from "./fixtures.ts";
import { type MergedAdapter, mergeLora } from "./lora-reference.ts";

const prompt = "the cat sat on the mat";
// f32 end to end: flash attention and an f16 KV cache round Q·K and K/V to f16 on the CPU, which
// turns last-bit differences between the merged and the adapted model into ≈2e-4 relative and
// would hide what the comparison is about.
export const contextOptions = { contextSize: 64, threads: 2, cacheType: "f32", flashAttention: false } as const;
const loraA = { rank: 4, alpha: 8, seed: 11 };
const loraB = { rank: 2, alpha: 3, seed: 12 };

/** Logits of every prompt position, concatenated. */
export function promptLogits(context: LlamaContext): Float32Array {
  const tokens = context.model.tokenize(prompt);
  context.clearMemory();
  context.evaluate(tokens, { allLogits: true });
  const vocab = context.model.shape.vocab;
  const all = new Float32Array(tokens.length * vocab);
  for (let i = 0; i < tokens.length; i++) all.set(context.logits(i), i * vocab);
  return all;
}

function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

const maxAbs = (values: Float32Array) => values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

export function assertClose(actual: Float32Array, expected: Float32Array, bound: number, what: string): void {
  const worst = maxAbsDifference(actual, expected);
  assert.ok(worst <= bound, `${what}: max |Δ| ${worst} exceeds ${bound} (max |logit| ${maxAbs(expected)})`);
}

function assertIdentical(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.deepEqual(new Uint8Array(actual.buffer), new Uint8Array(expected.buffer), `${what}: not bit-for-bit identical`);
}

/** The prompt's logits from the model at `path`, loaded with `options`, in a fresh context. */
export async function modelLogits(path: string, options: ModelLoadOptions): Promise<Float32Array> {
  const model = await LlamaModel.load(path, options);
  const context = LlamaContext.create(model, contextOptions);
  try {
    return promptLogits(context);
  } finally {
    context.dispose();
    model.dispose();
  }
}

/** Logits of a model merged offline with `adapters`. */
function mergedLogits(name: string, adapters: MergedAdapter[], gpuLayers: number | "all"): Promise<Float32Array> {
  return modelLogits(writeFixture(`merged-${name}.gguf`, mergeLora(tinyModel().spec, adapters)), { gpuLayers });
}

export function registerLoraNumerics(label: string, gpuLayers: number | "all", skip: string | undefined): void {
  /**
   * How far the adapted model may be from the merged one: 1e-4 of the largest logit. On the GPU
   * the CUDA kernels round differently (the first H100 run found adapted and merged models
   * 2.2e-3 × max |logit| apart), so there the bound is twice the GPU's own distance to the CPU
   * for the very model being compared, and that distance must be small against what the adapter
   * changes, or the comparison would prove nothing.
   */
  const bound = async (name: string, adapters: MergedAdapter[], merged: Float32Array, base: Float32Array): Promise<number> => {
    const relative = 1e-4 * maxAbs(merged);
    if (gpuLayers === 0) return relative;
    const noise = maxAbsDifference(merged, await mergedLogits(`${name}-cpu`, adapters, 0));
    const effect = maxAbsDifference(merged, base);
    assert.ok(noise < 0.05 * effect, `GPU rounding (${noise}) must be small against the adapter's effect (${effect})`);
    return Math.max(relative, 2 * noise);
  };
  const withModel = (name: string, body: (model: LlamaModel, context: LlamaContext, a: LoraAdapter, b: LoraAdapter) => Promise<void>) =>
    test(`${label}: ${name}`, async () => {
      const model = await LlamaModel.load(tinyModel().path, { gpuLayers });
      const context = LlamaContext.create(model, contextOptions);
      const a = await LoraAdapter.load(model, tinyLora("a", loraA).path);
      const b = await LoraAdapter.load(model, tinyLora("b", loraB).path);
      try {
        await body(model, context, a, b);
      } finally {
        context.dispose();
        a.dispose();
        b.dispose();
        model.dispose();
      }
    }, { skip, timeout: 60_000 });

  withModel("scale 0 reproduces the base logits exactly", async (model, context, a) => {
    const base = promptLogits(context);
    context.setAdapters([{ adapter: a, scale: 0 }]);
    assertIdentical(promptLogits(context), base, "scale 0");
    const fresh = LlamaContext.create(model, contextOptions);
    try {
      assertIdentical(promptLogits(fresh), base, "a context that never had an adapter");
    } finally {
      fresh.dispose();
    }
  });

  withModel("an adapter at scale s matches the merged model W + s·(alpha/r)·B·A within 1e-4", async (_model, context, a) => {
    const base = promptLogits(context);
    for (const scale of [1, 0.5]) {
      context.setAdapters([{ adapter: a, scale }]);
      const adapters = [{ spec: tinyLora("a", loraA).spec, alpha: loraA.alpha, scale }];
      const expected = await mergedLogits(`a-${scale}`, adapters, gpuLayers);
      assertClose(promptLogits(context), expected, await bound(`a-${scale}`, adapters, expected, base), `adapter A at scale ${scale}`);
    }
    // The adapter changes the output, so the comparison above is not vacuous.
    context.setAdapters([{ adapter: a, scale: 1 }]);
    assert.ok(promptLogits(context).some((v, i) => Math.abs(v - base[i]!) > 1e-2), "adapter A should change the logits");
  });

  withModel("two adapters at once match the model with both merged", async (_model, context, a, b) => {
    const base = promptLogits(context);
    context.setAdapters([{ adapter: a, scale: 0.7 }, { adapter: b, scale: 1.3 }]);
    const adapters = [
      { spec: tinyLora("a", loraA).spec, alpha: loraA.alpha, scale: 0.7 },
      { spec: tinyLora("b", loraB).spec, alpha: loraB.alpha, scale: 1.3 },
    ];
    const expected = await mergedLogits("a-b", adapters, gpuLayers);
    assertClose(promptLogits(context), expected, await bound("a-b", adapters, expected, base), "adapters A and B");
  });

  withModel("hot swap A → B → A gives A's logits again bit-for-bit", async (_model, context, a, b) => {
    assert.equal(context.setAdapters([{ adapter: a }]), true);
    const first = promptLogits(context);
    assert.equal(context.setAdapters([{ adapter: b }]), true);
    const withB = promptLogits(context);
    assert.equal(context.setAdapters([{ adapter: a }]), true);
    assertIdentical(promptLogits(context), first, "A after B");
    assert.ok(withB.some((v, i) => v !== first[i]), "B should differ from A");
    assert.equal(context.setAdapters([{ adapter: a, scale: 1 }]), false, "the same set again is no change");
  });

  withModel("several contexts share one model with different adapters", async (model, context, a, b) => {
    const other = LlamaContext.create(model, contextOptions);
    try {
      context.setAdapters([{ adapter: a }]);
      other.setAdapters([{ adapter: b }]);
      const [logitsA, logitsB] = [promptLogits(context), promptLogits(other)];
      context.setAdapters([{ adapter: b }]);
      assertIdentical(promptLogits(context), logitsB, "B on the first context");
      other.setAdapters([{ adapter: a }]);
      assertIdentical(promptLogits(other), logitsA, "A on the second context");
    } finally {
      other.dispose();
    }
  });
}
