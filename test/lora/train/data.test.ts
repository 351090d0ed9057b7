// The training data pipeline: text windows, pre-tokenized JSONL, prompt/completion and chat
// masks (with the tiny model's vocabulary and chat templates through libllama, and a toy
// tokenizer that merges across boundaries), the typed errors, and the seeded batch order.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { test } from "../../harness.ts";
import { type GgufValue, makeTinyModel } from "../../../src/formats/index.ts";
import { LlamaError, LlamaModel } from "../../../src/llama/index.ts";
import { BatchOrder, Dataset, type Tokenizer, type TrainingSequence, modelTokenizer } from "../../../src/lora/train/dataset.ts";
import { TrainingDataError, TrainingError } from "../../../src/lora/train/errors.ts";
import { windowTokens } from "../../../src/lora/train/data/sequence.ts";
import { tokenizeTextFile } from "../../../src/lora/train/data/text.ts";
import { epochPermutation } from "../../../src/lora/train/data/order.ts";
import { llamaUnavailable, tinyModel, writeFixture } from "../../llama/fixtures.ts";

const skip = llamaUnavailable;
const dir = mkdtempSync(join(tmpdir(), "gpuffi-train-data-"));
let fileCount = 0;

/** Writes `content` (lines joined with "\n" when an array) to a fresh file with the given extension. */
function dataFile(ext: string, content: string | readonly unknown[]): string {
  const path = join(dir, `data-${++fileCount}${ext}`);
  writeFileSync(path, typeof content === "string" ? content : content.map((r) => (typeof r === "string" ? r : JSON.stringify(r))).join("\n") + "\n");
  return path;
}

/** A model of the tiny vocabulary with `template` as tokenizer.chat_template (a Jinja source or a built-in name). */
function templatedModel(name: string, template: string): Promise<LlamaModel> {
  const spec = makeTinyModel({ seed: 7 });
  const metadata = [...(spec.metadata as Iterable<readonly [string, GgufValue]>), ["tokenizer.chat_template", { type: "string", value: template }] as const];
  const path = writeFixture(`${name}.gguf`, { ...spec, metadata });
  return LlamaModel.load(path, { vocabOnly: true });
}

const chatmlJinja =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

async function withVocab<T>(body: (model: LlamaModel, tokenizer: Tokenizer) => Promise<T> | T, model?: Promise<LlamaModel>): Promise<T> {
  const loaded = await (model ?? LlamaModel.load(tinyModel().path, { vocabOnly: true }));
  try {
    return await body(loaded, modelTokenizer(loaded));
  } finally {
    loaded.dispose();
  }
}

/** The text of tokens as the vocabulary spells them (pieces concatenated, special tokens as text, no space stripped). */
function piecesText(model: LlamaModel, tokens: ArrayLike<number>): string {
  const bytes = Array.from(tokens, (t) => [...model.tokenPiece(t, true)]).flat();
  return new TextDecoder().decode(Uint8Array.from(bytes));
}

/** The tokens counted in a sequence: the predicted token at each counted position. */
function countedTargets(sequence: TrainingSequence): number[] {
  return Array.from(sequence.counted.keys()).filter((i) => sequence.counted[i] === 1).map((i) => sequence.tokens[i + 1]!);
}

/** Maximal runs of counted targets (an assistant turn each, in chat data). */
function countedRuns(sequence: TrainingSequence): number[][] {
  const runs: number[][] = [];
  sequence.counted.forEach((c, i) => {
    if (c === 0) return;
    if (i === 0 || sequence.counted[i - 1] === 0) runs.push([]);
    runs.at(-1)!.push(sequence.tokens[i + 1]!);
  });
  return runs;
}

async function rejectsData(promise: Promise<unknown>, ...patterns: RegExp[]): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof TrainingDataError, `expected a TrainingDataError, got ${String(error)}`);
    assert.equal(error.code, "ERR_TRAIN_DATA");
    for (const pattern of patterns) assert.match(error.message, pattern);
    return true;
  });
}

// ----- LlamaModel.applyChatTemplate -----------------------------------------------------------------

