// gpuffi lora convert: a PEFT adapter written here exactly as PEFT saves one (adapter_config.json
// keys, "base_model.model.…lora_A.weight" names, [r, in]/[out, r] shapes, safetensors with
// {"format": "pt"}), converted and checked tensor by tensor and through llama.cpp.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { test } from "../harness.ts";
import {
  type GgufSpec, type GgufTensorSpec, type SafetensorsDtype, type SafetensorsTensorSpec, GgmlType, InvalidOptionError,
  bf16ToF32Array, f16ToF32Array, f32ToBf16Array, f32ToF16Array, openGguf, writeGgufFile, writeSafetensorsFile,
} from "../../src/formats/index.ts";
import { seededRandom, uniformValues } from "../../src/formats/tiny/random.ts";
import { LoraShapeError, UnknownModuleError, UnsupportedAdapterError, convertPeftAdapter, mergeLoraSpecs, permuteRopeRows } from "../../src/lora/index.ts";
import { llamaUnavailable, tinyModel } from "../llama/fixtures.ts";
import { assertLogitsClose, inTempDir, maxAbsDifference, promptLogits, runCli } from "./tools-fixtures.ts";

const HEADS = 2;
const KV_HEADS = 1;

/** HF module path → llama.cpp tensor, as the test's own table (independent of the library's). */
function moduleTable(layers: number): [string, string][] {
  const perLayer: [string, string][] = [
    ["self_attn.q_proj", "attn_q"], ["self_attn.k_proj", "attn_k"], ["self_attn.v_proj", "attn_v"], ["self_attn.o_proj", "attn_output"],
    ["mlp.gate_proj", "ffn_gate"], ["mlp.up_proj", "ffn_up"], ["mlp.down_proj", "ffn_down"],
  ];
  return [
    ["lm_head", "output.weight"],
    ["model.embed_tokens", "token_embd.weight"],
    ...Array.from({ length: layers }, (_, l) => perLayer.map(([hf, gguf]): [string, string] => [`model.layers.${l}.${hf}`, `blk.${l}.${gguf}.weight`])).flat(),
  ];
}

interface HfPair {
  readonly module: string;
  readonly target: string;
  /** PEFT's A ([r, in]) and B ([out, r]) as the values the file holds. */
  readonly a: Float32Array;
  readonly b: Float32Array;
  readonly rank: number;
  readonly inputs: number;
  readonly outputs: number;
}

interface PeftAdapter {
  readonly config: Record<string, unknown>;
  readonly tensors: SafetensorsTensorSpec[];
  readonly pairs: HfPair[];
}

const encoders: Record<"F32" | "F16" | "BF16", (v: Float32Array) => [Uint8Array, Float32Array]> = {
  F32: (v) => [new Uint8Array(v.buffer), v],
  F16: (v) => { const bits = f32ToF16Array(v); return [new Uint8Array(bits.buffer), f16ToF32Array(bits)]; },
  BF16: (v) => { const bits = f32ToBf16Array(v); return [new Uint8Array(bits.buffer), bf16ToF32Array(bits)]; },
};

/** The PEFT config keys (peft 0.13 LoraConfig) with their defaults, overridable per test. */
function peftConfig(rank: number, alpha: number, targets: string[], overrides: Record<string, unknown>): Record<string, unknown> {
  return {
    alpha_pattern: {}, auto_mapping: null, base_model_name_or_path: "gpuffi/tiny-llama", bias: "none", fan_in_fan_out: false,
    inference_mode: true, init_lora_weights: true, layer_replication: null, layers_pattern: null, layers_to_transform: null,
    loftq_config: {}, lora_alpha: alpha, lora_dropout: 0.05, megatron_config: null, megatron_core: "megatron.core",
    modules_to_save: null, peft_type: "LORA", r: rank, rank_pattern: {}, revision: null, target_modules: targets,
    task_type: "CAUSAL_LM", use_dora: false, use_rslora: false, ...overrides,
  };
}

