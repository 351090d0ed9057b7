// The reference a LoRA adapter must match: a model whose weights were merged offline as
// W + Σ scale·(alpha/rank)·B·A, computed in float64 and stored as f32.
import type { GgufSpec, GgufTensorSpec } from "../../src/formats/index.ts";

function floats(tensor: GgufTensorSpec): Float32Array {
  return new Float32Array(tensor.data.buffer.slice(tensor.data.byteOffset, tensor.data.byteOffset + tensor.data.byteLength));
}

export interface MergedAdapter {
  readonly spec: GgufSpec;
  readonly alpha: number;
  readonly scale: number;
}

/** `base` (an all-f32 model) with each adapter merged at its scale. */
export function mergeLora(base: GgufSpec, adapters: readonly MergedAdapter[]): GgufSpec {
  const tensors = base.tensors.map((tensor) => {
    const deltas = adapters.flatMap(({ spec, alpha, scale }) => {
      const a = spec.tensors.find((t) => t.name === `${tensor.name}.lora_a`);
      const b = spec.tensors.find((t) => t.name === `${tensor.name}.lora_b`);
      return a && b ? [{ a, b, alpha, scale }] : [];
    });
    if (deltas.length === 0) return tensor;
    // ggml shapes: W [nIn, nOut] (nOut rows of nIn), A [nIn, rank] (rank rows), B [rank, nOut] (nOut rows).
    const [nIn, nOut] = tensor.shape as [number, number];
    const merged = Float64Array.from(floats(tensor));
    for (const { a, b, alpha, scale } of deltas) {
      const rank = b.shape[0]!;
      const factor = scale * (alpha / rank);
      const [A, B] = [floats(a), floats(b)];
      for (let o = 0; o < nOut; o++) {
        for (let k = 0; k < rank; k++) {
          const bok = factor * B[o * rank + k]!;
          for (let i = 0; i < nIn; i++) merged[o * nIn + i]! += bok * A[k * nIn + i]!;
        }
      }
    }
    return { ...tensor, data: new Uint8Array(Float32Array.from(merged).buffer) };
  });
  return { ...base, tensors };
}
