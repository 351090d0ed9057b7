// One JSONL record → training sequences, for each of the three JSONL formats. `where` is the
// record's "file:line"; every error names it.
import { TrainingDataError } from "../errors.ts";
import { type TrainingSequence, windowSequences } from "./sequence.ts";
import { type Tokenizer, commonPrefixLength } from "./tokenizer.ts";

type JsonObject = Record<string, unknown>;

export function parseRecord(text: string, where: string): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new TrainingDataError(where, `not valid JSON (${(error as Error).message})`, { cause: error });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new TrainingDataError(where, `expected a JSON object, got ${describe(value)}`);
  return value as JsonObject;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string") return value.length > 30 ? `the string "${value.slice(0, 30)}…"` : `the string ${JSON.stringify(value)}`;
  if (typeof value === "object") return "an object";
  return `the ${typeof value} ${String(value)}`;
}

function stringField(record: JsonObject, key: string, where: string): string {
  const value = record[key];
  if (value === undefined) throw new TrainingDataError(where, `missing "${key}" (a string)`);
  if (typeof value !== "string") throw new TrainingDataError(where, `"${key}" must be a string, got ${describe(value)}`);
  return value;
}

/** `{"tokens": [...]}`: ids checked against the vocabulary, cut into windows as text is. */
export function tokensRecord(record: JsonObject, where: string, ctx: number, vocabSize: number): TrainingSequence[] {
  const ids = record.tokens;
  if (ids === undefined) throw new TrainingDataError(where, `missing "tokens" (an array of token ids)`);
  if (!Array.isArray(ids)) throw new TrainingDataError(where, `"tokens" must be an array of token ids, got ${describe(ids)}`);
  const tokens = new Int32Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const id: unknown = ids[i];
    if (typeof id !== "number" || !Number.isInteger(id)) throw new TrainingDataError(where, `tokens[${i}] must be an integer token id, got ${describe(id)}`);
    if (id < 0 || id >= vocabSize) throw new TrainingDataError(where, `token id ${id} (tokens[${i}]) is outside the vocabulary of ${vocabSize} tokens (0…${vocabSize - 1})`);
    tokens[i] = id;
  }
  if (tokens.length < 2) throw new TrainingDataError(where, `${tokens.length} token${tokens.length === 1 ? "" : "s"}: a sequence needs at least 2 (one to predict from, one to predict)`);
  return windowSequences(tokens, ctx, where);
}

function tooLong(where: string, length: number, ctx: number): TrainingDataError {
  return new TrainingDataError(where, `${length} tokens, longer than ctx + 1 = ${ctx + 1}: shorten the example or raise ctx (prompt/completion and chat examples are not cut into windows)`);
}

function masked(tokens: Int32Array, from: number, to: number, where: string): TrainingSequence {
  const counted = new Uint8Array(tokens.length - 1);
  // Position i predicts tokens[i + 1]: a span of predicted tokens [from, to) is positions [from - 1, to - 1).
  counted.fill(1, Math.max(from, 1) - 1, Math.max(to, 1) - 1);
  return { tokens, counted, source: where };
}

/**
 * `{"prompt", "completion"}`: prompt + completion tokenized as one text with the special tokens
 * `addSpecial` adds (BOS), EOS appended when the vocabulary has one; only completion tokens and
 * the EOS count. The completion starts at the first token where the tokens of the whole part from
 * those of the prompt alone, so a token that spans the boundary counts (it holds completion text).
 */
export function promptCompletionRecord(record: JsonObject, where: string, ctx: number, tokenizer: Tokenizer): TrainingSequence {
  const prompt = stringField(record, "prompt", where);
  const completion = stringField(record, "completion", where);
  const options = { addSpecial: true, parseSpecial: false };
  const promptTokens = tokenizer.tokenize(prompt, options);
  const whole = tokenizer.tokenize(prompt + completion, options);
  const start = commonPrefixLength(promptTokens, whole);
  let tokens = whole;
  if (tokenizer.eos >= 0) {
    tokens = new Int32Array(whole.length + 1);
    tokens.set(whole);
    tokens[whole.length] = tokenizer.eos;
  }
  if (tokens.length > ctx + 1) throw tooLong(where, tokens.length, ctx);
  if (start >= tokens.length || tokens.length < 2) throw new TrainingDataError(where, "nothing to learn: the completion is empty and the vocabulary has no EOS");
  return masked(tokens, start, tokens.length, where);
}