/** A PEFT adapter for the tiny model with seeded random A and B (B non-zero, unlike PEFT's init, so it has an effect). */
function makePeft(options: { rank: number; alpha: number; seed: number; dtype?: "F32" | "F16" | "BF16"; ranks?: Record<string, number>; config?: Record<string, unknown> }): PeftAdapter {
  const base = tinyModel().spec;
  const shapes = new Map(base.tensors.map((t) => [t.name, t.shape]));
  const random = seededRandom(options.seed);
  const dtype = options.dtype ?? "F32";
  const tensors: SafetensorsTensorSpec[] = [];
  const pairs: HfPair[] = [];
  for (const [module, target] of moduleTable(2)) {
    const rank = Object.entries(options.ranks ?? {}).find(([key]) => module.endsWith(key))?.[1] ?? options.rank;
    const [nIn, nOut] = shapes.get(target)! as [number, number];
    const embedding = target === "token_embd.weight";
    // Linear: A [r, in], B [out, r]. Embedding (nn.Embedding(vocab, dim)): A [r, vocab], B [dim, r].
    const [inputs, outputs] = embedding ? [nOut, nIn] : [nIn, nOut];
    const [bytesA, a] = encoders[dtype](uniformValues(random, rank * inputs, 0.3));
    const [bytesB, b] = encoders[dtype](uniformValues(random, outputs * rank, 0.3));
    const [nameA, nameB] = embedding ? ["lora_embedding_A", "lora_embedding_B"] : ["lora_A.weight", "lora_B.weight"];
    tensors.push({ name: `base_model.model.${module}.${nameA}`, dtype: dtype as SafetensorsDtype, shape: [rank, inputs], data: bytesA });
    tensors.push({ name: `base_model.model.${module}.${nameB}`, dtype: dtype as SafetensorsDtype, shape: [outputs, rank], data: bytesB });
    pairs.push({ module, target, a, b, rank, inputs, outputs });
  }
  const targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "embed_tokens", "lm_head"];
  return { config: peftConfig(options.rank, options.alpha, targets, options.config ?? {}), tensors, pairs };
}

async function writePeft(dir: string, adapter: PeftAdapter, extra: SafetensorsTensorSpec[] = []): Promise<string> {
  const peft = join(dir, "peft");
  await mkdir(peft, { recursive: true });
  await writeFile(join(peft, "adapter_config.json"), JSON.stringify(adapter.config, null, 2));
  await writeSafetensorsFile(join(peft, "adapter_model.safetensors"), { metadata: { format: "pt" }, tensors: [...adapter.tensors, ...extra] });
  return peft;
}

/** llama.cpp row r of a q/k projection with head size d is HF row (h, t, i) → (h, i, t): reshape(h, 2, d/2).swapaxes(1, 2). */
function ropeOrder(b: Float32Array, outputs: number, rank: number, heads: number): Float32Array {
  const d = outputs / heads;
  const out = new Float32Array(b.length);
  for (let h = 0; h < heads; h++) {
    for (let t = 0; t < 2; t++) {
      for (let i = 0; i < d / 2; i++) out.set(b.subarray((h * d + t * (d / 2) + i) * rank, (h * d + t * (d / 2) + i + 1) * rank), (h * d + i * 2 + t) * rank);
    }
  }
  return out;
}

function transposed(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c]!;
  return out;
}

const bytes = (v: Float32Array) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);

/** What the converter must write for `adapter` (f32), built here by hand; `permute: false` leaves q/k in HF order. */
function expectedGguf(adapter: PeftAdapter, alpha: number, permute = true): GgufSpec {
  const sorted = [...adapter.pairs].sort((x, y) => (`base_model.model.${x.module}` < `base_model.model.${y.module}` ? -1 : 1));
  const tensors: GgufTensorSpec[] = sorted.flatMap(({ module, target, a, b, rank, inputs, outputs }) => {
    const heads = module.endsWith("q_proj") ? HEADS : module.endsWith("k_proj") ? KV_HEADS : undefined;
    const lora_b = permute && heads !== undefined ? ropeOrder(b, outputs, rank, heads) : b;
    const embedding = target === "token_embd.weight";
    return [
      { name: `${target}.lora_a`, type: GgmlType.F32, shape: embedding ? [rank, inputs] : [inputs, rank], data: bytes(embedding ? transposed(a, rank, inputs) : a) },
      { name: `${target}.lora_b`, type: GgmlType.F32, shape: [rank, outputs], data: bytes(lora_b) },
    ];
  });
  return { metadata: [["adapter.type", { type: "string", value: "lora" }], ["adapter.lora.alpha", { type: "f32", value: alpha }]], tensors };
}

async function readAll(path: string): Promise<{ alpha: unknown; architecture: unknown; tensors: { name: string; type: number; shape: readonly number[]; data: Uint8Array }[] }> {
  await using file = await openGguf(path);
  const tensors = [];
  for (const t of file.tensors) tensors.push({ name: t.name, type: t.type, shape: t.shape, data: await file.readTensor(t.name) });
  return { alpha: file.metadata.get("adapter.lora.alpha")?.value, architecture: file.metadata.get("general.architecture")?.value, tensors };
}

