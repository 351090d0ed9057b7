// A training sequence and the window rule that cuts long token streams into sequences.

export interface TrainingSequence {
  /** n+1 ≥ 2 token ids. */
  readonly tokens: Int32Array;
  /** n flags: counted[i] = 1 when predicting tokens[i+1] from tokens[0..i] counts in the loss. */
  readonly counted: Uint8Array;
  /** Where it came from, for messages: "data.jsonl:12" or "corpus.txt window 3". */
  readonly source: string;
}

/**
 * Windows of `ctx + 1` tokens with stride `ctx`: consecutive windows share one token, so every
 * token after the first is predicted exactly once. The last window may be shorter, and is kept
 * when it has at least 2 tokens (one prediction). The windows are views of `tokens`.
 */
export function windowTokens(tokens: Int32Array, ctx: number): Int32Array[] {
  const windows: Int32Array[] = [];
  for (let start = 0; start + 1 < tokens.length; start += ctx) windows.push(tokens.subarray(start, Math.min(start + ctx + 1, tokens.length)));
  return windows;
}

const allCounted = new Map<number, Uint8Array>();

/** `n` ones; windows of one length share one array (read-only by contract). */
export function countedAll(n: number): Uint8Array {
  let ones = allCounted.get(n);
  if (ones === undefined) {
    ones = new Uint8Array(n).fill(1);
    if (allCounted.size < 64) allCounted.set(n, ones);
  }
  return ones;
}

/** Windows of a token stream as sequences named `${source} window k` (k from 1), or `source` alone when there is one. */
export function windowSequences(tokens: Int32Array, ctx: number, source: string): TrainingSequence[] {
  const windows = windowTokens(tokens, ctx);
  return windows.map((w, i) => ({ tokens: w, counted: countedAll(w.length - 1), source: windows.length === 1 ? source : `${source} window ${i + 1}` }));
}