test("applyChatTemplate renders the model's template, or the one asked for, and refuses without one", async () => {
  const messages = [{ role: "system", content: "be brief" }, { role: "user", content: "grüße" }, { role: "assistant", content: "hi" }];
  await withVocab((model) => {
    assert.equal(model.applyChatTemplate(messages, { addAssistant: false }), "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\ngrüße<|im_end|>\n<|im_start|>assistant\nhi<|im_end|>\n");
    assert.equal(model.applyChatTemplate(messages.slice(0, 2)), "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\ngrüße<|im_end|>\n<|im_start|>assistant\n");
    assert.equal(model.applyChatTemplate(messages, { template: "vicuna", addAssistant: false }), "be brief\n\nUSER: grüße\nASSISTANT: hi</s>\n");
    // A conversation longer than the first buffer guess.
    const long = "x".repeat(5000);
    assert.equal(model.applyChatTemplate([{ role: "user", content: long }], { addAssistant: false }), `<|im_start|>user\n${long}<|im_end|>\n`);
  }, templatedModel("chatml-jinja", chatmlJinja));
  await withVocab((model) => {
    assert.throws(() => model.applyChatTemplate(messages), (e: unknown) => e instanceof LlamaError && e.code === "ERR_LLAMA_CHAT_TEMPLATE" && /no chat template/.test(e.message));
    assert.equal(model.applyChatTemplate([], { template: "chatml" }), "<|im_start|>assistant\n");
    assert.throws(() => model.applyChatTemplate(messages, { template: "no-such-template" }), (e: unknown) => e instanceof LlamaError && e.code === "ERR_LLAMA_CHAT_TEMPLATE");
    assert.throws(() => model.applyChatTemplate([{ role: "user", content: "a\0b" }], { template: "chatml" }), (e: unknown) => e instanceof LlamaError && /NUL/.test(e.message));
  });
}, { skip });

test("modelTokenizer exposes the vocabulary of a vocab-only model", async () => {
  await withVocab((model, tokenizer) => {
    assert.equal(model.vocabOnly, true);
    assert.equal(tokenizer.vocabSize, 304);
    assert.equal(tokenizer.eos, 2);
    assert.deepEqual(Array.from(tokenizer.tokenize("the", { addSpecial: true, parseSpecial: false })), Array.from(model.tokenize("the")));
  });
}, { skip });

// ----- windows --------------------------------------------------------------------------------------

/** Checks the window rule on any token stream: ctx + 1 tokens, stride ctx, each token after the first predicted once. */
function assertWindows(tokens: Int32Array, windows: readonly Int32Array[], ctx: number): void {
  const predicted = new Array<number>(tokens.length).fill(0);
  let start = 0;
  windows.forEach((w, k) => {
    assert.ok(w.length >= 2 && w.length <= ctx + 1, `window ${k} has ${w.length} tokens`);
    if (k < windows.length - 1) assert.equal(w.length, ctx + 1);
    assert.deepEqual(Array.from(w), Array.from(tokens.subarray(start, start + w.length)));
    for (let i = 1; i < w.length; i++) predicted[start + i]!++;
    start += ctx;
  });
  if (tokens.length >= 2) assert.deepEqual(predicted, [0, ...new Array<number>(tokens.length - 1).fill(1)]);
  else assert.equal(windows.length, 0);
}

test("windows: ctx + 1 tokens, stride ctx, every token after the first predicted exactly once (property)", () => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 1, max: 40 }), (n, ctx) => {
    const tokens = Int32Array.from({ length: n }, (_, i) => i * 7 + 3);
    const windows = windowTokens(tokens, ctx);
    assertWindows(tokens, windows, ctx);
    // The last partial window is kept exactly when it has a token to predict.
    assert.equal(windows.length, n < 2 ? 0 : Math.ceil((n - 1) / ctx));
  }));
  assert.deepEqual(windowTokens(Int32Array.from([1, 2, 3, 4, 5, 6]), 2).map((w) => Array.from(w)), [[1, 2, 3], [3, 4, 5], [5, 6]]);
  assert.deepEqual(windowTokens(Int32Array.from([1, 2, 3, 4, 5]), 2).map((w) => Array.from(w)), [[1, 2, 3], [3, 4, 5]]);
});

// ----- text -----------------------------------------------------------------------------------------

