// Timing loops shared by the benchmarks.

/**
 * Times each variant in rounds, interleaved, and keeps each one's best round in ns per call: a
 * shared or noisy machine disturbs some rounds, and the best is the least disturbed. Every
 * variant runs in a loop compiled for it alone (the C anchors' shape, `sum += f()`), so that no
 * variant's type feedback slows another's loop.
 */
export function interleaved(variants: Record<string, () => number>, iterations: number, rounds: number): Record<string, number> {
  const best: Record<string, number> = {};
  const loops: Record<string, (f: () => number, n: number) => number> = {};
  for (const name of Object.keys(variants)) {
    best[name] = Infinity;
    loops[name] = new Function("f", "n", "let sum = 0; const start = performance.now(); for (let i = 0; i < n; i++) sum += f(); const ns = ((performance.now() - start) * 1e6) / n; if (sum === 0.5) console.log(''); return ns;") as never;
  }
  for (let round = 0; round < rounds; round++) {
    for (const [name, variant] of Object.entries(variants)) best[name] = Math.min(best[name]!, loops[name]!(variant, iterations));
  }
  return best;
}
