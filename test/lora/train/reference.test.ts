// The float64 training reference (reference.ts) checked against llama.cpp itself: its logits,
// without and with an adapter, match LlamaContext's logits on the CPU within 1e-4 relative, on
// models with grouped-query attention (kvHeads < heads), separate and tied outputs. That pins
// the conventions the trainer's gradients are then checked against (RoPE pairs, GQA head
// mapping, LoRA scale). The rest checks the reference's own loss and finite differences.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "../../harness.ts";
import { type GgufSpec, encodeGguf, makeTinyLora, makeTinyModel, parseGguf, parseSafetensors } from "../../../src/formats/index.ts";
import { seededRandom } from "../../../src/formats/tiny/random.ts";
import { LlamaContext, LlamaModel, LoraAdapter } from "../../../src/llama/index.ts";
import { permuteRopeRows } from "../../../src/lora/convert/rope-permute.ts";
import { hfProjections, hfRowsToGguf, loadTrainFixture, readPeftAdapter } from "./fixture.ts";
import { llamaUnavailable, writeFixture } from "../../llama/fixtures.ts";
import { mergeLora } from "../../llama/lora-reference.ts";
import {
  type ReferenceLora, type ReferenceSequence, allCounted, cloneLora, crossEntropy, finiteDifferenceGrad, referenceLogits, referenceLoraFromSpec,
  referenceLoss, referenceModel, withRandomNorms,
} from "./reference.ts";

// f32 KV cache, no flash attention: nothing rounded to f16 (test/llama/numerics.ts explains).
const contextOptions = { contextSize: 64, threads: 2, cacheType: "f32", flashAttention: false } as const;

function randomTokens(seed: number, count: number, vocab: number): Int32Array {
  const random = seededRandom(seed);
  return Int32Array.from({ length: count }, () => Math.floor(random() * vocab));
}

/** llama.cpp's logits for every position of `tokens`, on the CPU, with `adapter` (a GGUF spec) at scale 1. */
async function llamaLogits(modelPath: string, adapterPath: string | undefined, tokens: Int32Array): Promise<Float32Array[]> {
  const model = await LlamaModel.load(modelPath, { gpuLayers: 0 });
  const context = LlamaContext.create(model, contextOptions);
  const adapter = adapterPath === undefined ? undefined : await LoraAdapter.load(model, adapterPath);
  try {
    if (adapter !== undefined) context.setAdapters([{ adapter, scale: 1 }]);
    context.evaluate(tokens, { allLogits: true });
    return Array.from(tokens, (_, i) => context.logits(i).slice());
  } finally {
    context.dispose();
    adapter?.dispose();
    model.dispose();
  }
}

function norm(values: Iterable<number>): number {
  let sum = 0;
  for (const v of values) sum += v * v;
  return Math.sqrt(sum);
}

/** ‖actual − expected‖ / ‖expected‖ over every position, and the largest |Δ| against the largest |expected|. */
function compare(actual: ArrayLike<number>[], expected: Float64Array[]): { relative: number; maxRelative: number } {
  let diff = 0;
  let ref = 0;
  let maxDiff = 0;
  let maxRef = 0;
  expected.forEach((row, i) => {
    row.forEach((e, j) => {
      const d = actual[i]![j]! - e;
      diff += d * d;
      ref += e * e;
      maxDiff = Math.max(maxDiff, Math.abs(d));
      maxRef = Math.max(maxRef, Math.abs(e));
    });
  });
  return { relative: Math.sqrt(diff / ref), maxRelative: maxDiff / maxRef };
}

interface Case {
  readonly name: string;
  readonly spec: GgufSpec;
  readonly adapter: GgufSpec;
}

function makeCase(name: string, options: { heads: number; kvHeads: number; tied: boolean; seed: number; targets?: ("q" | "k" | "v" | "o" | "gate" | "up" | "down")[] }): Case {
  const full = withRandomNorms(makeTinyModel({ seed: options.seed, layers: 2, embd: 64, heads: options.heads, kvHeads: options.kvHeads, ff: 96 }), options.seed);
  const spec = options.tied ? { ...full, tensors: full.tensors.filter((t) => t.name !== "output.weight") } : full;
  const adapter = makeTinyLora(parseGguf(encodeGguf(spec)), { rank: 4, alpha: 8, seed: options.seed + 100, ...(options.targets ? { targets: options.targets } : {}) });
  return { name, spec, adapter };
}