test("convert: tensor for tensor what convert_lora_to_gguf.py writes (names, order, shapes, q/k rows, embedding A transposed)", () => inTempDir(async (dir) => {
  const adapter = makePeft({ rank: 4, alpha: 8, seed: 21 });
  const out = join(dir, "adapter.gguf");
  const result = await convertPeftAdapter(await writePeft(dir, adapter), out, { base: tinyModel().path });
  assert.deepEqual(result, { pairs: 2 + 2 * 7, alpha: 8, architecture: "llama" });
  const written = await readAll(out);
  assert.equal(written.alpha, 8);
  assert.equal(written.architecture, "llama");
  const expected = expectedGguf(adapter, 8).tensors;
  assert.deepEqual(written.tensors.map((t) => t.name), expected.map((t) => t.name));
  for (const [i, t] of written.tensors.entries()) {
    assert.deepEqual({ ...t, data: [...t.data] }, { ...expected[i]!, data: [...expected[i]!.data] }, t.name);
  }
}));

test("convert without a base: --heads/--kv-heads order q/k rows as the base's head counts do", () => inTempDir(async (dir) => {
  const adapter = makePeft({ rank: 3, alpha: 6, seed: 28 });
  const peft = await writePeft(dir, adapter);
  const [withBase, withHeads] = [join(dir, "base.gguf"), join(dir, "heads.gguf")];
  await convertPeftAdapter(peft, withBase, { base: tinyModel().path });
  assert.deepEqual(await convertPeftAdapter(peft, withHeads, { heads: HEADS, kvHeads: KV_HEADS }), { pairs: 16, alpha: 6, architecture: "llama" });
  const [a, b] = [await readAll(withBase), await readAll(withHeads)];
  assert.deepEqual(b.tensors.map((t) => ({ ...t, data: [...t.data] })), a.tensors.map((t) => ({ ...t, data: [...t.data] })));
  assert.deepEqual(b.tensors.map((t) => [...t.data]), expectedGguf(adapter, 6).tensors.map((t) => [...t.data]));
  // With the base too, agreeing counts are fine.
  await convertPeftAdapter(peft, join(dir, "both.gguf"), { base: tinyModel().path, heads: HEADS, kvHeads: KV_HEADS });
}));

test("convert: head counts that cannot be right are refused, naming what is wrong", () => inTempDir(async (dir) => {
  const peft = await writePeft(dir, makePeft({ rank: 2, alpha: 4, seed: 29 }));
  const out = join(dir, "out.gguf");
  const refused: [Parameters<typeof convertPeftAdapter>[2], (e: unknown) => boolean][] = [
    // q has 64 rows, k 32 (HEADS = 2 query heads and KV_HEADS = 1 key/value head of 32); k comes first (sorted PEFT names).
    [{ heads: 3, kvHeads: 1 }, (e) => e instanceof LoraShapeError && e.message === `tensor "blk.0.attn_q.weight": its 64 rows do not split into 3 heads of even size (wrong head count?)`],
    [{ heads: 2, kvHeads: 2 }, (e) => e instanceof LoraShapeError && e.message === `tensor "blk.0.attn_q.weight": 2 heads of 32 rows, but blk.0.attn_k.weight has heads of 16 (wrong head counts?)`],
    [{ heads: 2, kvHeads: 5 }, (e) => e instanceof LoraShapeError && /32 rows do not split into 5 heads of even size \(wrong key\/value head count\?\)/.test(e.message)],
    [{ kvHeads: 1 }, (e) => e instanceof InvalidOptionError && e.message === "kvHeads: goes with heads (the query head count)"],
    [{ heads: 0 }, (e) => e instanceof InvalidOptionError && e.message === "heads: must be a positive integer, got 0"],
    [{ heads: 2, kvHeads: 1.5 }, (e) => e instanceof InvalidOptionError && /kvHeads: must be a positive integer, got 1.5/.test(e.message)],
    [{ base: tinyModel().path, heads: 2, kvHeads: 2 }, (e) => e instanceof InvalidOptionError && /2 query and 2 key\/value heads, but the base model has 2 and 1/.test(e.message)],
    [{}, (e) => e instanceof UnsupportedAdapterError && e.message.includes("pass the base GGUF (--base) or --heads N [--kv-heads N]")],
  ];
  for (const [options, check] of refused) await assert.rejects(convertPeftAdapter(peft, out, options), check, JSON.stringify(options));
  assert.equal(existsSync(out), false);
}));