interface Message {
  role: string;
  content: string;
}

function messagesField(record: JsonObject, where: string): Message[] {
  const messages = record.messages;
  if (messages === undefined) throw new TrainingDataError(where, `missing "messages" (an array of {"role", "content"})`);
  if (!Array.isArray(messages) || messages.length === 0) throw new TrainingDataError(where, `"messages" must be a non-empty array of {"role", "content"}, got ${Array.isArray(messages) ? "an empty array" : describe(messages)}`);
  return messages.map((m: unknown, i) => {
    if (typeof m !== "object" || m === null || Array.isArray(m)) throw new TrainingDataError(where, `messages[${i}] must be an object {"role", "content"}, got ${describe(m)}`);
    const message = m as JsonObject;
    return { role: stringField(message, "role", `${where} messages[${i}]`), content: stringField(message, "content", `${where} messages[${i}]`) };
  });
}

function render(tokenizer: Tokenizer, messages: readonly Message[], addAssistant: boolean, where: string): string {
  try {
    return tokenizer.applyChatTemplate(messages, addAssistant);
  } catch (error) {
    throw new TrainingDataError(where, `cannot render the conversation with the chat template: ${(error as Error).message}`, { cause: error });
  }
}

/**
 * `{"messages": [...]}`: rendered with the chat template, tokenized with special tokens parsed;
 * only the tokens of assistant messages (with the template's end-of-turn after them) count.
 *
 * Each assistant span runs from the end of the conversation before it rendered with the
 * assistant prefix (`addAssistant`) to the end of the conversation up to and including it.
 * Those renderings must be prefixes of the whole one (as text). When their tokens are prefixes
 * of the whole's tokens too, the span is exact; when the tokenizer merges across a boundary,
 * the token that straddles it counts (it holds assistant text), found as the first token where
 * the tokenizations part.
 */
export function chatRecord(record: JsonObject, where: string, ctx: number, tokenizer: Tokenizer): TrainingSequence {
  const messages = messagesField(record, where);
  if (!messages.some((m) => m.role === "assistant")) throw new TrainingDataError(where, `nothing to learn: no message has the role "assistant"`);
  const options = { addSpecial: true, parseSpecial: true };
  const whole = render(tokenizer, messages, false, where);
  const tokens = tokenizer.tokenize(whole, options);
  if (tokens.length > ctx + 1) throw tooLong(where, tokens.length, ctx);
  const counted = new Uint8Array(Math.max(tokens.length - 1, 0));
  messages.forEach((message, i) => {
    if (message.role !== "assistant") return;
    const before = render(tokenizer, messages.slice(0, i), true, where);
    const through = render(tokenizer, messages.slice(0, i + 1), false, where);
    if (!through.startsWith(before) || !whole.startsWith(through)) {
      throw new TrainingDataError(where, `the chat template does not render this conversation incrementally (messages[${i}]): cannot tell which tokens are the assistant's`);
    }
    const start = commonPrefixLength(tokenizer.tokenize(before, options), tokens);
    const throughTokens = tokenizer.tokenize(through, options);
    const shared = commonPrefixLength(throughTokens, tokens);
    const end = Math.min(tokens.length, shared < throughTokens.length ? shared + 1 : shared);
    if (end > start) counted.fill(1, Math.max(start, 1) - 1, end - 1);
  });
  if (tokens.length < 2 || !counted.includes(1)) throw new TrainingDataError(where, "nothing to learn: the assistant messages render to no tokens");
  return { tokens, counted, source: where };
}
