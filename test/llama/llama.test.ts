// Loading libllama and models: the version check, progress and abort, metadata, tokenizer.
import assert from "node:assert/strict";
import fc from "fast-check";
import { test } from "../harness.ts";
import { DisposedError } from "../../src/ffi/index.ts";
import { Llama, LlamaError, LlamaModel, LlamaVersionError, checkVersions, expectedVersions } from "../../src/llama/index.ts";
import { llamaUnavailable, tinyModel } from "./fixtures.ts";

const skip = llamaUnavailable;

test("the version check refuses another llama.cpp and names both versions", () => {
  assert.throws(() => checkVersions("/x/libllama.so", { llama: "0.6.0", ggml: expectedVersions.ggml }, false), (error: unknown) => {
    assert.ok(error instanceof LlamaVersionError);
    assert.match(error.message, /llama\.cpp 0\.6\.0/);
    assert.match(error.message, new RegExp(`llama\\.cpp ${expectedVersions.llama.replaceAll(".", "\\.")}`));
    assert.match(error.message, /allowVersionMismatch/);
    return true;
  });
  assert.throws(() => checkVersions("/x", { llama: expectedVersions.llama, ggml: "0.9.0" }, false), LlamaVersionError);
  checkVersions("/x", { llama: `${expectedVersions.llama}-dev`, ggml: expectedVersions.ggml }, false);
  checkVersions("/x", { llama: "0.6.0", ggml: "0.9.0" }, true);
});

test("the loaded libllama is the version the bindings were written for", () => {
  const { versions, systemInfo } = Llama.shared();
  assert.equal(versions.llama.replace(/-dev$/, ""), expectedVersions.llama);
  assert.equal(versions.ggml, expectedVersions.ggml);
  assert.match(systemInfo, /CPU/);
  assert.ok(Llama.shared().devices().some((d) => d.type === "cpu"));
}, { skip });

test("model load reports progress, exposes metadata and can be aborted", async () => {
  const seen: number[] = [];
  const model = await LlamaModel.load(tinyModel().path, { onProgress: (p) => seen.push(p) });
  try {
    assert.ok(seen.length > 0 && seen.at(-1) === 1, `progress ${seen.join(", ")}`);
    assert.equal(model.metadata.get("general.architecture"), "llama");
    assert.deepEqual({ ...model.shape, parameters: 0, bytes: 0 }, { contextTrain: 256, embedding: 64, layers: 2, heads: 2, headsKv: 1, vocab: 304, parameters: 0, bytes: 0 });
    assert.equal(model.specialTokens.bos, 1);
    assert.equal(model.chatTemplate(), undefined);
  } finally {
    model.dispose();
  }
  const controller = new AbortController();
  await assert.rejects(
    LlamaModel.load(tinyModel().path, { signal: controller.signal, onProgress: () => controller.abort() }),
    (error: unknown) => (error as Error).name === "AbortError",
  );
  await assert.rejects(LlamaModel.load("/nonexistent.gguf"), LlamaError);
  assert.throws(() => model.tokenize("x"), DisposedError);
}, { skip });

test("tokenize → detokenize gives back any UTF-8 text exactly", async () => {
  const model = await LlamaModel.load(tinyModel().path, { vocabOnly: true });
  try {
    fc.assert(fc.property(fc.string({ unit: "binary", maxLength: 40 }), (text) => {
      const tokens = model.tokenize(text, { addSpecial: false });
      assert.equal(model.detokenize(tokens), text);
      // Streaming the pieces through one decoder gives the same text.
      const decoder = new TextDecoder();
      const streamed = Array.from(tokens, (t) => decoder.decode(model.tokenPiece(t), { stream: true })).join("") + decoder.decode();
      assert.equal(streamed.replace(/^ /, ""), text.replace(/^ /, ""));
    }), { numRuns: 200 });
  } finally {
    model.dispose();
  }
}, { skip });

test("special tokens are plain text unless parsed", async () => {
  const model = await LlamaModel.load(tinyModel().path, { vocabOnly: true });
  try {
    const eos = model.specialTokens.eos;
    assert.deepEqual([...model.tokenize("</s>", { addSpecial: false, parseSpecial: true })], [eos]);
    assert.ok(!model.tokenize("</s>", { addSpecial: false }).includes(eos));
    assert.equal(model.tokenize("a")[0], model.specialTokens.bos);
    assert.equal(model.detokenize([eos], { unparseSpecial: true }), "</s>");
    assert.equal(model.detokenize([eos]), "");
  } finally {
    model.dispose();
  }
}, { skip });