test("text: tokenized with BOS once and cut into windows, every position counted", async () => {
  const text = "the cat sat on the mat.\nthen the rat ran at the cat,\nand the cat ran after it.\n";
  const path = dataFile(".txt", text);
  await withVocab(async (model, tokenizer) => {
    const expected = model.tokenize(text, { addSpecial: true });
    assert.equal(expected[0], 1);
    const dataset = await Dataset.read(path, { ctx: 8, tokenizer });
    assert.equal(dataset.ctx, 8);
    assertWindows(expected, dataset.sequences.map((s) => s.tokens), 8);
    assert.equal(dataset.sequences.filter((s) => s.tokens.includes(1)).length, 1, "BOS once");
    for (const s of dataset.sequences) assert.ok(s.counted.every((c) => c === 1));
    assert.equal(dataset.countedTokens, expected.length - 1);
    assert.deepEqual(dataset.sequences.slice(0, 2).map((s) => s.source), [`${path} window 1`, `${path} window 2`]);
    // A context that holds the whole text: one sequence, named by the file.
    const whole = await Dataset.read(path, { ctx: 1000, tokenizer });
    assert.deepEqual(whole.sequences.map((s) => [Array.from(s.tokens), s.source]), [[Array.from(expected), path]]);
  });
}, { skip });

test("text: tokenizing in line-aligned pieces gives the tokens of one call (property)", async () => {
  await withVocab(async (model, tokenizer) => {
    const word = fc.constantFrom("the", "cat", "a", "Wörter", "  x", "in", "and", "", "!", "😀", "\t");
    const line = fc.array(word, { maxLength: 6 }).map((w) => w.join(" "));
    await fc.assert(fc.asyncProperty(fc.array(line, { minLength: 1, maxLength: 12 }), fc.integer({ min: 1, max: 40 }), async (lines, pieceChars) => {
      const text = lines.join("\n");
      const path = dataFile(".txt", text);
      const tokens = await tokenizeTextFile(path, tokenizer, pieceChars);
      if (text.length === 0) return assert.equal(tokens, undefined);
      assert.deepEqual(Array.from(tokens!), Array.from(model.tokenize(text, { addSpecial: true })));
    }), { numRuns: 60 });
  });
}, { skip });

test("text: an empty file, or one token, is a typed error", async () => {
  await withVocab(async (_model, tokenizer) => {
    await rejectsData(Dataset.read(dataFile(".txt", ""), { ctx: 8, tokenizer }), /empty/);
    // "" would be BOS alone; a text that is just a BOM decodes to nothing too.
    await rejectsData(Dataset.read(dataFile(".txt", "\uFEFF"), { ctx: 8, tokenizer }), /empty/);
  });
  await assert.rejects(Dataset.read(dataFile(".txt", "abc"), { ctx: 8 }), (e: unknown) => e instanceof TrainingError && /tokenizer/.test(e.message));
  await assert.rejects(Dataset.read(dataFile(".txt", "abc"), { ctx: 0, vocabSize: 10 }), (e: unknown) => e instanceof TrainingError && /ctx/.test(e.message));
}, { skip });

test("text in memory (fromText): the sequences of the same text read from a file; without ctx, one sequence", async () => {
  const text = "the cat sat on the mat.\nthen the rat ran at the cat,\nand the cat ran after it.\n";
  const path = dataFile(".txt", text);
  await withVocab(async (model, tokenizer) => {
    const fromFile = await Dataset.read(path, { ctx: 8, tokenizer });
    const fromText = Dataset.fromText(text, { ctx: 8, tokenizer, source: path });
    assert.deepEqual(fromText.sequences.map((s) => [Array.from(s.tokens), Array.from(s.counted), s.source]), fromFile.sequences.map((s) => [Array.from(s.tokens), Array.from(s.counted), s.source]));
    assert.equal(fromText.fingerprint, fromFile.fingerprint);
    const whole = Dataset.fromText(text, { tokenizer });
    const expected = model.tokenize(text, { addSpecial: true });
    assert.equal(whole.ctx, expected.length - 1);
    assert.deepEqual(whole.sequences.map((s) => [Array.from(s.tokens), s.source]), [[Array.from(expected), "text"]]);
    assert.throws(() => Dataset.fromText("", { tokenizer }), (e: unknown) => e instanceof TrainingDataError && /text: the text is empty/.test(e.message));
    assert.throws(() => Dataset.fromText("abc", { tokenizer, ctx: 0 }), (e: unknown) => e instanceof TrainingError && /ctx/.test(e.message));
  });
}, { skip });

// ----- tokens ---------------------------------------------------------------------------------------