test("convert: base + converted adapter through llama.cpp gives the logits of the model merged in TS (1e-4)", () => inTempDir(async (dir) => {
  const adapter = makePeft({ rank: 4, alpha: 6, seed: 22 });
  const out = join(dir, "adapter.gguf");
  await convertPeftAdapter(await writePeft(dir, adapter), out, { base: tinyModel().path });
  const merged = async (name: string, permute: boolean) => {
    const path = join(dir, name);
    await writeGgufFile(path, await mergeLoraSpecs(tinyModel().spec, [{ spec: expectedGguf(adapter, 6, permute), scale: 0.75 }]));
    return promptLogits(path);
  };
  const adapted = await promptLogits(tinyModel().path, [{ path: out, scale: 0.75 }]);
  assertLogitsClose(adapted, await merged("merged.gguf", true), "adapter vs merged");
  // Both checks have teeth: the adapter changes the output, and q/k rows left in HF order would not match.
  assert.ok(maxAbsDifference(adapted, await promptLogits(tinyModel().path)) > 1e-2, "the adapter should change the logits");
  assert.ok(maxAbsDifference(adapted, await merged("unpermuted.gguf", false)) > 1e-2, "q/k in HF order should give other logits");
}), { skip: llamaUnavailable, timeout: 60_000 });

test("convert: BF16 and F16 adapters keep their dtype; mixed A/B become F32; --outtype converts", () => inTempDir(async (dir) => {
  for (const dtype of ["BF16", "F16"] as const) {
    const adapter = makePeft({ rank: 2, alpha: 4, seed: 23, dtype });
    const out = join(dir, `${dtype}.gguf`);
    await convertPeftAdapter(await writePeft(join(dir, dtype), adapter), out, { base: tinyModel().path });
    const written = await readAll(out);
    assert.ok(written.tensors.every((t) => t.type === GgmlType[dtype]), dtype);
    // Same values as the f32 expectation (conversion back to f32 is exact for these types).
    const asF32 = await readAll(await (async () => {
      const path = join(dir, `${dtype}-f32.gguf`);
      await convertPeftAdapter(join(dir, dtype, "peft"), path, { base: tinyModel().path, outType: "f32" });
      return path;
    })());
    assert.deepEqual(asF32.tensors.map((t) => [...t.data]), expectedGguf(adapter, 4).tensors.map((t) => [...t.data]));
  }
  const mixed = makePeft({ rank: 2, alpha: 4, seed: 24 });
  const [bytesB] = encoders.BF16(new Float32Array(mixed.tensors[1]!.data.buffer.slice(0)));
  mixed.tensors[1] = { ...mixed.tensors[1]!, dtype: "BF16", data: bytesB };
  await convertPeftAdapter(await writePeft(join(dir, "mixed"), mixed), join(dir, "mixed.gguf"), { base: tinyModel().path });
  const written = await readAll(join(dir, "mixed.gguf"));
  assert.ok(written.tensors.every((t) => t.type === GgmlType.F32));
  await convertPeftAdapter(join(dir, "mixed", "peft"), join(dir, "f16.gguf"), { base: tinyModel().path, outType: "f16" });
  assert.ok((await readAll(join(dir, "f16.gguf"))).tensors.every((t) => t.type === GgmlType.F16));
}));

test("convert: rank_pattern ranks are kept per tensor; rsLoRA folds √r into alpha", () => inTempDir(async (dir) => {
  const adapter = makePeft({ rank: 4, alpha: 8, seed: 25, ranks: { "v_proj": 2 }, config: { rank_pattern: { "v_proj": 2 } } });
  await convertPeftAdapter(await writePeft(dir, adapter), join(dir, "a.gguf"), { base: tinyModel().path });
  const written = await readAll(join(dir, "a.gguf"));
  assert.deepEqual(written.tensors.find((t) => t.name === "blk.1.attn_v.weight.lora_a")?.shape, [64, 2]);
  assert.deepEqual(written.tensors.find((t) => t.name === "blk.1.attn_q.weight.lora_a")?.shape, [64, 4]);
  const rs = makePeft({ rank: 4, alpha: 8, seed: 25, config: { use_rslora: true } });
  const result = await convertPeftAdapter(await writePeft(join(dir, "rs"), rs), join(dir, "rs.gguf"), { base: tinyModel().path });
  assert.equal(result.alpha, 16);
}));

