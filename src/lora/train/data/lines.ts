// Streaming a file: its lines (JSONL) or its text in line-aligned pieces, read in chunks so a
// large file never sits in memory whole, and a clock that hands the event loop back now and then.
import { open } from "node:fs/promises";

const CHUNK_BYTES = 1 << 20;

/** UTF-8 text of a file in decoded chunks (a leading BOM dropped). */
export async function* readChunks(path: string, chunkBytes = CHUNK_BYTES): AsyncGenerator<string> {
  const file = await open(path, "r");
  try {
    const decoder = new TextDecoder("utf-8");
    const buffer = new Uint8Array(chunkBytes);
    let first = true;
    for (;;) {
      const { bytesRead } = await file.read(buffer, 0, buffer.length, null);
      let text = bytesRead === 0 ? decoder.decode() : decoder.decode(buffer.subarray(0, bytesRead), { stream: true });
      if (first && text.length > 0) {
        if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
        first = false;
      }
      if (text.length > 0) yield text;
      if (bytesRead === 0) return;
    }
  } finally {
    await file.close();
  }
}

/** Lines of a file with 1-based numbers, without their "\n" or "\r\n". */
export async function* readLines(path: string): AsyncGenerator<{ readonly text: string; readonly line: number }> {
  let carry = "";
  let line = 0;
  for await (const chunk of readChunks(path)) {
    const parts = (carry + chunk).split("\n");
    carry = parts.pop()!;
    for (const part of parts) yield { text: part.endsWith("\r") ? part.slice(0, -1) : part, line: ++line };
  }
  if (carry.length > 0) yield { text: carry.endsWith("\r") ? carry.slice(0, -1) : carry, line: ++line };
}

/**
 * Text in pieces of about `pieceChars` that each end with "\n" followed by a character that is
 * not whitespace (or at the end of the file): a boundary no tokenizer merges across in practice.
 */
export async function* readLineAlignedPieces(path: string, pieceChars = CHUNK_BYTES): AsyncGenerator<string> {
  let carry = "";
  // Where the search for a cut resumes: a single huge line is scanned once, not once per chunk.
  let searched = 0;
  for await (const chunk of readChunks(path)) {
    carry += chunk;
    while (carry.length >= pieceChars) {
      const { cut, next } = alignedCut(carry, Math.max(pieceChars - 1, searched));
      searched = next;
      if (cut < 0) break;
      yield carry.slice(0, cut);
      carry = carry.slice(cut);
      searched = 0;
    }
  }
  if (carry.length > 0) yield carry;
}

/** The first index right after a "\n" at or after `from` that a non-whitespace character follows (-1 if none yet), and where to resume. */
function alignedCut(text: string, from: number): { cut: number; next: number } {
  let i = text.indexOf("\n", from);
  for (; i >= 0 && i + 1 < text.length; i = text.indexOf("\n", i + 1)) {
    if (!/\s/.test(text[i + 1]!)) return { cut: i + 1, next: 0 };
  }
  return { cut: -1, next: i >= 0 ? i : text.length };
}

/** Hands the event loop back after `sliceMs` of synchronous work. */
export class EventLoopYielder {
  #last = performance.now();
  constructor(private readonly sliceMs = 15) {}
  async maybeYield(): Promise<void> {
    if (performance.now() - this.#last < this.sliceMs) return;
    await new Promise((resolve) => setTimeout(resolve, 0));
    this.#last = performance.now();
  }
}
