// LoraAdapter.fromBytes: an adapter handed to llama.cpp as bytes through a libc fmemopen stream
// must be the very adapter that LoraAdapter.load reads from a file: same logits bit for bit,
// same metadata, and the same refusals.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "../harness.ts";
import { encodeGguf, makeTinyLora, makeTinyModel, parseGguf } from "../../src/formats/index.ts";
import { LlamaContext, LlamaError, LlamaModel, LoraAdapter } from "../../src/llama/index.ts";
import { llamaUnavailable, tinyLora, tinyModel } from "./fixtures.ts";
import { contextOptions, promptLogits } from "./numerics.ts";

const skip = llamaUnavailable;

async function withModel(body: (model: LlamaModel, context: LlamaContext) => Promise<void> | void): Promise<void> {
  const model = await LlamaModel.load(tinyModel().path, { gpuLayers: 0 });
  const context = LlamaContext.create(model, contextOptions);
  try {
    await body(model, context);
  } finally {
    context.dispose();
    model.dispose();
  }
}

const bits = (values: Float32Array) => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

test("LoraAdapter.fromBytes: the same logits, bit for bit, as the same adapter loaded from its file", () => withModel(async (model, context) => {
  const fixture = tinyLora("bytes", { rank: 4, alpha: 8, seed: 21 });
  const bytes = new Uint8Array(readFileSync(fixture.path));
  using fromFile = await LoraAdapter.load(model, fixture.path);
  using fromBytes = LoraAdapter.fromBytes(model, bytes, { name: "trained in memory" });
  const base = promptLogits(context);
  context.setAdapters([{ adapter: fromFile, scale: 0.8 }]);
  const expected = promptLogits(context);
  context.setAdapters([{ adapter: fromBytes, scale: 0.8 }]);
  const actual = promptLogits(context);
  assert.deepEqual(bits(actual), bits(expected));
  assert.notDeepEqual(bits(actual), bits(base), "the adapter changes the logits");
  assert.equal(fromBytes.path, "trained in memory");
  assert.equal(fromBytes.rank, 4);
  assert.equal(fromBytes.alpha, 8);
  assert.equal(fromBytes.architecture, "llama");
  assert.deepEqual([...fromBytes.metadata], [...fromFile.metadata]);
  // The bytes were copied: changing them afterwards changes nothing.
  bytes.fill(0);
  context.setAdapters([]);
  context.setAdapters([{ adapter: fromBytes, scale: 0.8 }]);
  assert.deepEqual(bits(promptLogits(context)), bits(expected));
}), { skip });

test("LoraAdapter.fromBytes: a subarray at an odd offset, aLoRA tokens, and repeated loads", () => withModel(async (model, context) => {
  const spec = makeTinyLora(parseGguf(encodeGguf(tinyModel().spec)), { rank: 2, alpha: 3, seed: 5, targets: ["q", "down"], invocationTokens: [3, 7] });
  const encoded = encodeGguf(spec);
  const padded = new Uint8Array(encoded.length + 3);
  padded.set(encoded, 3);
  using first = LoraAdapter.fromBytes(model, padded.subarray(3));
  assert.deepEqual([...first.invocationTokens], [3, 7]);
  context.setAdapters([{ adapter: first }]);
  const expected = promptLogits(context);
  context.setAdapters([]);
  // Every load opens, reads and closes its own stream over its own copy: reloads agree.
  for (let i = 0; i < 5; i++) {
    using again = LoraAdapter.fromBytes(model, encoded);
    context.setAdapters([{ adapter: again }]);
    assert.deepEqual(bits(promptLogits(context)), bits(expected));
    context.setAdapters([]);
  }
}), { skip });

test("LoraAdapter.fromBytes: bytes that are no GGUF, an adapter of another base, and a disposed model are refused", async () => {
  await withModel((model) => {
    assert.throws(() => LoraAdapter.fromBytes(model, new Uint8Array(0)), (e) => e instanceof LlamaError && e.code === "ERR_LLAMA_ADAPTER_LOAD" && /cannot read the LoRA adapter/.test(e.message));
    assert.throws(() => LoraAdapter.fromBytes(model, new TextEncoder().encode("GGUF and then nothing useful")), (e) => e instanceof LlamaError && /cannot read/.test(e.message));
    // A base with another feed-forward width: llama.cpp checks every shape and returns NULL.
    const other = parseGguf(encodeGguf(makeTinyModel({ seed: 7, ff: 96 })));
    const wrong = encodeGguf(makeTinyLora(other, { rank: 2, alpha: 2 }));
    assert.throws(() => LoraAdapter.fromBytes(model, wrong, { name: "wrong-base" }), (e) => e instanceof LlamaError && /refused the LoRA adapter wrong-base/.test(e.message));
  });
  const model = await LlamaModel.load(tinyModel().path, { gpuLayers: 0 });
  model.dispose();
  assert.throws(() => LoraAdapter.fromBytes(model, encodeGguf(tinyLora("bytes", { rank: 4, alpha: 8, seed: 21 }).spec)), (e) => e instanceof LlamaError && /disposed/.test(e.message));
}, { skip });
