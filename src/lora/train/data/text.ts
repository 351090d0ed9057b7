// A text file → one token stream, tokenized as one call on the whole text would, but in
// line-aligned pieces: a libllama call on a large file would hold the event loop for seconds.
import { EventLoopYielder, readLineAlignedPieces } from "./lines.ts";
import { type Tokenizer, specialTokensAround } from "./tokenizer.ts";

const plain = { addSpecial: false, parseSpecial: false } as const;

/** A growable Int32Array. */
class TokenBuffer {
  #data = new Int32Array(1024);
  length = 0;
  push(tokens: Int32Array): void {
    if (this.length + tokens.length > this.#data.length) {
      const grown = new Int32Array(Math.max(this.#data.length * 2, this.length + tokens.length));
      grown.set(this.#data.subarray(0, this.length));
      this.#data = grown;
    }
    this.#data.set(tokens, this.length);
    this.length += tokens.length;
  }
  /** The tokens, trimmed to their length. */
  take(): Int32Array {
    return this.#data.slice(0, this.length);
  }
}

/**
 * Tokenizes a text file with the special tokens `addSpecial` adds (BOS once at the start, as
 * llama.cpp adds it), special tokens written as text left as text. Returns undefined for an empty file.
 *
 * Each piece after the first is tokenized behind a "\n" whose tokens are then dropped: the
 * piece then starts mid-text as it does in the whole file (SentencePiece vocabularies would
 * otherwise prefix it with a space). Should a vocabulary not tokenize "\n" + piece as "\n"'s
 * tokens followed by the rest, the file is tokenized again in one call.
 */
export async function tokenizeTextFile(path: string, tokenizer: Tokenizer, pieceChars?: number): Promise<Int32Array | undefined> {
  const yielder = new EventLoopYielder();
  const { before, after } = specialTokensAround(tokenizer);
  const newline = tokenizer.tokenize("\n", plain);
  const buffer = new TokenBuffer();
  buffer.push(before);
  let pieces = 0;
  for await (const piece of readLineAlignedPieces(path, pieceChars)) {
    if (pieces++ === 0) {
      buffer.push(tokenizer.tokenize(piece, plain));
    } else {
      const tokens = tokenizer.tokenize("\n" + piece, plain);
      if (!newline.every((t, i) => tokens[i] === t)) return await tokenizeWhole(path, tokenizer);
      buffer.push(tokens.subarray(newline.length));
    }
    await yielder.maybeYield();
  }
  if (pieces === 0) return undefined;
  buffer.push(after);
  return buffer.take();
}

async function tokenizeWhole(path: string, tokenizer: Tokenizer): Promise<Int32Array> {
  const pieces: string[] = [];
  for await (const piece of readLineAlignedPieces(path)) pieces.push(piece);
  return tokenizer.tokenize(pieces.join(""), { addSpecial: true, parseSpecial: false });
}
