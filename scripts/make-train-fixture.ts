// Makes the inputs of the PyTorch + PEFT training fixture (test/lora/train/fixture/; see
// test/lora/train/fixture.ts for the layout): a tiny llama as GGUF and as a Hugging Face
// checkpoint, an initial adapter as GGUF and as PEFT, the token batches and the float64
// reference's step-0 losses. Seeded: a rerun writes the same bytes (with Node; on Bun the
// expected losses in tokens.json differ in the 16th digit, its Math.exp rounding differently).
//   npx tsx scripts/make-train-fixture.ts [OUT_DIR]   (default test/lora/train/fixture)
// Then, on the GPU machine: python3 OUT_DIR/make_peft_reference.py OUT_DIR/reference
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  type GgufSpec, type GgufTensorSpec, type SafetensorsTensorSpec, GgmlType, encodeGguf, encodeSafetensors, makeTinyModel,
} from "../src/formats/index.ts";
import { seededRandom, uniformValues } from "../src/formats/tiny/random.ts";
import { TRAIN_FIXTURE_DIR, type TrainFixtureTokens, ggufRowsToHf, hfProjections } from "../test/lora/train/fixture.ts";
import { allCounted, referenceLoraFromSpec, referenceLoss, referenceModel, withRandomNorms } from "../test/lora/train/reference.ts";

const out = process.argv[2] ?? TRAIN_FIXTURE_DIR;

const shape = { layers: 2, embd: 64, heads: 4, kvHeads: 2, ff: 128, vocab: 304, ctx: 256 };
const headDim = shape.embd / shape.heads;
const rank = 4;
const alpha = 8;
const steps = 12;
const batchSize = 2;
const length = 33;
const optimizer = { name: "adamw", lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 } as const;
/** B ~ U(−bScale, bScale): non-zero, so the first steps already move (PEFT's own init has B = 0). */
const bScale = 0.05;

const base: GgufSpec = withRandomNorms(makeTinyModel({ seed: 2024, ...shape, type: "f32" }), 2025);
const tensors = new Map(base.tensors.map((t) => [t.name, t]));
const f32 = (t: GgufTensorSpec) => new Float32Array(t.data.slice().buffer);
const bytes = (v: Float32Array) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

// The Hugging Face checkpoint. Linear weights [out, in] and the embedding [vocab, hidden] have
// the byte layout of their GGUF counterparts; q and k rows go back to HF's order.
const hf: SafetensorsTensorSpec[] = [];
const hfTensor = (name: string, values: Float32Array, dims: number[]) => hf.push({ name, dtype: "F32", shape: dims, data: bytes(values) });
const matrixDims = (t: GgufTensorSpec) => [t.shape[1]!, t.shape[0]!];
hfTensor("model.embed_tokens.weight", f32(tensors.get("token_embd.weight")!), matrixDims(tensors.get("token_embd.weight")!));
for (let l = 0; l < shape.layers; l++) {
  hfTensor(`model.layers.${l}.input_layernorm.weight`, f32(tensors.get(`blk.${l}.attn_norm.weight`)!), [shape.embd]);
  for (const [module, gguf] of Object.entries(hfProjections)) {
    const t = tensors.get(`blk.${l}.${gguf}.weight`)!;
    const rope = gguf === "attn_q" || gguf === "attn_k";
    hfTensor(`model.layers.${l}.${module}.weight`, rope ? ggufRowsToHf(f32(t), t.shape[0]!, headDim) : f32(t), matrixDims(t));
  }
  hfTensor(`model.layers.${l}.post_attention_layernorm.weight`, f32(tensors.get(`blk.${l}.ffn_norm.weight`)!), [shape.embd]);
}
hfTensor("model.norm.weight", f32(tensors.get("output_norm.weight")!), [shape.embd]);
hfTensor("lm_head.weight", f32(tensors.get("output.weight")!), matrixDims(tensors.get("output.weight")!));

const config = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: shape.embd,
  intermediate_size: shape.ff,
  num_hidden_layers: shape.layers,
  num_attention_heads: shape.heads,
  num_key_value_heads: shape.kvHeads,
  head_dim: headDim,
  rms_norm_eps: 1e-5,
  rope_theta: 10000.0,
  vocab_size: shape.vocab,
  max_position_embeddings: shape.ctx,
  tie_word_embeddings: false,
  hidden_act: "silu",
  attention_bias: false,
  attention_dropout: 0.0,
  mlp_bias: false,
  pretraining_tp: 1,
  initializer_range: 0.02,
  bos_token_id: 1,
  eos_token_id: 2,
  use_cache: false,
  torch_dtype: "float32",
};

