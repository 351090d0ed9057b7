// The tiny llama model and LoRA generators, checked against what llama.cpp's loader requires
// (keys with their exact types, every tensor name and shape, nothing extra), and for
// reproducibility. Loading them in llama.cpp itself comes with the llama.cpp bindings.
import assert from "node:assert/strict";
import fc from "fast-check";
import { test } from "../harness.ts";
import {
  GgmlType,
  type GgufHeader,
  InvalidOptionError,
  type TinyModelOptions,
  encodeGguf,
  loraTargets,
  makeTinyLora,
  makeTinyModel,
  parseGguf,
  plainValue,
  tinyModelDefaults,
} from "../../src/formats/index.ts";

function build(options: TinyModelOptions = {}): { bytes: Uint8Array; header: GgufHeader } {
  const bytes = encodeGguf(makeTinyModel(options));
  return { bytes, header: parseGguf(bytes) };
}

/** The tensors llama.cpp's llama architecture creates, with their ggml shapes. */
function expectedTensors(o: Required<TinyModelOptions>, nVocab: number): Map<string, number[]> {
  const kv = (o.embd / o.heads) * o.kvHeads;
  const tensors = new Map<string, number[]>([["token_embd.weight", [o.embd, nVocab]]]);
  for (let i = 0; i < o.layers; i++) {
    tensors.set(`blk.${i}.attn_norm.weight`, [o.embd]);
    tensors.set(`blk.${i}.attn_q.weight`, [o.embd, o.embd]);
    tensors.set(`blk.${i}.attn_k.weight`, [o.embd, kv]);
    tensors.set(`blk.${i}.attn_v.weight`, [o.embd, kv]);
    tensors.set(`blk.${i}.attn_output.weight`, [o.embd, o.embd]);
    tensors.set(`blk.${i}.ffn_norm.weight`, [o.embd]);
    tensors.set(`blk.${i}.ffn_gate.weight`, [o.embd, o.ff]);
    tensors.set(`blk.${i}.ffn_up.weight`, [o.embd, o.ff]);
    tensors.set(`blk.${i}.ffn_down.weight`, [o.ff, o.embd]);
  }
  tensors.set("output_norm.weight", [o.embd]);
  tensors.set("output.weight", [o.embd, nVocab]);
  return tensors;
}

function typed(header: GgufHeader, key: string): { type: string; value: unknown } {
  const v = header.metadata.get(key);
  assert.ok(v !== undefined, `missing ${key}`);
  return v.type === "array" ? { type: `${v.value.type}[]`, value: plainValue(v) } : { type: v.type, value: v.value };
}

const sizes = fc.record({
  layers: fc.integer({ min: 1, max: 3 }),
  kvHeads: fc.integer({ min: 1, max: 2 }),
  groups: fc.integer({ min: 1, max: 2 }),
  headSize: fc.constantFrom(2, 4, 8, 16),
  ff: fc.integer({ min: 1, max: 40 }),
  ctx: fc.integer({ min: 1, max: 4096 }),
  type: fc.constantFrom("f32" as const, "f16" as const),
  seed: fc.integer(),
}).map(({ groups, headSize, kvHeads, ...rest }) => ({ ...rest, kvHeads, heads: kvHeads * groups, embd: kvHeads * groups * headSize }));

test("tiny model: the keys, value types, tensors and shapes llama.cpp's loader requires", () => {
  fc.assert(fc.property(sizes, (options) => {
    const o = { ...tinyModelDefaults, ...options };
    const { header } = build(o);
    const tokens = typed(header, "tokenizer.ggml.tokens").value as string[];
    const n = tokens.length;
    const required: Record<string, { type: string; value: unknown }> = {
      "general.architecture": { type: "string", value: "llama" },
      "llama.context_length": { type: "u32", value: o.ctx },
      "llama.embedding_length": { type: "u32", value: o.embd },
      "llama.block_count": { type: "u32", value: o.layers },
      "llama.feed_forward_length": { type: "u32", value: o.ff },
      "llama.attention.head_count": { type: "u32", value: o.heads },
      "llama.attention.head_count_kv": { type: "u32", value: o.kvHeads },
      "llama.rope.dimension_count": { type: "u32", value: o.embd / o.heads },
      "llama.attention.layer_norm_rms_epsilon": { type: "f32", value: Math.fround(1e-5) },
      "tokenizer.ggml.model": { type: "string", value: "llama" },
      "tokenizer.ggml.bos_token_id": { type: "u32", value: 1 },
      "tokenizer.ggml.eos_token_id": { type: "u32", value: 2 },
      "tokenizer.ggml.unknown_token_id": { type: "u32", value: 0 },
    };
    for (const [key, expected] of Object.entries(required)) assert.deepEqual(typed(header, key), expected, key);
    assert.equal(typed(header, "tokenizer.ggml.scores").type, "f32[]");
    assert.equal((typed(header, "tokenizer.ggml.scores").value as number[]).length, n);
    assert.deepEqual(typed(header, "tokenizer.ggml.token_type").type, "i32[]");
    const types = typed(header, "tokenizer.ggml.token_type").value as number[];
    assert.equal(types.length, n);

    const expected = expectedTensors(o, n);
    assert.deepEqual(new Map(header.tensors.map((t) => [t.name, [...t.shape]])), expected);
    for (const t of header.tensors) {
      const isMatrix = t.shape.length === 2;
      assert.equal(t.type, isMatrix && o.type === "f16" ? GgmlType.F16 : GgmlType.F32, t.name);
    }
  }), { numRuns: 40 });
});

