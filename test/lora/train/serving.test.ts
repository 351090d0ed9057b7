// From training to serving: `gpuffi lora train` on a text file writes an adapter that llama.cpp
// loads, and the trained adapter (from the file, or handed over in memory) gives llama.cpp the
// logits of the float64 reference with the trained A and B.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "../../harness.ts";
import { encodeGguf, makeTinyModel } from "../../../src/formats/index.ts";
import { LlamaContext, LlamaModel, LoraAdapter } from "../../../src/llama/index.ts";
import { Dataset, LoraTrainer, readLoraGguf } from "../../../src/lora/index.ts";
import { llamaUnavailable } from "../../llama/fixtures.ts";
import { inTempDir, runCli } from "../tools-fixtures.ts";
import { referenceLogits, referenceModel } from "./reference.ts";

const spec = makeTinyModel({ seed: 9, layers: 2, embd: 32, heads: 4, kvHeads: 2, ff: 48, vocab: 320, ctx: 64 });

test("gpuffi lora train: a text file in, an adapter llama.cpp loads out, one JSON line per step", async () => {
  await inTempDir(async (dir) => {
    const base = join(dir, "base.gguf");
    const data = join(dir, "text.txt");
    const out = join(dir, "adapter.gguf");
    await writeFile(base, encodeGguf(spec));
    await writeFile(data, "the cat sat on the mat. ".repeat(40));
    const { code, out: stdout, err } = await runCli("lora", "train", "--base", base, "--data", data, "--out", out, "--ctx", "16", "--steps", "4", "--rank", "2", "--lr", "1e-2", "--threads", "1", "--json");
    assert.equal(code, 0, err);
    const steps = stdout.trim().split("\n").map((line) => JSON.parse(line) as { step: number; loss: number });
    assert.deepEqual(steps.map((s) => s.step), [1, 2, 3, 4]);
    assert.ok(steps.every((s) => Number.isFinite(s.loss) && s.loss > 0));
    const weights = await readLoraGguf(out);
    assert.equal(weights.rank, 2);
    assert.equal(weights.pairs.length, 2 * 7);
    const model = await LlamaModel.load(base, { gpuLayers: 0 });
    try {
      using adapter = await LoraAdapter.load(model, out);
      assert.ok(adapter);
    } finally {
      model.dispose();
    }
    const usage = await runCli("lora", "train", "--base", base, "--data", data);
    assert.equal(usage.code, 2);
    assert.match(usage.err, /--out is required/);
  });
}, { skip: llamaUnavailable, timeout: 60_000 });

test("a trained adapter, from its file or in memory, gives llama.cpp the reference's logits (1e-4)", async () => {
  await inTempDir(async (dir) => {
    const base = join(dir, "base.gguf");
    await writeFile(base, encodeGguf(spec));
    const tokens = Int32Array.from({ length: 17 }, (_, i) => (i * 37 + 5) % 320);
    using trainer = await LoraTrainer.create({ base, data: Dataset.fromSequences([{ tokens, counted: new Uint8Array(16).fill(1), source: "t" }], 16), ctx: 16, rank: 3, lr: 5e-2, steps: 5, threads: 1 });
    for await (const _ of trainer.run()) { /* train */ }
    const weights = trainer.weights();
    assert.ok(weights.pairs.some((p) => p.b.some((v) => v !== 0)), "training moved B off zero");
    const file = join(dir, "trained.gguf");
    await trainer.save(file);
    const reference = referenceLogits(referenceModel(spec), {
      rank: weights.rank,
      alpha: weights.alpha,
      pairs: new Map(weights.pairs.map((p) => [p.weight, { a: Float64Array.from(p.a), b: Float64Array.from(p.b) }])),
    }, tokens);
    const model = await LlamaModel.load(base, { gpuLayers: 0 });
    try {
      for (const adapter of [await LoraAdapter.load(model, file), trainer.toAdapter(model)]) {
        const context = LlamaContext.create(model, { contextSize: 64, threads: 1, cacheType: "f32", flashAttention: false });
        context.setAdapters([{ adapter, scale: 1 }]);
        context.evaluate(tokens, { allLogits: true });
        let diff = 0;
        let ref = 0;
        reference.forEach((row, i) => {
          const got = context.logits(i);
          row.forEach((e, j) => {
            diff += (got[j]! - e) ** 2;
            ref += e * e;
          });
        });
        assert.ok(Math.sqrt(diff / ref) < 1e-4, `relative logit error ${Math.sqrt(diff / ref)}`);
        context.dispose();
        adapter.dispose();
      }
    } finally {
      model.dispose();
    }
  });
}, { skip: llamaUnavailable, timeout: 60_000 });