const cases: Case[] = [
  makeCase("GQA 4 heads / 2 KV heads, separate output", { heads: 4, kvHeads: 2, tied: false, seed: 31 }),
  makeCase("GQA 4 heads / 1 KV head, tied output, LoRA on q, v, down", { heads: 4, kvHeads: 1, tied: true, seed: 32, targets: ["q", "v", "down"] }),
  makeCase("8 heads / 8 KV heads (head size 8)", { heads: 8, kvHeads: 8, tied: false, seed: 33 }),
];

for (const c of cases) {
  test(`reference logits match llama.cpp on the CPU (‖Δ‖/‖ref‖ ≤ 1e-5, max |Δ| ≤ 1e-4·max |ref|), without and with LoRA: ${c.name}`, async () => {
    const model = referenceModel(c.spec);
    const lora = referenceLoraFromSpec(c.adapter);
    const tokens = randomTokens(7, 24, model.vocab);
    const slug = c.name.replace(/[^a-z0-9]+/gi, "-");
    const modelPath = writeFixture(`train-ref-${slug}.gguf`, c.spec);
    const adapterPath = writeFixture(`train-ref-${slug}-lora.gguf`, c.adapter);

    const base = referenceLogits(model, undefined, tokens);
    const adapted = referenceLogits(model, lora, tokens);
    const fromLlamaBase = await llamaLogits(modelPath, undefined, tokens);
    const fromLlamaAdapted = await llamaLogits(modelPath, adapterPath, tokens);
    for (const [what, ours, theirs] of [["base", base, fromLlamaBase], ["with LoRA", adapted, fromLlamaAdapted]] as const) {
      const { relative, maxRelative } = compare(theirs, ours);
      // Measured: ≈2e-7 (f32 rounding in llama.cpp); swapping two KV heads' k rows gives 0.3.
      assert.ok(relative <= 1e-5 && maxRelative <= 1e-4, `${what}: ‖llama.cpp − reference‖/‖reference‖ = ${relative}, max |Δ|/max |ref| = ${maxRelative}`);
    }
    // The adapter moves the logits far more than the bound, so the comparison is not vacuous.
    assert.ok(compare(adapted, base).relative > 1e-2, `the adapter changes the logits by only ${compare(adapted, base).relative}`);
  }, { skip: llamaUnavailable, timeout: 60_000 });
}

const gqa = cases[0]!;
const model = referenceModel(gqa.spec);
const lora = referenceLoraFromSpec(gqa.adapter);
const batch: ReferenceSequence[] = [allCounted(randomTokens(1, 9, model.vocab)), allCounted(randomTokens(2, 6, model.vocab))];

test("reference: the LoRA pairs, rank and alpha read from a makeTinyLora adapter", () => {
  assert.equal(lora.rank, 4);
  assert.equal(lora.alpha, 8);
  assert.equal(lora.pairs.size, 14);
  const k = lora.pairs.get("blk.1.attn_k.weight")!;
  assert.equal(k.a.length, 64 * 4);
  assert.equal(k.b.length, 4 * 32);
  assert.equal(model.kvHeads, 2);
  assert.equal(model.headDim, 16);
  assert.equal(model.tied, false);
});

test("reference: an adapter is the model with W + (alpha/r)·B·A merged", () => {
  const merged = referenceModel(mergeLora(gqa.spec, [{ spec: gqa.adapter, alpha: 8, scale: 1 }]));
  const tokens = batch[0]!.tokens;
  const { relative } = compare(referenceLogits(merged, undefined, tokens), referenceLogits(model, lora, tokens));
  // mergeLora stores the merged weights as f32.
  assert.ok(relative < 1e-6, `merged vs adapted: ${relative}`);
});

test("reference: B = 0 gives the base logits exactly", () => {
  const zero = cloneLora(lora);
  for (const pair of zero.pairs.values()) pair.b.fill(0);
  const tokens = batch[0]!.tokens;
  assert.deepEqual(referenceLogits(model, zero, tokens), referenceLogits(model, undefined, tokens));
});