test("convert: refuses DoRA, modules_to_save, unknown modules, alpha/rank patterns it cannot map, and a wrong base", () => inTempDir(async (dir) => {
  const base = tinyModel().path;
  let n = 0;
  const attempt = async (adapter: PeftAdapter, extra: SafetensorsTensorSpec[] = [], basePath: string | null = base) =>
    convertPeftAdapter(await writePeft(join(dir, String(n++)), adapter, extra), join(dir, `${n}.gguf`), basePath === null ? {} : { base: basePath });
  const plain = (config: Record<string, unknown> = {}) => makePeft({ rank: 2, alpha: 4, seed: 26, config });
  const vector = (name: string): SafetensorsTensorSpec => ({ name, dtype: "F32", shape: [64], data: new Uint8Array(256) });
  await assert.rejects(attempt(plain({ use_dora: true })), (e) => e instanceof UnsupportedAdapterError && /DoRA/.test(e.message));
  await assert.rejects(attempt(plain(), [vector("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector")]), UnsupportedAdapterError);
  await assert.rejects(attempt(plain({ modules_to_save: ["lm_head"] })), (e) => e instanceof UnsupportedAdapterError && e.feature === "modules_to_save");
  await assert.rejects(attempt(plain(), [vector("base_model.model.model.layers.0.self_attn.rotary.lora_A.weight")]), UnknownModuleError);
  await assert.rejects(attempt(plain(), [vector("base_model.model.model.embed_tokens.weight")]), (e) => e instanceof UnknownModuleError && /added tokens/.test(e.message));
  await assert.rejects(attempt(plain({ alpha_pattern: { "q_proj": 16 } })), (e) => e instanceof UnsupportedAdapterError && e.feature === "alpha_pattern");
  await assert.rejects(attempt(plain({ rank_pattern: { "down_proj": 3 } })), (e) => e instanceof LoraShapeError && /rank 2, but/.test(e.message));
  await assert.rejects(attempt(plain({ peft_type: "IA3" })), UnsupportedAdapterError);
  await assert.rejects(attempt(plain(), [], null), (e) => e instanceof UnsupportedAdapterError && /head counts/.test(e.message));
  const other = join(dir, "other.gguf");
  const { makeTinyModel } = await import("../../src/formats/index.ts");
  await writeGgufFile(other, makeTinyModel({ embd: 32, ff: 64 }));
  await assert.rejects(attempt(plain(), [], other), (e) => e instanceof LoraShapeError && /wrong base/.test(e.message));
}));

test("rope row order: permuteRopeRows matches the reshape/swapaxes definition for any head layout", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), (heads, halfHead, rank) => {
    const rows = heads * halfHead * 2;
    const values = Float32Array.from({ length: rows * rank }, (_, i) => i);
    const permuted = new Float32Array(permuteRopeRows(bytes(values), rows, rank * 4, heads).buffer);
    assert.deepEqual(permuted, ropeOrder(values, rows, rank, heads));
  }));
});

test("cli: gpuffi lora convert writes the adapter and reports refusals with exit code 1", () => inTempDir(async (dir) => {
  const peft = await writePeft(dir, makePeft({ rank: 2, alpha: 4, seed: 27 }));
  const ok = await runCli("lora", "convert", peft, join(dir, "a.gguf"), "--base", tinyModel().path, "--outtype", "f16");
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /16 pairs/);
  const dora = await writePeft(join(dir, "dora"), makePeft({ rank: 2, alpha: 4, seed: 27, config: { use_dora: true } }));
  const refused = await runCli("lora", "convert", dora, join(dir, "b.gguf"), "--base", tinyModel().path);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /DoRA/);
  assert.equal((await runCli("lora", "convert", peft)).code, 2);
  const heads = await runCli("lora", "convert", peft, join(dir, "c.gguf"), "--heads", String(HEADS), "--kv-heads", String(KV_HEADS));
  assert.equal(heads.code, 0, heads.err);
  const noHeads = await runCli("lora", "convert", peft, join(dir, "d.gguf"));
  assert.equal(noHeads.code, 1);
  assert.match(noHeads.err, /--heads N \[--kv-heads N\]/);
  for (const [args, message] of [[["--kv-heads", "1"], /--kv-heads goes with --heads/], [["--heads", "0"], /--heads needs an integer ≥ 1, got 0/], [["--heads", "two"], /--heads needs an integer, got "two"/]] as const) {
    const usage = await runCli("lora", "convert", peft, join(dir, "e.gguf"), ...args);
    assert.equal(usage.code, 2);
    assert.match(usage.err, message);
  }
}));
