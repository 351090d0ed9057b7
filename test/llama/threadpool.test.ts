// Contexts on an attached ggml threadpool (llama_attach_threadpool), as llama-bench runs them.
import assert from "node:assert/strict";
import { test } from "../harness.ts";
import { type ContextOptions, LlamaContext, LlamaError, type LlamaModel, LlamaThreadpool, type ThreadpoolOptions } from "../../src/llama/index.ts";
import { llamaUnavailable, withTinyModel } from "./fixtures.ts";

const skip = llamaUnavailable;
// f32 KV cache and no flash attention: bit-level comparisons (see numerics.ts).
const contextOptions: ContextOptions = { contextSize: 64, threads: 2, cacheType: "f32", flashAttention: false };

/** A fresh random prompt: BOS, then tokens drawn from the whole vocabulary. */
function randomPrompt(model: LlamaModel, length: number): number[] {
  return [model.specialTokens.bos, ...Array.from({ length: length - 1 }, () => Math.floor(Math.random() * model.shape.vocab))];
}

/** The bytes of every prompt position's logits. */
function promptLogits(context: LlamaContext, tokens: readonly number[]): Uint8Array {
  context.clearMemory();
  context.evaluate(tokens, { allLogits: true });
  const vocab = context.model.shape.vocab;
  const all = new Float32Array(tokens.length * vocab);
  for (let i = 0; i < tokens.length; i++) all.set(context.logits(i), i * vocab);
  return new Uint8Array(all.buffer);
}

function assertRefused(make: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(make, (error: unknown) => error instanceof LlamaError && error.code === code && pattern.test(error.message));
}

test("a context on a threadpool computes the logits of one without, bit for bit, and keeps the pool alive", () => withTinyModel(async (model) => {
  const pool = LlamaThreadpool.create({ threads: 2 });
  const plain = LlamaContext.create(model, contextOptions);
  const { threads: _, ...withoutThreads } = contextOptions;
  const pooled = LlamaContext.create(model, { ...withoutThreads, threadpool: pool });
  try {
    assert.equal(pooled.threads, 2, "the thread count defaults to the pool's");
    const tokens = randomPrompt(model, 24);
    const expected = promptLogits(plain, tokens);
    assert.deepEqual(promptLogits(pooled, tokens), expected);
    // Disposed in JS, the pool lives natively until the last context on it is freed.
    pool.dispose();
    assert.ok(pool.disposed);
    assert.deepEqual(promptLogits(pooled, tokens), expected);
  } finally {
    pooled.dispose();
    plain.dispose();
  }
}), { skip });

test("threadpool options (CPUs, strict placement, polling, priority) change where it runs, not what it computes", () => withTinyModel(async (model) => {
  const plain = LlamaContext.create(model, contextOptions);
  try {
    const tokens = randomPrompt(model, 16);
    const expected = promptLogits(plain, tokens);
    const variants: Omit<ThreadpoolOptions, "threads">[] = [{ cpus: [0], strictCpu: true }, { poll: 0 }, { poll: 100, priority: "normal" }];
    for (const options of variants) {
      const pool = LlamaThreadpool.create({ threads: 2, ...options });
      const pooled = LlamaContext.create(model, { ...contextOptions, threadpool: pool });
      try {
        assert.deepEqual(promptLogits(pooled, tokens), expected, JSON.stringify(options));
      } finally {
        pooled.dispose();
        pool.dispose();
      }
    }
  } finally {
    plain.dispose();
  }
}), { skip });

test("bad threadpool options and contexts that would outgrow their pool are refused with typed errors", () => withTinyModel(async (model) => {
  const bad: [ThreadpoolOptions, RegExp][] = [
    [{ threads: 0 }, /threads must be an integer from 1 to 512, got 0/],
    [{ threads: 513 }, /threads .* got 513/],
    [{ threads: 1.5 }, /threads .* got 1\.5/],
    [{ threads: 2, poll: 101 }, /poll must be an integer from 0 to 100, got 101/],
    [{ threads: 2, poll: -1 }, /poll .* got -1/],
    [{ threads: 2, priority: "urgent" as "high" }, /priority must be one of low, normal, medium, high, realtime, got urgent/],
    [{ threads: 2, cpus: [512] }, /cpus entry must be an integer from 0 to 511, got 512/],
    [{ threads: 2, cpus: [-1] }, /cpus entry .* got -1/],
  ];
  for (const [options, pattern] of bad) assertRefused(() => LlamaThreadpool.create(options), "ERR_LLAMA_ARGUMENT", pattern);

  const pool = LlamaThreadpool.create({ threads: 1 });
  try {
    assertRefused(() => LlamaContext.create(model, { threadpool: pool, threads: 2 }), "ERR_LLAMA_CONTEXT", /asks for 2 threads but the threadpool has 1/);
    assertRefused(() => LlamaContext.create(model, { threadpool: pool, threads: 1, threadsBatch: 3 }), "ERR_LLAMA_CONTEXT", /asks for 3 threads/);
  } finally {
    pool.dispose();
  }
  assertRefused(() => LlamaContext.create(model, { threadpool: pool }), "ERR_LLAMA_CONTEXT", /threadpool was disposed/);
}), { skip });