test("tokens: a line of ctx + 1 tokens is one sequence; longer lines are cut into windows", async () => {
  const path = dataFile(".jsonl", [{ tokens: [5, 6, 7, 8, 9] }, "", { tokens: [10, 11, 12, 13, 14, 15, 16, 17, 18] }, { tokens: [20, 21], note: "extra keys are ignored" }]);
  const dataset = await Dataset.read(path, { ctx: 4, vocabSize: 32 });
  assert.deepEqual(dataset.sequences.map((s) => [Array.from(s.tokens), s.source]), [
    [[5, 6, 7, 8, 9], `${path}:1`],
    [[10, 11, 12, 13, 14], `${path}:3 window 1`],
    [[14, 15, 16, 17, 18], `${path}:3 window 2`],
    [[20, 21], `${path}:4`],
  ]);
  assert.equal(dataset.countedTokens, 4 + 8 + 1);
  assert.ok(dataset.sequences.every((s) => s.counted.length === s.tokens.length - 1 && s.counted.every((c) => c === 1)));
}, {});

test("tokens: ids outside the vocabulary, short lines, bad JSON and wrong types name the line", async () => {
  const read = (lines: unknown[], vocabSize = 100) => Dataset.read(dataFile(".jsonl", lines), { ctx: 8, vocabSize, format: "tokens" });
  await rejectsData(read([{ tokens: [1, 2] }, { tokens: [1, 2, 100] }]), /data-\d+\.jsonl:2:/, /token id 100/, /100 tokens/);
  await rejectsData(read([{ tokens: [1, -1] }]), /:1:/, /token id -1/);
  await rejectsData(read([{ tokens: [1, 2] }, { tokens: [7] }]), /:2:/, /1 token: a sequence needs at least 2/);
  await rejectsData(read([{ tokens: [] }]), /:1:/, /0 tokens/);
  await rejectsData(read([{ tokens: [1, 2.5] }]), /:1:/, /tokens\[1\] must be an integer/);
  await rejectsData(read([{ tokens: [1, "2"] }]), /tokens\[1\] must be an integer token id, got the string "2"/);
  await rejectsData(read([{ tokens: "1 2" }]), /"tokens" must be an array/);
  await rejectsData(read([{ tokens: [1, 2] }, '{"tokens": [1, 2']), /:2:/, /not valid JSON/);
  await rejectsData(read([{ tokens: [1, 2] }, "[1, 2]"]), /:2:/, /expected a JSON object, got an array/);
  await rejectsData(read([{ tokens: [1, 2] }, { ids: [1, 2] }]), /:2:/, /missing "tokens"/);
  await rejectsData(Dataset.read(dataFile(".jsonl", "\n\n"), { ctx: 8, vocabSize: 10 }), /empty/);
  await rejectsData(Dataset.read(dataFile(".jsonl", [{ foo: 1 }]), { ctx: 8, vocabSize: 10 }), /:1:/, /cannot tell the format/);
  await assert.rejects(Dataset.read(dataFile(".jsonl", [{ tokens: [1, 2] }]), { ctx: 8 }), (e: unknown) => e instanceof TrainingError && e.code === "ERR_TRAIN_ARGUMENT" && /vocabulary size/.test(e.message));
});

test("tokens: the tokenizer's vocabulary bounds the ids", async () => {
  await withVocab(async (_model, tokenizer) => {
    await rejectsData(Dataset.read(dataFile(".jsonl", [{ tokens: [1, 304] }]), { ctx: 8, tokenizer }), /token id 304/, /304 tokens \(0…303\)/);
    const ok = await Dataset.read(dataFile(".jsonl", [{ tokens: [1, 303] }]), { ctx: 8, tokenizer });
    assert.equal(ok.countedTokens, 1);
  });
}, { skip });

// ----- prompt / completion --------------------------------------------------------------------------

test("prompt/completion: BOS, prompt, completion, EOS; only the completion and EOS count", async () => {
  const rows = [{ prompt: "Q: what sat on the mat? A:", completion: " the cat" }, { prompt: "say hi", completion: "\nhi there" }];
  const path = dataFile(".jsonl", rows);
  await withVocab(async (model, tokenizer) => {
    const dataset = await Dataset.read(path, { ctx: 64, tokenizer });
    dataset.sequences.forEach((s, i) => {
      const { prompt, completion } = rows[i]!;
      assert.equal(s.source, `${path}:${i + 1}`);
      assert.equal(s.tokens[0], 1);
      assert.equal(s.tokens.at(-1), 2);
      // The tokens are those of prompt + completion as one text: no space inserted at the seam.
      assert.deepEqual(Array.from(s.tokens.subarray(0, -1)), Array.from(model.tokenize(prompt + completion)));
      const targets = countedTargets(s);
      assert.equal(piecesText(model, targets), `${completion}</s>`);
      const firstCounted = s.counted.indexOf(1);
      assert.equal(piecesText(model, s.tokens.subarray(1, firstCounted + 1)), ` ${prompt}`, "SentencePiece's space prefix, then the prompt");
      assert.ok(s.counted.subarray(firstCounted).every((c) => c === 1));
    });
    assert.equal(dataset.countedTokens, dataset.sequences.reduce((n, s) => n + countedTargets(s).length, 0));
  });
}, { skip });

