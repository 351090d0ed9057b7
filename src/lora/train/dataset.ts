// Training data for the LoRA trainer: a text file or JSONL (pre-tokenized, prompt/completion,
// chat) read as a stream and turned into sequences of at most ctx + 1 tokens with a mask of the
// positions that count in the loss, plus the seeded order the trainer takes them in.
// The formats and their rules: docs/training.md, "Data formats".
import { createHash } from "node:crypto";
import { extname } from "node:path";
import { TrainingDataError, TrainingError } from "./errors.ts";
import { EventLoopYielder, readLines } from "./data/lines.ts";
import { chatRecord, parseRecord, promptCompletionRecord, tokensRecord } from "./data/records.ts";
import { type TrainingSequence, windowSequences } from "./data/sequence.ts";
import { tokenizeTextFile } from "./data/text.ts";
import type { Tokenizer } from "./data/tokenizer.ts";

export type { TrainingSequence } from "./data/sequence.ts";
export { type Tokenizer, modelTokenizer } from "./data/tokenizer.ts";
export { BatchOrder } from "./data/order.ts";

export type DataFormat = "text" | "tokens" | "prompt-completion" | "chat";

export interface DatasetOptions {
  /** Positions per sequence: sequences hold at most ctx + 1 tokens. */
  readonly ctx: number;
  /** Default: by extension and first line: .jsonl with "tokens" | "prompt"+"completion" | "messages"; otherwise text. */
  readonly format?: DataFormat;
  /** The base model's vocabulary (see modelTokenizer); required except for "tokens". */
  readonly tokenizer?: Tokenizer;
  /** For "tokens" without a tokenizer: ids must be below it. */
  readonly vocabSize?: number;
}

const jsonlExtensions = new Set([".jsonl", ".ndjson"]);

/** The format of a JSONL file from the keys of its first record. */
function formatOfRecord(record: Record<string, unknown>, where: string): DataFormat {
  if ("tokens" in record) return "tokens";
  if ("messages" in record) return "chat";
  if ("prompt" in record || "completion" in record) return "prompt-completion";
  throw new TrainingDataError(where, `cannot tell the format: expected "tokens", "prompt" and "completion", or "messages", found ${Object.keys(record).map((k) => JSON.stringify(k)).join(", ") || "no keys"}`);
}

async function detectFormat(path: string): Promise<DataFormat> {
  if (!jsonlExtensions.has(extname(path).toLowerCase())) return "text";
  for await (const { text, line } of readLines(path)) {
    if (text.trim() === "") continue;
    return formatOfRecord(parseRecord(text, `${path}:${line}`), `${path}:${line}`);
  }
  throw new TrainingDataError(path, "the file is empty");
}

function checkCtx(ctx: number): void {
  if (!Number.isSafeInteger(ctx) || ctx < 1) throw new TrainingError("ERR_TRAIN_ARGUMENT", `ctx must be a positive integer, got ${ctx}`);
}

async function readJsonl(path: string, format: Exclude<DataFormat, "text">, ctx: number, tokenizer: Tokenizer | undefined, vocabSize: number): Promise<TrainingSequence[]> {
  const yielder = new EventLoopYielder();
  const sequences: TrainingSequence[] = [];
  for await (const { text, line } of readLines(path)) {
    if (text.trim() === "") continue;
    const where = `${path}:${line}`;
    const record = parseRecord(text, where);
    if (format === "tokens") sequences.push(...tokensRecord(record, where, ctx, vocabSize));
    else if (format === "prompt-completion") sequences.push(promptCompletionRecord(record, where, ctx, tokenizer!));
    else sequences.push(chatRecord(record, where, ctx, tokenizer!));
    await yielder.maybeYield();
  }
  return sequences;
}

/** Sequences of at most ctx + 1 tokens, each with the positions that count in the loss. */
export class Dataset {
  readonly sequences: readonly TrainingSequence[];
  readonly ctx: number;
  /** Counted positions over all sequences. */
  readonly countedTokens: number;
  #fingerprint: string | undefined;

  private constructor(sequences: readonly TrainingSequence[], ctx: number) {
    this.sequences = Object.freeze([...sequences]);
    this.ctx = ctx;
    let counted = 0;
    for (const s of sequences) for (const c of s.counted) counted += c;
    this.countedTokens = counted;
  }

