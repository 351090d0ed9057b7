// Batch: a llama_batch allocated by llama.cpp, filled from JS through zero-copy views.
import { NativeResource, type StructValue, nativeView } from "../ffi/index.ts";
import type { llamaBatch } from "./bindings.ts";
import { LlamaError } from "./errors.ts";
import type { Llama } from "./llama.ts";

/**
 * Tokens for one `llama_decode`, possibly of several sequences: each entry has a token, its
 * position, the sequences it belongs to and whether its logits are wanted.
 */
export class Batch extends NativeResource {
  /** @internal The struct as llama_batch_init returned it (n_tokens is set at decode time). */
  readonly struct: StructValue<typeof llamaBatch.fields>;
  readonly capacity: number;
  readonly maxSequences: number;
  #count = 0;
  readonly #tokens: Int32Array;
  readonly #positions: Int32Array;
  readonly #sequenceCounts: Int32Array;
  readonly #sequenceIds: Int32Array[];
  readonly #logits: Int8Array;

  constructor(llama: Llama, capacity: number, maxSequences = 1) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new LlamaError("ERR_LLAMA_ARGUMENT", `batch capacity must be a positive integer, got ${capacity}`);
    const { symbols } = llama.lib;
    const struct = symbols.llama_batch_init(capacity, 0, maxSequences);
    super("Batch", () => symbols.llama_batch_free(struct));
    this.struct = struct;
    this.capacity = capacity;
    this.maxSequences = maxSequences;
    this.#tokens = new Int32Array(nativeView(struct.token, capacity * 4));
    this.#positions = new Int32Array(nativeView(struct.pos, capacity * 4));
    this.#sequenceCounts = new Int32Array(nativeView(struct.n_seq_id, capacity * 4));
    this.#logits = new Int8Array(nativeView(struct.logits, capacity));
    // seq_id is an array of `capacity` pointers, each to `maxSequences` ids.
    const rows = new BigUint64Array(nativeView(struct.seq_id, capacity * 8));
    this.#sequenceIds = Array.from(rows, (row) => new Int32Array(nativeView(Number(row), maxSequences * 4)));
  }

  /** Entries added since the last `clear`. */
  get count(): number {
    return this.#count;
  }

  /** Appends one token; returns its index (the index `logits(i)` takes when `logits` is set). */
  add(token: number, position: number, sequences: number | readonly number[], logits = false): number {
    this.assertLive();
    if (this.#count === this.capacity) throw new LlamaError("ERR_LLAMA_ARGUMENT", `the batch is full (${this.capacity} tokens)`);
    const count = typeof sequences === "number" ? 1 : sequences.length;
    if (count < 1 || count > this.maxSequences) throw new LlamaError("ERR_LLAMA_ARGUMENT", `a token belongs to 1…${this.maxSequences} sequences, got ${count}`);
    const i = this.#count++;
    this.#tokens[i] = token;
    this.#positions[i] = position;
    this.#sequenceCounts[i] = count;
    // One sequence (a decode loop's case) is stored without an array made per token.
    if (typeof sequences === "number") this.#sequenceIds[i]![0] = sequences;
    else this.#sequenceIds[i]!.set(sequences);
    this.#logits[i] = logits ? 1 : 0;
    return i;
  }

  /** Empties the batch for reuse. */
  clear(): void {
    this.#count = 0;
  }

  /** The sequences the batch touches (a context forgets what it knew about their contents). */
  sequences(): Set<number> {
    const seen = new Set<number>();
    for (let i = 0; i < this.#count; i++) for (const id of this.#sequenceIds[i]!.subarray(0, this.#sequenceCounts[i])) seen.add(id);
    return seen;
  }
}