test("prompt/completion: a token across the seam counts, it holds completion text", async () => {
  await withVocab(async (model, tokenizer) => {
    // "A: " + "the": the prompt alone ends in "▁"; with the completion it becomes "▁the".
    const dataset = await Dataset.read(dataFile(".jsonl", [{ prompt: "A: ", completion: "the" }]), { ctx: 16, tokenizer });
    const [s] = dataset.sequences;
    assert.equal(piecesText(model, countedTargets(s!)), " the</s>");
  });
}, { skip });

test("prompt/completion: too long, missing or mistyped fields, nothing to learn", async () => {
  await withVocab(async (_model, tokenizer) => {
    const read = (rows: unknown[], ctx = 16) => Dataset.read(dataFile(".jsonl", rows), { ctx, tokenizer, format: "prompt-completion" });
    await rejectsData(read([{ prompt: "a", completion: "b" }, { prompt: "the cat sat on the mat", completion: " and then some more words" }], 8), /:2:/, /\d+ tokens, longer than ctx \+ 1 = 9/);
    await rejectsData(read([{ prompt: "a" }]), /:1:/, /missing "completion"/);
    await rejectsData(read([{ prompt: 1, completion: "b" }]), /"prompt" must be a string, got the number 1/);
    await rejectsData(read([{ prompt: "a", completion: null }]), /"completion" must be a string, got null/);
    // An empty completion still teaches EOS.
    const eosOnly = await read([{ prompt: "a", completion: "" }]);
    assert.deepEqual(countedTargets(eosOnly.sequences[0]!), [2]);
  });
  // Without an EOS an empty completion leaves nothing to learn.
  const noEos: Tokenizer = { ...charTokenizer(), eos: -1 };
  await rejectsData(Dataset.read(dataFile(".jsonl", [{ prompt: "ab", completion: "" }]), { ctx: 16, tokenizer: noEos }), /:1:/, /nothing to learn/);
}, { skip });

// ----- chat -----------------------------------------------------------------------------------------

const conversation = {
  messages: [
    { role: "system", content: "you are terse" },
    { role: "user", content: "what sat on the mat?" },
    { role: "assistant", content: "the cat" },
    { role: "user", content: "and then?" },
    { role: "assistant", content: "it ran" },
  ],
};

test("chat (chatml): only the assistant turns and their end-of-turn count", async () => {
  const path = dataFile(".jsonl", [conversation, { messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "hello" }] }]);
  await withVocab(async (model, tokenizer) => {
    const dataset = await Dataset.read(path, { ctx: 256, tokenizer });
    const [first, second] = dataset.sequences;
    assert.equal(first!.source, `${path}:1`);
    assert.deepEqual(Array.from(first!.tokens), Array.from(model.tokenize(model.applyChatTemplate(conversation.messages, { addAssistant: false }), { parseSpecial: true })));
    assert.deepEqual(countedRuns(first!).map((run) => piecesText(model, run)), ["the cat<|im_end|>\n", "it ran<|im_end|>\n"]);
    assert.deepEqual(countedRuns(second!).map((run) => piecesText(model, run)), ["hello<|im_end|>\n"]);
  }, templatedModel("chatml", chatmlJinja));
}, { skip });

test("chat (vicuna): the assistant prefix ends before the space, which the assistant's first token holds", async () => {
  await withVocab(async (model, tokenizer) => {
    const dataset = await Dataset.read(dataFile(".jsonl", [conversation]), { ctx: 256, tokenizer });
    // "ASSISTANT:" is what addAssistant renders; the space after it belongs to "▁the". After the
    // special "</s>", SentencePiece prefixes the next text with a space, as it does when serving.
    assert.deepEqual(countedRuns(dataset.sequences[0]!).map((run) => piecesText(model, run)), [" the cat</s> \n", " it ran</s> \n"]);
    assert.ok(countedTargets(dataset.sequences[0]!).includes(2), "</s> is parsed as EOS");
  }, templatedModel("vicuna", "vicuna"));
}, { skip });

