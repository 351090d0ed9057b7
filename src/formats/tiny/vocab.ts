// A minimal SentencePiece ("llama") vocabulary with byte fallback: the three special tokens at
// the ids llama.cpp defaults to (<unk> 0, <s> 1, </s> 2), the 256 byte tokens <0x00>..<0xFF>
// (so any text tokenizes, and "<0x0A>" gives llama.cpp its newline token), then a few word
// pieces so that the SPM merge path is exercised too.

/** llama.h `enum llama_token_type`. */
const TokenType = { normal: 1, unknown: 2, control: 3, byte: 6 } as const;

export interface TinyVocab {
  readonly tokens: string[];
  readonly scores: Float32Array;
  readonly tokenTypes: Int32Array;
  readonly unkId: number;
  readonly bosId: number;
  readonly eosId: number;
}

const SPACE = "\u2581"; // SentencePiece's visible space
const letters = Array.from("abcdefghijklmnopqrstuvwxyz");
const merges = ["in", "er", "an", "re", "on", "at", "en", "nd", "or", "he", "th", "the"];
const wordStarts = ["t", "a", "s", "w", "th", "the"].map((p) => SPACE + p);

/** The size of the vocabulary without fillers: the least `tinyVocab` can make. */
export const TINY_VOCAB_BASE_SIZE = 3 + 256 + 1 + letters.length + merges.length + wordStarts.length;

/**
 * The vocabulary, padded to `size` tokens with filler pieces (for models shaped like real ones,
 * e.g. TinyLlama's 32000 tokens, in benchmarks).
 */
export function tinyVocab(size = TINY_VOCAB_BASE_SIZE): TinyVocab {
  if (!Number.isSafeInteger(size) || size < TINY_VOCAB_BASE_SIZE) throw new RangeError(`a tiny vocabulary has at least ${TINY_VOCAB_BASE_SIZE} tokens, asked for ${size}`);
  const pieces = [SPACE, ...letters, ...merges, ...wordStarts];
  for (let i = 0; pieces.length < size - 3 - 256; i++) pieces.push(`${SPACE}x${i.toString(36)}`);
  const entries: [string, number, number][] = [
    ["<unk>", 0, TokenType.unknown],
    ["<s>", 0, TokenType.control],
    ["</s>", 0, TokenType.control],
    ...Array.from({ length: 256 }, (_, b): [string, number, number] => [
      `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`, 0, TokenType.byte,
    ]),
    // Higher scores merge first, as SentencePiece orders its pieces.
    ...pieces.map((piece, i): [string, number, number] => [piece, -i, TokenType.normal]),
  ];
  return {
    tokens: entries.map(([t]) => t),
    scores: Float32Array.from(entries, ([, s]) => s),
    tokenTypes: Int32Array.from(entries, ([, , type]) => type),
    unkId: 0,
    bosId: 1,
    eosId: 2,
  };
}