  /**
   * Reads a data file: text, or JSONL of {"tokens"}, {"prompt", "completion"} or {"messages"}.
   * Streams the file and hands the event loop back while it tokenizes.
   */
  static async read(path: string, options: DatasetOptions): Promise<Dataset> {
    checkCtx(options.ctx);
    const format = options.format ?? await detectFormat(path);
    const { tokenizer } = options;
    if (format !== "tokens" && tokenizer === undefined) throw new TrainingError("ERR_TRAIN_ARGUMENT", `${format} data needs the base model's tokenizer (options.tokenizer)`);
    const vocabSize = options.vocabSize ?? tokenizer?.vocabSize;
    if (format === "tokens" && (vocabSize === undefined || !Number.isSafeInteger(vocabSize) || vocabSize < 1)) {
      throw new TrainingError("ERR_TRAIN_ARGUMENT", `pre-tokenized data needs the vocabulary size to check ids against (options.tokenizer or options.vocabSize), got ${vocabSize}`);
    }
    let sequences: TrainingSequence[];
    if (format === "text") {
      const tokens = await tokenizeTextFile(path, tokenizer!);
      if (tokens === undefined) throw new TrainingDataError(path, "the file is empty");
      if (tokens.length < 2) throw new TrainingDataError(path, `the text is ${tokens.length} token${tokens.length === 1 ? "" : "s"} long: training needs at least 2`);
      sequences = windowSequences(tokens, options.ctx, path);
    } else {
      sequences = await readJsonl(path, format, options.ctx, tokenizer, vocabSize!);
      if (sequences.length === 0) throw new TrainingDataError(path, "the file is empty (no JSONL records)");
    }
    return new Dataset(sequences, options.ctx);
  }

  /**
   * Text held in memory, read as a text file with that content would be: tokenized with the
   * special tokens the vocabulary adds (BOS once at the start), special tokens written as text
   * left as text, cut into windows of ctx + 1 tokens. Without `ctx`, the whole text is one
   * sequence and `ctx` is its length in positions (pass the data set's ctx to the trainer).
   */
  static fromText(text: string, options: { readonly tokenizer: Tokenizer; readonly ctx?: number; readonly source?: string }): Dataset {
    if (options.ctx !== undefined) checkCtx(options.ctx);
    const source = options.source ?? "text";
    if (text.length === 0) throw new TrainingDataError(source, "the text is empty");
    const tokens = options.tokenizer.tokenize(text, { addSpecial: true, parseSpecial: false });
    if (tokens.length < 2) throw new TrainingDataError(source, `the text is ${tokens.length} token${tokens.length === 1 ? "" : "s"} long: training needs at least 2`);
    const ctx = options.ctx ?? tokens.length - 1;
    return new Dataset(windowSequences(tokens, ctx, source), ctx);
  }

  /** A data set from sequences made elsewhere; each is checked as a file's would be. */
  static fromSequences(sequences: readonly TrainingSequence[], ctx: number): Dataset {
    checkCtx(ctx);
    if (sequences.length === 0) throw new TrainingDataError(undefined, "no sequences");
    sequences.forEach((s, i) => {
      const where = s.source || `sequence ${i}`;
      if (!(s.tokens instanceof Int32Array) || !(s.counted instanceof Uint8Array)) throw new TrainingDataError(where, "tokens must be an Int32Array and counted a Uint8Array");
      if (s.tokens.length < 2) throw new TrainingDataError(where, `${s.tokens.length} tokens: a sequence needs at least 2`);
      if (s.tokens.length > ctx + 1) throw new TrainingDataError(where, `${s.tokens.length} tokens, longer than ctx + 1 = ${ctx + 1}`);
      if (s.counted.length !== s.tokens.length - 1) throw new TrainingDataError(where, `counted has ${s.counted.length} flags for ${s.tokens.length} tokens (expected ${s.tokens.length - 1})`);
      if (s.counted.some((c) => c > 1)) throw new TrainingDataError(where, "counted flags must be 0 or 1");
      if (!s.counted.includes(1)) throw new TrainingDataError(where, "nothing to learn: no position is counted");
    });
    return new Dataset(sequences, ctx);
  }

  /** A stable content hash (hex) for resume checks: ctx, and every sequence's tokens and mask in order (not their sources). */
  get fingerprint(): string {
    if (this.#fingerprint === undefined) {
      const hash = createHash("sha256");
      hash.update(`gpuffi-dataset-v1 ctx=${this.ctx} n=${this.sequences.length}\n`);
      const length = new Uint32Array(1);
      for (const s of this.sequences) {
        length[0] = s.tokens.length;
        hash.update(new Uint8Array(length.buffer));
        hash.update(new Uint8Array(s.tokens.buffer, s.tokens.byteOffset, s.tokens.byteLength));
        hash.update(new Uint8Array(s.counted.buffer, s.counted.byteOffset, s.counted.byteLength));
      }
      this.#fingerprint = hash.digest("hex");
    }
    return this.#fingerprint;
  }
}