test("chat: no template, no assistant, bad messages and too long are typed errors", async () => {
  await withVocab(async (_model, tokenizer) => {
    await assert.rejects(Dataset.read(dataFile(".jsonl", [conversation]), { ctx: 256, tokenizer }), (e: unknown) => {
      assert.ok(e instanceof TrainingDataError && /:1:/.test(e.message) && /chat template/.test(e.message), String(e));
      assert.ok(e.cause instanceof LlamaError);
      return true;
    });
  });
  await withVocab(async (_model, tokenizer) => {
    const read = (rows: unknown[], ctx = 256) => Dataset.read(dataFile(".jsonl", rows), { ctx, tokenizer, format: "chat" });
    await rejectsData(read([{ messages: [{ role: "user", content: "hi" }] }]), /:1:/, /no message has the role "assistant"/);
    await rejectsData(read([{ messages: [] }]), /non-empty array/);
    await rejectsData(read([{ messages: [{ role: "user" }, { role: "assistant", content: "x" }] }]), /messages\[0\]: missing "content"/);
    await rejectsData(read([{ messages: [{ role: "assistant", content: ["x"] }] }]), /messages\[0\]: "content" must be a string, got an array/);
    await rejectsData(read([{ messages: ["hi"] }]), /messages\[0\] must be an object/);
    await rejectsData(read([conversation], 10), /:1:/, /longer than ctx \+ 1 = 11/);
  }, templatedModel("chatml-errors", chatmlJinja));
}, { skip });

/**
 * A toy tokenizer: one token per character (its code point), except the pairs in `merges`, which
 * become one token (1000 + index) wherever they occur. Its template renders "[role]content." and
 * "[assistant]" as the assistant prefix.
 */
function charTokenizer(merges: readonly string[] = []): Tokenizer & { decode(tokens: ArrayLike<number>): string } {
  return {
    vocabSize: 2000,
    eos: 3,
    tokenize(text, { addSpecial }) {
      const out = addSpecial ? [1] : [];
      for (let i = 0; i < text.length; i++) {
        const merged = merges.indexOf(text.slice(i, i + 2));
        if (merged >= 0) {
          out.push(1000 + merged);
          i++;
        } else out.push(text.charCodeAt(i));
      }
      return Int32Array.from(out);
    },
    applyChatTemplate(messages, addAssistant) {
      return messages.map((m) => `[${m.role}]${m.content}.`).join("") + (addAssistant ? "[assistant]" : "");
    },
    decode(tokens) {
      return Array.from(tokens, (t) => (t === 3 ? "<eos>" : t >= 1000 ? merges[t - 1000]! : String.fromCharCode(t))).join("");
    },
  };
}

test("chat: when tokens merge across a turn's edges, the straddling tokens count (toy tokenizer)", async () => {
  const record = { messages: [{ role: "user", content: "hi" }, { role: "assistant", content: "bcd" }, { role: "user", content: "x" }, { role: "assistant", content: "yz" }] };
  const path = dataFile(".jsonl", [record]);
  // No merges: the spans are exact.
  const plain = charTokenizer();
  const exact = await Dataset.read(path, { ctx: 64, tokenizer: plain });
  assert.deepEqual(countedRuns(exact.sequences[0]!).map((r) => plain.decode(r)), ["bcd.", "yz."]);
  // "]b" joins the assistant prefix to the reply, ".[" the reply's end to the next turn: the
  // prefix's tokens are no prefix of the whole's, and both joined tokens count.
  const merging = charTokenizer(["]b", ".["]);
  const straddled = await Dataset.read(path, { ctx: 64, tokenizer: merging });
  assert.deepEqual(countedRuns(straddled.sequences[0]!).map((r) => merging.decode(r)), ["]bcd.[", "yz."]);
  // The same for prompt/completion: "xa" + "bc" with "ab" merged.
  const pc = charTokenizer(["ab"]);
  const seam = await Dataset.read(dataFile(".jsonl", [{ prompt: "xa", completion: "bc" }]), { ctx: 64, tokenizer: pc });
  assert.equal(pc.decode(countedTargets(seam.sequences[0]!)), "abc<eos>");
});

