// aLoRA adapters (adapter.alora.invocation_tokens): the tokens are read back as written, and
// libllama 0.5.0 applies such an adapter to every token of the context like a plain LoRA (the
// split at the invocation tokens is llama-server's scheduling, not libllama's).
import assert from "node:assert/strict";
import { test } from "../harness.ts";
import { encodeGguf, parseGguf } from "../../src/formats/index.ts";
import { LlamaContext, LlamaError, type LlamaModel, LoraAdapter } from "../../src/llama/index.ts";
import { llamaUnavailable, tinyLora, withTinyModel, writeFixture } from "./fixtures.ts";

const skip = llamaUnavailable;
const contextOptions = { contextSize: 64, threads: 1, cacheType: "f32", flashAttention: false } as const;
const adapterShape = { rank: 4, alpha: 8 };

const randomTokens = (model: LlamaModel, count: number) => Array.from({ length: count }, () => Math.floor(Math.random() * model.shape.vocab));

/** An adapter file with fresh random weights, as an aLoRA (with `invocationTokens`) or a plain LoRA of the very same weights. */
function adapterFiles(seed: number, invocationTokens: readonly number[]): { alora: string; plain: string } {
  return {
    alora: tinyLora(`alora-${seed}`, { ...adapterShape, seed, invocationTokens }).path,
    plain: tinyLora(`alora-plain-${seed}`, { ...adapterShape, seed }).path,
  };
}

/** Logits of every position of `tokens`, as bytes. */
function logitBytes(context: LlamaContext, tokens: readonly number[]): Uint8Array {
  context.clearMemory();
  context.evaluate(tokens, { allLogits: true });
  return new Uint8Array(Float32Array.from(tokens.flatMap((_, i) => Array.from(context.logits(i)))).buffer);
}

test("aLoRA: the invocation tokens are read back exactly; a plain LoRA has none", () => withTinyModel(async (model) => {
  const invocation = randomTokens(model, 1 + Math.floor(Math.random() * 6));
  const files = adapterFiles(Math.floor(Math.random() * 2 ** 31), invocation);
  const alora = await LoraAdapter.load(model, files.alora);
  const plain = await LoraAdapter.load(model, files.plain);
  try {
    assert.deepEqual(Array.from(alora.invocationTokens), invocation);
    assert.equal(plain.invocationTokens.length, 0);
    assert.equal(alora.alpha, adapterShape.alpha);
    assert.equal(alora.rank, adapterShape.rank);
    // llama.cpp keeps the adapter's scalar metadata only; the token array is reached through invocationTokens.
    assert.equal(alora.metadata.has("adapter.alora.invocation_tokens"), false);
    assert.equal(alora.metadata.get("adapter.type"), "lora");
  } finally {
    alora.dispose();
    plain.dispose();
  }
}), { skip });

test("aLoRA: libllama applies the adapter to the whole context, before and after the invocation tokens, as a plain LoRA", () => withTinyModel(async (model) => {
  const invocation = randomTokens(model, 3);
  const files = adapterFiles(Math.floor(Math.random() * 2 ** 31), invocation);
  const alora = await LoraAdapter.load(model, files.alora);
  const plain = await LoraAdapter.load(model, files.plain);
  const context = LlamaContext.create(model, contextOptions);
  try {
    // A prompt with the invocation tokens in the middle: positions before them are adapted too.
    const prompt = [model.specialTokens.bos, ...randomTokens(model, 5), ...invocation, ...randomTokens(model, 4)];
    const baseLogits = logitBytes(context, prompt);
    context.setAdapters([{ adapter: alora }]);
    const withAlora = logitBytes(context, prompt);
    context.setAdapters([{ adapter: plain }]);
    assert.deepEqual(logitBytes(context, prompt), withAlora);
    // The first position (BOS) already differs from the base model: nothing waits for the invocation.
    const vocabBytes = model.shape.vocab * 4;
    assert.notDeepEqual(withAlora.subarray(0, vocabBytes), baseLogits.subarray(0, vocabBytes));
  } finally {
    context.dispose();
    alora.dispose();
    plain.dispose();
  }
}), { skip });

test("aLoRA: invocation tokens stored with another element type than u32 are refused by llama.cpp with a typed error", () => withTinyModel(async (model) => {
  const invocation = randomTokens(model, 2);
  const { spec } = tinyLora(`alora-i32-${invocation.join("-")}`, { ...adapterShape, invocationTokens: invocation });
  const { metadata } = parseGguf(encodeGguf(spec));
  metadata.set("adapter.alora.invocation_tokens", { type: "array", value: { type: "i32", value: Int32Array.from(invocation) } });
  const path = writeFixture(`alora-as-i32-${invocation.join("-")}.gguf`, { metadata, tensors: spec.tensors });
  await assert.rejects(LoraAdapter.load(model, path), (error: unknown) => error instanceof LlamaError && error.code === "ERR_LLAMA_ADAPTER_LOAD");
}), { skip });