test("tiny model vocabulary: unique tokens, specials, all 256 byte tokens, word pieces", () => {
  const { header } = build();
  const tokens = typed(header, "tokenizer.ggml.tokens").value as string[];
  const types = typed(header, "tokenizer.ggml.token_type").value as number[];
  assert.equal(new Set(tokens).size, tokens.length, "llama.cpp asserts unique token texts");
  assert.deepEqual(tokens.slice(0, 3), ["<unk>", "<s>", "</s>"]);
  assert.deepEqual(types.slice(0, 3), [2, 3, 3]);
  for (let b = 0; b < 256; b++) {
    const i = tokens.indexOf(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
    assert.ok(i >= 0 && types[i] === 6, `byte token ${b}`);
  }
  assert.ok(tokens.includes("\u2581") && tokens.includes("\u2581the"));
  assert.ok(tokens.length > 259 && tokens.length < 400);
});

test("tiny model: same seed gives identical bytes, another seed other weights, fast with defaults", () => {
  const start = performance.now();
  const a = build({ seed: 7 }).bytes;
  assert.ok(performance.now() - start < 1000, "defaults must generate in well under a second");
  assert.deepEqual(build({ seed: 7 }).bytes, a);
  const b = build({ seed: 8 }).bytes;
  assert.equal(b.length, a.length);
  assert.notDeepEqual(b, a);
  assert.deepEqual(build({ seed: 7, type: "f16" }).bytes, build({ seed: 7, type: "f16" }).bytes);
});

test("tiny model vocabulary pads to a requested size with unique fillers", () => {
  const { header } = build({ vocab: 1000 });
  const tokens = typed(header, "tokenizer.ggml.tokens").value as string[];
  assert.equal(tokens.length, 1000);
  assert.equal(new Set(tokens).size, 1000);
  assert.equal(typed(header, "llama.vocab_size").value, 1000);
  assert.deepEqual(header.tensors.find((t) => t.name === "output.weight")!.shape, [64, 1000]);
});

test("tiny model rejects inconsistent options", () => {
  for (const bad of [{ heads: 3 }, { kvHeads: 3, heads: 4 }, { layers: 0 }, { embd: 6, heads: 2 }, { ff: 1.5 }, { type: "q4" as "f32" }, { vocab: 100 }, { vocab: 1000.5 }]) {
    assert.throws(() => makeTinyModel(bad), InvalidOptionError, JSON.stringify(bad));
  }
});

test("tiny LoRA: llama.cpp's adapter keys and lora_a [n_in, r] / lora_b [r, n_out] per target", () => {
  const targetNames = Object.keys(loraTargets) as (keyof typeof loraTargets)[];
  fc.assert(fc.property(sizes, fc.integer({ min: 1, max: 8 }), fc.double({ min: 0.5, max: 64, noNaN: true }), fc.subarray(targetNames, { minLength: 1 }), (options, rank, alpha, targets) => {
    const base = build(options).header;
    const lora = parseGguf(encodeGguf(makeTinyLora(base, { rank, alpha, targets })));
    assert.deepEqual(typed(lora, "general.type"), { type: "string", value: "adapter" });
    assert.deepEqual(typed(lora, "adapter.type"), { type: "string", value: "lora" });
    assert.deepEqual(typed(lora, "adapter.lora.alpha"), { type: "f32", value: Math.fround(alpha) });
    assert.deepEqual(typed(lora, "general.architecture"), { type: "string", value: "llama" });
    const baseShapes = new Map(base.tensors.map((t) => [t.name, t.shape]));
    const wanted = base.tensors.filter((t) => targets.some((x) => t.name.endsWith(`.${loraTargets[x]}.weight`))).map((t) => t.name);
    assert.deepEqual(lora.tensors.map((t) => t.name).sort(), wanted.flatMap((n) => [`${n}.lora_a`, `${n}.lora_b`]).sort());
    for (const name of wanted) {
      const [nIn, nOut] = baseShapes.get(name)!;
      assert.deepEqual(lora.tensors.find((t) => t.name === `${name}.lora_a`)!.shape, [nIn, rank]);
      assert.deepEqual(lora.tensors.find((t) => t.name === `${name}.lora_b`)!.shape, [rank, nOut]);
    }
  }), { numRuns: 30 });
});

test("tiny LoRA is reproducible and rejects bad options", () => {
  const base = build().header;
  const make = (seed: number) => encodeGguf(makeTinyLora(base, { rank: 2, alpha: 4, seed }));
  assert.deepEqual(make(3), make(3));
  assert.notDeepEqual(make(3), make(4));
  assert.throws(() => makeTinyLora(base, { rank: 0, alpha: 1 }), InvalidOptionError);
  assert.throws(() => makeTinyLora(base, { rank: 1, alpha: NaN }), InvalidOptionError);
  assert.throws(() => makeTinyLora(base, { rank: 1, alpha: 1, targets: ["qq" as "q"] }), InvalidOptionError);
  assert.throws(() => makeTinyLora({ ...base, metadata: new Map() }, { rank: 1, alpha: 1 }), InvalidOptionError);
  for (const invocationTokens of [[], [-1], [1.5], [304], [2 ** 32]]) {
    assert.throws(() => makeTinyLora(base, { rank: 1, alpha: 1, invocationTokens }), InvalidOptionError, `invocation tokens ${invocationTokens.join(",")}`);
  }
});
