// A transformer-like allocation trace for the pools: each forward pass allocates activations of
// several sizes per layer (attention scores that grow with the sequence, MLP intermediates,
// residuals), frees most of a layer's temporaries at its end and keeps one output per layer
// until the pass ends, with sequence lengths and batch sizes changing between passes.

export type TraceStep = { readonly op: "alloc"; readonly id: number; readonly bytes: number } | { readonly op: "free"; readonly id: number };

/** A deterministic trace (xorshift with `seed`). */
export function transformerTrace(options: { layers?: number; passes?: number; hidden?: number; seed?: number } = {}): TraceStep[] {
  const layers = options.layers ?? 24;
  const passes = options.passes ?? 40;
  const hidden = options.hidden ?? 2048;
  let x = options.seed ?? 0x2545f491;
  const random = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
  const steps: TraceStep[] = [];
  let id = 0;
  const alloc = (bytes: number) => (steps.push({ op: "alloc", id, bytes: Math.max(1, Math.round(bytes)) }), id++);
  const free = (ids: number[]) => ids.forEach((i) => steps.push({ op: "free", id: i }));
  for (let pass = 0; pass < passes; pass++) {
    const tokens = Math.ceil((1 + random() * 7) * (16 + random() * 496));
    const heads = 16;
    const kept: number[] = [];
    for (let layer = 0; layer < layers; layer++) {
      const norm = alloc(tokens * hidden * 2);
      const qkv = alloc(tokens * hidden * 3 * 2);
      const scores = alloc(heads * tokens * Math.min(tokens, 1024) * 2 + random() * 4096);
      free([norm]);
      const attn = alloc(tokens * hidden * 2);
      free([scores, qkv]);
      const up = alloc(tokens * hidden * 4 * 2);
      const gate = alloc(tokens * hidden * 4 * 2);
      free([attn]);
      const down = alloc(tokens * hidden * 2);
      free([up, gate]);
      kept.push(down);
    }
    free(kept);
  }
  return steps;
}

/** Replays a trace through `alloc`/`free` and returns the peak of live requested bytes. */
export function replay<T>(steps: readonly TraceStep[], alloc: (bytes: number) => T, free: (item: T) => void): { peakLiveBytes: number } {
  const live = new Map<number, { item: T; bytes: number }>();
  let liveBytes = 0;
  let peakLiveBytes = 0;
  for (const step of steps) {
    if (step.op === "alloc") {
      live.set(step.id, { item: alloc(step.bytes), bytes: step.bytes });
      liveBytes += step.bytes;
      peakLiveBytes = Math.max(peakLiveBytes, liveBytes);
    } else {
      const entry = live.get(step.id)!;
      live.delete(step.id);
      liveBytes -= entry.bytes;
      free(entry.item);
    }
  }
  return { peakLiveBytes };
}