test("chat: a template that does not render incrementally is refused", async () => {
  const reordering: Tokenizer = { ...charTokenizer(), applyChatTemplate: (messages, addAssistant) => messages.map((m) => m.content).reverse().join("|") + (addAssistant ? ">" : "") };
  await rejectsData(Dataset.read(dataFile(".jsonl", [conversation]), { ctx: 256, tokenizer: reordering }), /:1:/, /incrementally/);
});

// ----- format detection, in-memory data, fingerprint ------------------------------------------------

test("the format comes from the extension and the first record, or from the options", async () => {
  const tokenizer = charTokenizer();
  const kinds = async (path: string, format?: "text" | "tokens" | "prompt-completion" | "chat") =>
    (await Dataset.read(path, { ctx: 512, tokenizer, ...(format ? { format } : {}) })).sequences[0]!;
  const jsonTokens = dataFile(".jsonl", [{ tokens: [7, 8, 9] }]);
  assert.deepEqual(Array.from((await kinds(jsonTokens)).tokens), [7, 8, 9]);
  assert.equal(tokenizer.decode((await kinds(dataFile(".JSONL", [{ prompt: "p", completion: "c" }]))).tokens), "\u0001pc<eos>");
  assert.equal(tokenizer.decode((await kinds(dataFile(".ndjson", [conversation]))).tokens.subarray(1)).slice(0, 8), "[system]");
  // Any other extension is text, and so is a .jsonl read as "text".
  assert.equal(tokenizer.decode((await kinds(dataFile(".md", '{"tokens": [1, 2]}'))).tokens), '\u0001{"tokens": [1, 2]}');
  assert.equal(tokenizer.decode((await kinds(jsonTokens, "text")).tokens), '\u0001{"tokens":[7,8,9]}\n');
  await rejectsData(Dataset.read(dataFile(".jsonl", "not json\n"), { ctx: 8, tokenizer }), /:1:/, /not valid JSON/);
});

test("fromSequences checks what a file's sequences would be checked for; the fingerprint follows content only", async () => {
  const seq = (tokens: number[], counted: number[], source = "mem"): TrainingSequence => ({ tokens: Int32Array.from(tokens), counted: Uint8Array.from(counted), source });
  const a = Dataset.fromSequences([seq([1, 2, 3], [0, 1]), seq([4, 5], [1])], 2);
  assert.equal(a.countedTokens, 2);
  assert.match(a.fingerprint, /^[0-9a-f]{64}$/);
  assert.equal(Dataset.fromSequences([seq([1, 2, 3], [0, 1], "x"), seq([4, 5], [1], "y")], 2).fingerprint, a.fingerprint);
  for (const other of [
    Dataset.fromSequences([seq([1, 2, 3], [1, 1]), seq([4, 5], [1])], 2),
    Dataset.fromSequences([seq([1, 2, 3], [0, 1]), seq([4, 6], [1])], 2),
    Dataset.fromSequences([seq([4, 5], [1]), seq([1, 2, 3], [0, 1])], 2),
    Dataset.fromSequences([seq([1, 2, 3], [0, 1]), seq([4, 5], [1])], 3),
    Dataset.fromSequences([seq([1, 2], [0]), seq([3, 4, 5], [1, 1])].map((s, i) => (i === 0 ? { ...s, counted: Uint8Array.of(1) } : s)), 2),
  ]) assert.notEqual(other.fingerprint, a.fingerprint);
  assert.throws(() => Dataset.fromSequences([seq([1], [])], 2), (e: unknown) => e instanceof TrainingDataError && /mem: 1 tokens/.test(e.message));
  assert.throws(() => Dataset.fromSequences([seq([1, 2, 3, 4], [1, 1, 1])], 2), /longer than ctx \+ 1 = 3/);
  assert.throws(() => Dataset.fromSequences([seq([1, 2, 3], [1])], 2), /counted has 1 flags for 3 tokens/);
  assert.throws(() => Dataset.fromSequences([seq([1, 2], [0])], 2), /nothing to learn/);
  assert.throws(() => Dataset.fromSequences([], 2), TrainingDataError);
  // The same file read twice has the same fingerprint.
  const path = dataFile(".jsonl", [{ tokens: [1, 2, 3, 4, 5, 6, 7] }]);
  assert.equal((await Dataset.read(path, { ctx: 3, vocabSize: 8 })).fingerprint, (await Dataset.read(path, { ctx: 3, vocabSize: 8 })).fingerprint);
});