test("reference: the loss is the mean cross-entropy over every counted position of the batch", () => {
  let total = 0;
  let count = 0;
  for (const { tokens } of batch) {
    const logits = referenceLogits(model, lora, tokens);
    for (let i = 0; i + 1 < tokens.length; i++) {
      const row = logits[i]!;
      const max = Math.max(...row);
      const logSum = Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0)) + max;
      total += logSum - row[tokens[i + 1]!]!;
      count++;
    }
  }
  assert.equal(count, 8 + 5);
  const loss = referenceLoss(model, lora, batch);
  assert.ok(Math.abs(loss - total / count) <= 1e-12 * Math.abs(loss), `${loss} vs ${total / count}`);
  // Random weights over a vocabulary of ~300: near ln(vocab).
  assert.ok(loss > 0.5 * Math.log(model.vocab) && loss < 2 * Math.log(model.vocab), `loss ${loss}`);
});

test("reference: positions that are not counted do not enter the loss; a counted mask as long as the tokens ignores its last entry", () => {
  const tokens = batch[0]!.tokens;
  const counted = new Uint8Array(tokens.length - 1);
  counted[3] = 1;
  counted[5] = 1;
  const logits = referenceLogits(model, lora, tokens);
  const expected = (crossEntropy(logits[3]!, tokens[4]!) + crossEntropy(logits[5]!, tokens[6]!)) / 2;
  assert.ok(Math.abs(referenceLoss(model, lora, [{ tokens, counted }]) - expected) < 1e-12);
  const long = new Uint8Array(tokens.length);
  long.set(counted);
  long[tokens.length - 1] = 1;
  assert.equal(referenceLoss(model, lora, [{ tokens, counted: long }]), referenceLoss(model, lora, [{ tokens, counted }]));
  // A sequence with nothing counted contributes nothing.
  const none = { tokens: batch[1]!.tokens, counted: new Uint8Array(batch[1]!.tokens.length - 1) };
  assert.equal(referenceLoss(model, lora, [{ tokens, counted }, none]), referenceLoss(model, lora, [{ tokens, counted }]));
  assert.throws(() => referenceLoss(model, lora, [none]), RangeError);
  assert.throws(() => referenceLoss(model, lora, [allCounted(Int32Array.of(1, model.vocab))]), RangeError);
});

test("reference: finite differences agree with the directional derivative along a random direction", () => {
  // Full gradient of one pair's B; then (L(θ + εd) − L(θ − εd)) / 2ε must equal g·d.
  const name = "blk.0.attn_k.weight";
  const small: ReferenceSequence[] = [allCounted(batch[1]!.tokens)];
  const grads = finiteDifferenceGrad(model, lora, small, name, "b");
  assert.equal(grads.length, lora.pairs.get(name)!.b.length);
  assert.deepEqual(grads.map((g) => g.index), grads.map((_, i) => i));
  const random = seededRandom(5);
  const direction = Float64Array.from(grads, () => random() * 2 - 1);
  const expected = grads.reduce((s, g, i) => s + g.grad * direction[i]!, 0);
  const eps = 1e-5;
  const moved = (sign: number): ReferenceLora => {
    const copy = cloneLora(lora);
    const b = copy.pairs.get(name)!.b;
    for (let i = 0; i < b.length; i++) b[i]! += sign * eps * direction[i]!;
    return copy;
  };
  const directional = (referenceLoss(model, moved(1), small) - referenceLoss(model, moved(-1), small)) / (2 * eps);
  assert.ok(Math.abs(directional - expected) <= 1e-6 * Math.abs(expected) + 1e-9, `directional ${directional} vs g·d ${expected}`);
  assert.ok(norm(grads.map((g) => g.grad)) > 1e-4, "the gradient should not vanish");
});

test("reference: sampled finite differences pick distinct seeded indices, agree across step sizes and leave the adapter unchanged", () => {
  const name = "blk.1.ffn_gate.weight";
  const before = lora.pairs.get(name)!.a.slice();
  const small: ReferenceSequence[] = [allCounted(batch[1]!.tokens)];
  const first = finiteDifferenceGrad(model, lora, small, name, "a", { samples: 12, seed: 3 });
  const again = finiteDifferenceGrad(model, lora, small, name, "a", { samples: 12, seed: 3, h: 1e-4 });
  assert.equal(first.length, 12);
  assert.equal(new Set(first.map((g) => g.index)).size, 12);
  assert.deepEqual(first.map((g) => g.index), [...first.map((g) => g.index)].sort((x, y) => x - y));
  assert.deepEqual(again.map((g) => g.index), first.map((g) => g.index));
  const scale = Math.max(...first.map((g) => Math.abs(g.grad)));
  first.forEach((g, i) => assert.ok(Math.abs(g.grad - again[i]!.grad) <= 1e-6 * scale, `index ${g.index}: ${g.grad} vs ${again[i]!.grad}`));
  assert.deepEqual(lora.pairs.get(name)!.a, before);
  assert.throws(() => finiteDifferenceGrad(model, lora, small, "blk.9.attn_q.weight", "a"), /no pair/);
});

