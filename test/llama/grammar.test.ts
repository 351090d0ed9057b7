// The grammar sampler: a GBNF grammar constrains every generated text, and a grammar llama.cpp
// cannot use is refused with a typed error.
import assert from "node:assert/strict";
import fc from "fast-check";
import { test } from "../harness.ts";
import { LlamaContext, LlamaError, LlamaSampler } from "../../src/llama/index.ts";
import { llamaUnavailable, withTinyModel } from "./fixtures.ts";

const skip = llamaUnavailable;

// Words, a separator, digits and an end: the tiny vocabulary spells them with letter pieces and
// byte tokens, so the sampler has to steer the random-weight model token by token.
const grammar = String.raw`
root   ::= answer ", " number "."
answer ::= "yes" | "no" | "maybe"
number ::= [1-9] [0-9]?
`;
const language = /^(yes|no|maybe), [1-9][0-9]?\.$/;

test("a GBNF grammar constrains every generated text, sampled or greedy, and ends generation when complete", () => withTinyModel(async (model) => {
  // One thread: ggml's workers wait for each other by spinning, which a busy test machine punishes.
  const context = LlamaContext.create(model, { contextSize: 128, threads: 1 });
  try {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.constantFrom(0, 0.8, 1.5), fc.constantFrom("the cat", "a", "what is it"), async (seed, temperature, prompt) => {
      const { text, tokens } = await context.generateText(prompt, { grammar, seed, temperature, maxTokens: 48 });
      assert.match(text, language, `seed ${seed}, temperature ${temperature}: ${JSON.stringify(text)}`);
      // The grammar allows only end-of-generation once complete, so generation stopped there.
      assert.ok(tokens.length < 48, `${tokens.length} tokens`);
    }), { numRuns: 12 });
    // The constraint does the work: the same model without a grammar writes something else.
    const free = await context.generateText("the cat", { seed: 7, temperature: 1, maxTokens: 24, stopAtEndOfGeneration: false });
    assert.doesNotMatch(free.text, language);
  } finally {
    context.dispose();
  }
}), { skip, timeout: 60_000 });

test("a grammar llama.cpp cannot parse, or without the root rule, or empty, is refused with a typed error", () => withTinyModel(async (model) => {
  const refused = (options: { grammar: string; grammarRoot?: string }, pattern: RegExp) =>
    assert.throws(() => LlamaSampler.create(model, options), (error: unknown) => error instanceof LlamaError && error.code === "ERR_LLAMA_SAMPLER" && pattern.test(error.message));
  refused({ grammar: 'root ::= ("a" | ' }, /grammar \(is the GBNF valid/);
  refused({ grammar: 'root ::= root "a"' }, /left recursion/);
  refused({ grammar, grammarRoot: "start" }, /a rule named "start"/);
  refused({ grammar: "  \n" }, /the grammar is empty/);
  // generate() refuses it before decoding anything.
  const context = LlamaContext.create(model, { contextSize: 32, threads: 1 });
  try {
    await assert.rejects(context.generateText("a", { grammar: "" }), LlamaError);
    assert.deepEqual(context.sequencePositions(0), { min: -1, max: -1 });
  } finally {
    context.dispose();
  }
}), { skip });
