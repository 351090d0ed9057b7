// What the data pipeline needs from a vocabulary, as an interface: the model's own through
// libllama (modelTokenizer), or anything else that tokenizes (tests use a toy one).
import type { LlamaModel } from "../../../llama/index.ts";

export interface Tokenizer {
  readonly vocabSize: number;
  tokenize(text: string, options: { addSpecial: boolean; parseSpecial: boolean }): Int32Array;
  applyChatTemplate(messages: readonly { role: string; content: string }[], addAssistant: boolean): string;
  /** The end-of-sequence token; -1 if none. */
  readonly eos: number;
}

/**
 * The tokenizer of a loaded model: its vocabulary and its chat template. A model loaded with
 * `{ vocabOnly: true }` is enough, and loads in a fraction of the time and memory.
 */
export function modelTokenizer(model: LlamaModel): Tokenizer {
  return {
    vocabSize: model.vocabSize,
    eos: model.specialTokens.eos,
    tokenize: (text, options) => model.tokenize(text, options),
    applyChatTemplate: (messages, addAssistant) => model.applyChatTemplate(messages, { addAssistant }),
  };
}

/** The tokens a tokenizer adds around a text with `addSpecial` (BOS before, EOS after on some vocabularies). */
export function specialTokensAround(tokenizer: Tokenizer): { before: Int32Array; after: Int32Array } {
  const probe = "a";
  const plain = tokenizer.tokenize(probe, { addSpecial: false, parseSpecial: false });
  const special = tokenizer.tokenize(probe, { addSpecial: true, parseSpecial: false });
  for (let start = 0; start + plain.length <= special.length; start++) {
    if (plain.every((t, i) => special[start + i] === t)) {
      return { before: special.slice(0, start), after: special.slice(start + plain.length) };
    }
  }
  return { before: new Int32Array(0), after: new Int32Array(0) };
}

/** The length of the common prefix of two token arrays. */
export function commonPrefixLength(a: Int32Array, b: Int32Array): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}
