// The llama forward pass as a ggml graph with LoRA on the chosen projections, and its loss: the
// graph llama.cpp builds for this architecture (models/llama.cpp, non-flash attention) written
// with ops that have a backward pass. ggml has none for flash attention or the fused SwiGLU, so
// attention is mul_mat + soft_max with a causal mask and the FFN is silu(gate)·up.
import type { Pointer } from "../../ffi/index.ts";
import type { GgmlContext, Tensor } from "../../ggml/index.ts";
import { TensorType } from "../../ggml/index.ts";
import { type LlamaShape, type Target, targetWeight } from "./architecture.ts";
import type { BaseWeights } from "./base-weights.ts";
import type { LoraParameters } from "./lora-parameters.ts";

/** The graph inputs one batch fills: B sequences of T positions, laid out sequence after sequence. */
export interface BatchInputs {
  /** I32 [T·B]: the tokens read. */
  readonly tokens: Tensor;
  /** I32 [T·B]: each token's position in its sequence. */
  readonly positions: Tensor;
  /** F32 [T, T]: 0 where a query may see a key, −∞ above the diagonal. */
  readonly mask: Tensor;
  /** I32 [T·B]: the positions whose prediction counts, first, then padding slots (any position). */
  readonly rows: Tensor;
  /** F32 [1, T·B]: 1 for a counted slot, 0 for padding: a padding slot's gradient stops here. */
  readonly rowMask: Tensor;
  /** F32 [vocab, T·B], kept on the training device: zeroed before each run; the one-hot labels are set in the graph. */
  readonly labels: Tensor;
  /** I32 [T·B]: slot·vocab + the token to predict (each slot a distinct element). */
  readonly labelIndex: Tensor;
  /** F32 [1, T·B]: 1 for a counted slot, 0 for padding. */
  readonly labelValue: Tensor;
}

export function batchInputs(ctx: GgmlContext, seqLen: number, batch: number, labels: Tensor): BatchInputs {
  const input = (type: number, shape: number[], name: string) => ctx.tensor(type, shape, name).markInput();
  const n = seqLen * batch;
  return {
    tokens: input(TensorType.I32, [n], "tokens"),
    positions: input(TensorType.I32, [n], "positions"),
    mask: input(TensorType.F32, [seqLen, seqLen], "mask"),
    rows: input(TensorType.I32, [n], "rows"),
    rowMask: input(TensorType.F32, [1, n], "row mask"),
    labels,
    labelIndex: input(TensorType.I32, [n], "label index"),
    labelValue: input(TensorType.F32, [1, n], "label value"),
  };
}

export interface LlamaGraphParts {
  readonly shape: LlamaShape;
  readonly base: BaseWeights;
  readonly lora: LoraParameters;
  /** Positions per sequence. */
  readonly seqLen: number;
  /** Sequences per batch. */
  readonly batch: number;
}

/**
 * Builds the forward pass and the loss: the cross-entropy of the counted positions, summed and
 * divided by T·B (every slot). A one-element tensor, marked loss and output. With `transposes`,
 * the transposes of the LoRA matrices and of the attention's K and V are also made, and mapped
 * from their source's pointer, for ComputeGraph.transposeProducts (the caller adds them to the
 * graph before the backward pass).
 */
export function buildLlamaLoss(ctx: GgmlContext, parts: LlamaGraphParts, inputs: BatchInputs, transposes?: Map<Pointer, Tensor>): Tensor {
  const { shape, base, lora, seqLen: T, batch: B } = parts;
  const withTranspose = (t: Tensor): Tensor => {
    transposes?.set(t.ptr, ctx.cont(ctx.transpose(t)));
    return t;
  };
  const { embd, heads: H, kvHeads: Hkv, headDim: hd } = shape;
  const rope = { dims: shape.ropeDims, freqBase: shape.ropeBase, freqScale: shape.ropeScale, factors: base.get("rope_freqs.weight") } as const;
  const scale = lora.scale;
  // y = W·x + (alpha/r)·B·(A·x), as llama.cpp's build_lora_mm applies an adapter.
  const project = (x: Tensor, layer: number, target: Target): Tensor => {
    const weight = targetWeight(layer, target);
    const y = x.linear(base.require(weight));
    const pair = lora.byWeight.get(weight);
    if (pair === undefined) return y;
    return y.add(ctx.mulMat(withTranspose(pair.b), ctx.mulMat(withTranspose(pair.a), x)).scale(scale));
  };
  // [hd, heads, T·B] → [hd, T, heads·B]: per (head, sequence) matrices, sequence outermost so that
  // mul_mat's broadcast of the KV heads over the query heads pairs them as GQA does.
  const perHead = (x: Tensor, n: number) => x.reshape(hd, n, T, B).permute(0, 2, 1, 3).cont().reshape(hd, T, n * B);

  let x = ctx.getRows(base.require("token_embd.weight"), inputs.tokens);
  for (let layer = 0; layer < shape.layers; layer++) {
    const h = x.rmsNorm(shape.rmsEps).mul(base.require(`blk.${layer}.attn_norm.weight`));
    const q = project(h, layer, "q").reshape(hd, H, T * B).rope(inputs.positions, rope);
    const k = project(h, layer, "k").reshape(hd, Hkv, T * B).rope(inputs.positions, rope);
    const v = project(h, layer, "v");
    // V transposed per head: [T, hd, Hkv·B].
    const vt = v.reshape(hd, Hkv, T, B).permute(1, 2, 0, 3).cont().reshape(T, hd, Hkv * B);
    const kq = ctx.mulMat(withTranspose(perHead(k, Hkv)), perHead(q, H)).softMax({ mask: inputs.mask, scale: 1 / Math.sqrt(hd) });
    const attn = ctx.mulMat(withTranspose(vt), kq).reshape(hd, T, H, B).permute(0, 2, 1, 3).cont().reshape(embd, T * B);
    x = x.add(project(attn, layer, "o"));
    const f = x.rmsNorm(shape.rmsEps).mul(base.require(`blk.${layer}.ffn_norm.weight`));
    const gated = project(f, layer, "gate").silu().mul(project(f, layer, "up"));
    x = x.add(project(gated, layer, "down"));
  }
  // Only counted positions reach the output projection: gathered first, padding slots zeroed
  // (ggml's cross-entropy gives a row without a label a gradient; a zeroed row passes none back).
  // The graph's shape is then the same whatever a batch counts.
  const out = x.rmsNorm(shape.rmsEps).mul(base.require("output_norm.weight"));
  const picked = ctx.getRows(out, inputs.rows).mul(inputs.rowMask);
  const logits = picked.linear(base.get("output.weight") ?? base.require("token_embd.weight"));
  const n = T * B;
  const labels = ctx.setRows(ctx.reshape(inputs.labels, [1, shape.vocab * n]), inputs.labelValue, inputs.labelIndex).reshape(shape.vocab, n);
  // The mean over all T·B slots; LossGraph seeds its gradient with T·B / (counted positions of the step).
  const loss = ctx.crossEntropy(logits, labels);
  return loss.markLoss().markOutput();
}
