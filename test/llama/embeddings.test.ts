// Embeddings: per-token vectors (pooling "none") checked against the logits they produce through
// the model's output matrix, pooled vectors (mean, cls, last) against a recomputation from the
// per-token ones, and the refusals when a context cannot give what is asked.
import assert from "node:assert/strict";
import { test } from "../harness.ts";
import { Batch, type ContextOptions, LlamaContext, LlamaError, type LlamaModel } from "../../src/llama/index.ts";
import { gpuUnavailable, llamaUnavailable, tinyModel, withTinyModel } from "./fixtures.ts";

const skip = llamaUnavailable;
// f32 KV cache, no flash attention, one thread (see numerics.ts and grammar.test.ts).
const base: ContextOptions = { contextSize: 64, threads: 1, cacheType: "f32", flashAttention: false };

function randomPrompt(model: LlamaModel, length: number): number[] {
  return [model.specialTokens.bos, ...Array.from({ length: length - 1 }, () => Math.floor(Math.random() * model.shape.vocab))];
}

/** ‖actual − expected‖ / ‖expected‖ in float64. */
function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length);
  let difference = 0;
  let norm = 0;
  for (let i = 0; i < expected.length; i++) {
    difference += (actual[i]! - expected[i]!) ** 2;
    norm += expected[i]! ** 2;
  }
  assert.ok(norm > 0, "the reference is all zeros");
  return Math.sqrt(difference / norm);
}

// A CUDA build offloads the model (llama.cpp's default), and its matrix products round through
// f16 (2.6e-4 measured on the H100); on the CPU everything stays f32.
const tolerance = gpuUnavailable ? 1e-5 : 2e-3;

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  const error = relativeError(actual, expected);
  assert.ok(error < tolerance, `${what}: relative error ${error}`);
}

/** Every token's embedding of one sequence, from a context with pooling "none". */
function tokenEmbeddings(context: LlamaContext, tokens: readonly number[]): Float32Array[] {
  context.clearMemory();
  context.evaluate(tokens);
  return tokens.map((_, i) => context.embeddings(i));
}

test("per-token embeddings: n_embd finite values per token, deterministic, and the output matrix turns them into the logits", () => withTinyModel(async (model) => {
  const context = LlamaContext.create(model, { ...base, embeddings: true, pooling: "none" });
  const again = LlamaContext.create(model, { ...base, embeddings: true, pooling: "none" });
  try {
    const tokens = randomPrompt(model, 12);
    const embeddings = tokenEmbeddings(context, tokens);
    // llama.cpp outputs every token of an embeddings context, logits included.
    const logits = tokens.map((_, i) => context.logits(i));
    const { embedding, vocab } = model.shape;
    // output.weight: ggml shape [n_embd, n_vocab], so row v holds the weights of token v's logit.
    const output = tinyModel().spec.tensors.find((t) => t.name === "output.weight")!;
    const weights = new Float32Array(output.data.slice().buffer);
    assert.equal(weights.length, embedding * vocab);
    embeddings.forEach((vector, i) => {
      assert.equal(vector.length, embedding);
      assert.ok(vector.every(Number.isFinite), `token ${i} has a non-finite value`);
      const expected = Array.from({ length: vocab }, (_, v) => vector.reduce((sum, x, j) => sum + weights[v * embedding + j]! * x, 0));
      assertClose(logits[i]!, expected, `logits of token ${i} from its embedding`);
    });
    assert.ok(embeddings.some((v, i) => i > 0 && relativeError(v, embeddings[0]!) > 1e-2), "every token has the same embedding");
    tokenEmbeddings(again, tokens).forEach((vector, i) => assert.deepEqual(vector, embeddings[i], `token ${i} on a second context`));
    // No pooling, no sequence embedding.
    assert.throws(() => context.sequenceEmbeddings(0), (error: unknown) => error instanceof LlamaError && error.code === "ERR_LLAMA_OUTPUT");
  } finally {
    again.dispose();
    context.dispose();
  }
}), { skip });

test("pooled embeddings: mean, cls and last pool each sequence's per-token embeddings, two sequences in one batch", () => withTinyModel(async (model) => {
  const perToken = LlamaContext.create(model, { ...base, embeddings: true, pooling: "none" });
  const prompts = [randomPrompt(model, 9), randomPrompt(model, 6)];
  const embeddings = prompts.map((tokens) => tokenEmbeddings(perToken, tokens));
  perToken.dispose();
  const n = model.shape.embedding;
  const expected = {
    mean: (vectors: Float32Array[]) => Array.from({ length: n }, (_, j) => vectors.reduce((sum, v) => sum + v[j]!, 0) / vectors.length),
    cls: (vectors: Float32Array[]) => vectors[0]!,
    last: (vectors: Float32Array[]) => vectors.at(-1)!,
  };
  for (const pooling of ["mean", "cls", "last"] as const) {
    const context = LlamaContext.create(model, { ...base, embeddings: true, pooling, sequences: 2 });
    const batch = new Batch(model.llama, 32, 2);
    try {
      prompts.forEach((tokens, sequence) => tokens.forEach((token, position) => batch.add(token, position, sequence, true)));
      context.decode(batch);
      prompts.forEach((_, sequence) => {
        const pooled = context.sequenceEmbeddings(sequence);
        assert.equal(pooled.length, n);
        assert.ok(pooled.every(Number.isFinite));
        assertClose(pooled, expected[pooling](embeddings[sequence]!), `${pooling} pooling of sequence ${sequence}`);
      });
    } finally {
      batch.dispose();
      context.dispose();
    }
  }
}), { skip });

test("embeddings that a context cannot give, or would pool wrongly, are refused with typed errors", () => withTinyModel(async (model) => {
  const refused = (make: () => unknown, code: string, pattern: RegExp) =>
    assert.throws(make, (error: unknown) => error instanceof LlamaError && error.code === code && pattern.test(error.message));
  const plain = LlamaContext.create(model, base);
  try {
    plain.evaluate(randomPrompt(model, 4));
    refused(() => plain.embeddings(-1), "ERR_LLAMA_OUTPUT", /embeddings: true/);
    refused(() => plain.sequenceEmbeddings(0), "ERR_LLAMA_OUTPUT", /pooling other than "none"/);
  } finally {
    plain.dispose();
  }
  // A cache per sequence would make llama.cpp pool equal-length pieces of a batch.
  refused(() => LlamaContext.create(model, { ...base, embeddings: true, pooling: "mean", sequences: 2, unifiedCache: false }), "ERR_LLAMA_CONTEXT", /need unifiedCache/);
  // llama.cpp pools per ubatch: a longer decode would pool only its last part.
  const pooled = LlamaContext.create(model, { ...base, embeddings: true, pooling: "mean", batchSize: 32, ubatchSize: 8 });
  const batch = new Batch(model.llama, 32);
  try {
    const tokens = randomPrompt(model, 12);
    refused(() => pooled.evaluate(tokens), "ERR_LLAMA_ARGUMENT", /12 tokens > ubatchSize 8/);
    tokens.forEach((token, position) => batch.add(token, position, 0, true));
    refused(() => pooled.decode(batch), "ERR_LLAMA_ARGUMENT", /fit one ubatch/);
    pooled.evaluate(tokens.slice(0, 8));
    assert.equal(pooled.sequenceEmbeddings(0).length, model.shape.embedding);
  } finally {
    batch.dispose();
    pooled.dispose();
  }
}), { skip });