test("reading a large JSONL file streams and hands the event loop back", async () => {
  const rows = Array.from({ length: 20000 }, (_, i) => JSON.stringify({ tokens: Array.from({ length: 40 }, (_, j) => (i * 31 + j) % 1000) }));
  const path = dataFile(".jsonl", rows);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  try {
    const dataset = await Dataset.read(path, { ctx: 64, vocabSize: 1000 });
    assert.equal(dataset.sequences.length, 20000);
    assert.equal(dataset.sequences[19999]!.source, `${path}:20000`);
  } finally {
    clearInterval(timer);
  }
  assert.ok(ticks > 0, "the timer never ran while the file was read");
});

// ----- batch order ----------------------------------------------------------------------------------

test("BatchOrder without shuffle takes file order, crossing epochs", () => {
  const order = new BatchOrder(5, { seed: 1, shuffle: false });
  assert.deepEqual(order.next(3), [0, 1, 2]);
  assert.deepEqual(order.next(3), [3, 4, 0]);
  assert.deepEqual([order.epoch, order.index], [1, 1]);
  assert.deepEqual(order.next(4), [1, 2, 3, 4]);
  assert.deepEqual([order.epoch, order.index], [2, 0]);
  assert.deepEqual(order.next(0), []);
  assert.equal(order.stepsPerEpoch(2), 3);
  assert.equal(order.stepsPerEpoch(5), 1);
  assert.throws(() => new BatchOrder(0, { seed: 1, shuffle: true }), TrainingError);
  assert.throws(() => new BatchOrder(3, { seed: 1, shuffle: true, index: 3 }), /past the 3 sequences/);
  assert.throws(() => new BatchOrder(3, { seed: 1.5, shuffle: true }), /seed/);
  assert.throws(() => order.next(-1), TrainingError);
  assert.throws(() => order.stepsPerEpoch(0), TrainingError);
});

test("BatchOrder shuffles each epoch anew from (seed, epoch), and a resume from (epoch, index) continues exactly", () => {
  const a = new BatchOrder(100, { seed: 42, shuffle: true });
  const epochs = [a.next(100), a.next(100), a.next(100)];
  for (const e of epochs) assert.deepEqual([...e].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i));
  assert.notDeepEqual(epochs[0], epochs[1]);
  assert.notDeepEqual(epochs[0], Array.from({ length: 100 }, (_, i) => i));
  assert.deepEqual(new BatchOrder(100, { seed: 42, shuffle: true }).next(300), epochs.flat());
  assert.notDeepEqual(new BatchOrder(100, { seed: 43, shuffle: true }).next(100), epochs[0]);
  // Seeds that differ only above 32 bits differ too.
  assert.notDeepEqual(new BatchOrder(100, { seed: 42 + 2 ** 32, shuffle: true }).next(100), epochs[0]);
  const resumed = new BatchOrder(100, { seed: 42, shuffle: true, epoch: 1, index: 37 });
  assert.deepEqual(resumed.next(163), epochs.flat().slice(137));
});

test("BatchOrder: any split into batches, and any resume, gives the uninterrupted order (property)", () => {
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 30 }), fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }), fc.boolean(),
    fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 8 }),
    (size, seed, shuffle, batches) => {
      const total = batches.reduce((a, b) => a + b, 0);
      const reference = new BatchOrder(size, { seed, shuffle }).next(total);
      // Each epoch is a permutation of 0…size−1, the one epochPermutation gives.
      for (let e = 0; e * size < total; e++) {
        const block = reference.slice(e * size, (e + 1) * size);
        const full = shuffle ? Array.from(epochPermutation(size, seed, e)) : Array.from({ length: size }, (_, i) => i);
        assert.deepEqual(block, full.slice(0, block.length));
        if (block.length === size) assert.deepEqual([...block].sort((x, y) => x - y), Array.from({ length: size }, (_, i) => i));
      }
      // Batch by batch, restoring from the two numbers before each batch.
      let state = { epoch: 0, index: 0 };
      const taken: number[] = [];
      for (const count of batches) {
        const order = new BatchOrder(size, { seed, shuffle, ...state });
        taken.push(...order.next(count));
        state = { epoch: order.epoch, index: order.index };
      }
      assert.deepEqual(taken, reference);
      assert.deepEqual(state, { epoch: Math.floor(total / size), index: total % size });
    },
  ));
});