// The initial adapter: A Kaiming-uniform as PEFT makes it (kaiming_uniform_ with a = √5:
// U(−1/√in, 1/√in)), B small and non-zero; every projection of every layer.
const random = seededRandom(2026);
const gguf: GgufTensorSpec[] = [];
const peft: SafetensorsTensorSpec[] = [];
for (let l = 0; l < shape.layers; l++) {
  for (const [module, name] of Object.entries(hfProjections)) {
    const t = tensors.get(`blk.${l}.${name}.weight`)!;
    const [nIn, nOut] = t.shape as [number, number];
    const a = uniformValues(random, rank * nIn, 1 / Math.sqrt(nIn));
    const b = uniformValues(random, nOut * rank, bScale);
    gguf.push({ name: `${t.name}.lora_a`, type: GgmlType.F32, shape: [nIn, rank], data: bytes(a) });
    gguf.push({ name: `${t.name}.lora_b`, type: GgmlType.F32, shape: [rank, nOut], data: bytes(b) });
    const rope = name === "attn_q" || name === "attn_k";
    const prefix = `base_model.model.model.layers.${l}.${module}`;
    peft.push({ name: `${prefix}.lora_A.weight`, dtype: "F32", shape: [rank, nIn], data: bytes(a) });
    peft.push({ name: `${prefix}.lora_B.weight`, dtype: "F32", shape: [nOut, rank], data: bytes(rope ? ggufRowsToHf(b, rank, headDim) : b) });
  }
}
const adapter: GgufSpec = {
  metadata: [
    ["general.architecture", { type: "string", value: "llama" }],
    ["general.type", { type: "string", value: "adapter" }],
    ["general.name", { type: "string", value: "gpuffi training fixture: initial adapter" }],
    ["adapter.type", { type: "string", value: "lora" }],
    ["adapter.lora.alpha", { type: "f32", value: alpha }],
  ],
  tensors: gguf,
};
const targetModules = Object.keys(hfProjections).map((m) => m.split(".")[1]!);
const peftConfig = {
  alpha_pattern: {},
  base_model_name_or_path: null,
  bias: "none",
  fan_in_fan_out: false,
  inference_mode: true,
  init_lora_weights: true,
  layers_pattern: null,
  layers_to_transform: null,
  lora_alpha: alpha,
  lora_dropout: 0.0,
  modules_to_save: null,
  peft_type: "LORA",
  r: rank,
  rank_pattern: {},
  revision: null,
  target_modules: targetModules,
  task_type: "CAUSAL_LM",
  use_dora: false,
  use_rslora: false,
};

// Token batches: windows of a seeded random 97-token "text" at random offsets, so there is
// something to learn and the loss falls over the steps.
const text = Array.from({ length: 97 }, () => Math.floor(random() * shape.vocab));
const batches = Array.from({ length: steps }, () =>
  Array.from({ length: batchSize }, () => {
    const offset = Math.floor(random() * text.length);
    return Array.from({ length }, (_, i) => text[(offset + i) % text.length]!);
  }),
);

const model = referenceModel(base);
const first = batches[0]!.map((s) => allCounted(Int32Array.from(s)));
const tokens: TrainFixtureTokens = {
  steps, batch: batchSize, length, optimizer, rank, alpha, targets: targetModules, batches,
  expected: { initialLoss: referenceLoss(model, referenceLoraFromSpec(adapter), first), baseLoss: referenceLoss(model, undefined, first) },
};

const files: [string, Uint8Array | string][] = [
  ["base.gguf", encodeGguf(base)],
  ["hf/config.json", `${JSON.stringify(config, null, 2)}\n`],
  ["hf/model.safetensors", encodeSafetensors({ tensors: hf, metadata: { format: "pt" } })],
  ["adapter.gguf", encodeGguf(adapter)],
  ["peft/adapter_config.json", `${JSON.stringify(peftConfig, null, 2)}\n`],
  ["peft/adapter_model.safetensors", encodeSafetensors({ tensors: peft, metadata: { format: "pt" } })],
  // One batch per line keeps the file readable and diffs small.
  ["tokens.json", `${JSON.stringify({ ...tokens, batches: "@" }, null, 2).replace('"@"', `[\n${batches.map((b) => `    ${JSON.stringify(b)}`).join(",\n")}\n  ]`)}\n`],
];
for (const [name, data] of files) {
  const path = join(out, name);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, data);
  console.log(`${name.padEnd(32)} ${(typeof data === "string" ? Buffer.byteLength(data) : data.length).toString().padStart(8)} bytes`);
}
console.log(`step-0 loss (float64 reference): ${tokens.expected.initialLoss} with the adapter, ${tokens.expected.baseLoss} without`);