// The PyTorch + PEFT fixture (fixture.ts): its inputs agree with each other and with the
// reference, and PEFT's recorded step-0 losses (once the GPU machine has made them) agree with
// the reference's.
const fixture = loadTrainFixture();

test("fixture: the HF checkpoint is base.gguf with q/k rows in HF order (the converter's permutation undoes it)", () => {
  const bytes = new Uint8Array(readFileSync(join(fixture.hfDir, "model.safetensors")));
  const header = parseSafetensors(bytes);
  const hf = new Map(header.tensors.map((t) => [t.name, t]));
  const values = (name: string) => {
    const t = hf.get(name)!;
    const begin = header.dataOffset + t.dataOffsets[0];
    return new Float32Array(bytes.slice(begin, begin + t.byteLength).buffer);
  };
  const base = new Map(fixture.base.tensors.map((t) => [t.name, new Float32Array(t.data.slice().buffer)]));
  const config = JSON.parse(readFileSync(join(fixture.hfDir, "config.json"), "utf8")) as Record<string, number>;
  const { model: m } = fixture;
  assert.deepEqual(
    [config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.num_key_value_heads, config.intermediate_size, config.vocab_size, config.head_dim],
    [m.embd, m.layers, m.heads, m.kvHeads, m.ff, m.vocab, m.headDim],
  );
  assert.ok(m.kvHeads < m.heads);
  assert.equal(header.tensors.length, 3 + 9 * m.layers);
  assert.deepEqual(values("model.embed_tokens.weight"), base.get("token_embd.weight"));
  assert.deepEqual(values("lm_head.weight"), base.get("output.weight"));
  assert.deepEqual(values("model.norm.weight"), base.get("output_norm.weight"));
  for (let l = 0; l < m.layers; l++) {
    assert.deepEqual(values(`model.layers.${l}.input_layernorm.weight`), base.get(`blk.${l}.attn_norm.weight`));
    assert.deepEqual(values(`model.layers.${l}.post_attention_layernorm.weight`), base.get(`blk.${l}.ffn_norm.weight`));
    for (const [module, name] of Object.entries(hfProjections)) {
      const gguf = base.get(`blk.${l}.${name}.weight`)!;
      const fromHf = values(`model.layers.${l}.${module}.weight`);
      const rope = name === "attn_q" || name === "attn_k";
      assert.deepEqual(rope ? hfRowsToGguf(fromHf, m.embd, m.headDim) : fromHf, gguf, `${module} of layer ${l}`);
      if (rope) {
        assert.notDeepEqual(fromHf, gguf);
        // src/lora's converter (the code under test elsewhere) maps HF rows to GGUF the same way.
        const heads = name === "attn_q" ? m.heads : m.kvHeads;
        const converted = permuteRopeRows(new Uint8Array(fromHf.buffer), fromHf.length / m.embd, m.embd * 4, heads);
        assert.deepEqual(new Float32Array(converted.slice().buffer), gguf);
      }
    }
  }
});

test("fixture: the PEFT adapter is adapter.gguf (B rows of q/k in HF order), A Kaiming-uniform, B non-zero", () => {
  const peft = readPeftAdapter(fixture.peftDir, fixture.model);
  assert.equal(peft.rank, 4);
  assert.equal(peft.alpha, 8);
  assert.equal(fixture.lora.rank, 4);
  assert.equal(fixture.lora.alpha, 8);
  assert.equal(peft.pairs.size, 7 * fixture.model.layers);
  for (const [name, pair] of fixture.lora.pairs) {
    assert.deepEqual(peft.pairs.get(name), pair, name);
    const nIn = pair.a.length / 4;
    assert.ok(pair.a.every((v) => Math.abs(v) <= 1 / Math.sqrt(nIn)), `${name}: A within ±1/√${nIn}`);
    assert.ok(pair.b.some((v) => v !== 0), `${name}: B non-zero`);
  }
  const config = JSON.parse(readFileSync(join(fixture.peftDir, "adapter_config.json"), "utf8")) as Record<string, unknown>;
  assert.equal(config.lora_dropout, 0);
  assert.deepEqual(config.target_modules, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]);
});

test("fixture: tokens.json holds steps × batch sequences in the vocabulary and the reference's step-0 losses", () => {
  const { tokens, model: m } = fixture;
  assert.equal(tokens.batches.length, tokens.steps);
  assert.ok(tokens.steps >= 10);
  for (const batch of tokens.batches) {
    assert.equal(batch.length, tokens.batch);
    for (const s of batch) {
      assert.equal(s.length, tokens.length);
      assert.ok(s.every((t) => Number.isInteger(t) && t >= 0 && t < m.vocab));
    }
  }
  assert.deepEqual(tokens.optimizer, { name: "adamw", lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 });
  // Math.exp/sin/cos may differ in the last bit between JavaScript engines.
  const initial = referenceLoss(m, fixture.lora, fixture.batch(0));
  const base = referenceLoss(m, undefined, fixture.batch(0));
  assert.ok(Math.abs(initial - tokens.expected.initialLoss) <= 1e-12 * initial, `${initial} vs ${tokens.expected.initialLoss}`);
  assert.ok(Math.abs(base - tokens.expected.baseLoss) <= 1e-12 * base, `${base} vs ${tokens.expected.baseLoss}`);
  assert.notEqual(tokens.expected.initialLoss, tokens.expected.baseLoss);
});

test("fixture: llama.cpp with base.gguf and adapter.gguf gives the reference's step-0 loss within 1e-5", async () => {
  let total = 0;
  let count = 0;
  for (const { tokens } of fixture.batch(0)) {
    const logits = await llamaLogits(fixture.basePath, fixture.adapterPath, tokens);
    for (let i = 0; i + 1 < tokens.length; i++) {
      total += crossEntropy(Float64Array.from(logits[i]!), tokens[i + 1]!);
      count++;
    }
  }
  const loss = total / count;
  const expected = fixture.tokens.expected.initialLoss;
  assert.ok(Math.abs(loss - expected) <= 1e-5 * expected, `llama.cpp ${loss} vs reference ${expected}`);
}, { skip: llamaUnavailable, timeout: 60_000 });

const noReference = fixture.reference === undefined
  ? "fixture/reference/ is not there yet: run fixture/make_peft_reference.py on the GPU machine and commit its output" : undefined;

test("fixture: PEFT's step-0 losses match the float64 reference; its runs cover every step and saved their adapters", () => {
  const reference = fixture.reference!;
  const expected = fixture.tokens.expected;
  const tolerance: Record<string, number> = { float32: 1e-5, float64: 1e-6 };
  assert.ok("float32" in reference.json.runs, "the float32 run is there");
  for (const [run, result] of Object.entries(reference.json.runs)) {
    assert.equal(result.losses.length, fixture.tokens.steps, run);
    const bound = tolerance[run] ?? 1e-5;
    assert.ok(Math.abs(result.losses[0]! - expected.initialLoss) <= bound * expected.initialLoss, `${run}: PEFT ${result.losses[0]} vs reference ${expected.initialLoss}`);
    if (result.base_loss !== undefined) assert.ok(Math.abs(result.base_loss - expected.baseLoss) <= bound * expected.baseLoss, `${run} base: ${result.base_loss} vs ${expected.baseLoss}`);
    const trained = reference.adapters.get(run);
    assert.ok(trained !== undefined, `${run}: trained adapter ${result.adapter} is missing`);
    // Trained for 12 steps: every pair moved, and the loss on step 0's batch went down.
    for (const [name, pair] of fixture.lora.pairs) assert.notDeepEqual(trained.pairs.get(name)!.b, pair.b, `${run}: ${name} B did not move`);
    if (result.final_loss !== undefined) assert.ok(result.final_loss < result.losses[0]!, `${run}: final ${result.final_loss} vs first ${result.losses[0]}`);
    // The trained adapter, run through the float64 reference, gives PEFT's loss after training.
    if (result.final_loss !== undefined) {
      const ours = referenceLoss(fixture.model, trained, fixture.batch(0));
      assert.ok(Math.abs(ours - result.final_loss) <= bound * result.final_loss, `${run}: reference with PEFT's trained adapter ${ours} vs PEFT ${result.final_loss}`);
    }
  }
}, { skip: noReference });
