// The adapter as the trainer keeps it (LoraWeights), its GGUF form, and training checkpoints:
// exact round trips (property tests), F16/BF16 adapters read as f32, every refusal typed, atomic
// replacement, checkpoints loadable by llama.cpp, the base identity and the resume check.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { copyFile, mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { test } from "../../harness.ts";
import {
  type GgufTensorSpec, type LoraTarget, GgmlType, encodeGguf, encodeSafetensors, f16ToF32Array, f32ToBf16Array, f32ToF16Array, bf16ToF32Array,
  loraTargets, makeTinyModel, openSafetensors,
} from "../../../src/formats/index.ts";
import {
  type LoraWeights, type TrainingState, CheckpointError, LoraShapeError, ResumeMismatchError, UnsupportedAdapterError,
  baseIdentity, checkResumable, encodeLoraGguf, readCheckpoint, readLoraGguf, writeCheckpoint,
} from "../../../src/lora/index.ts";
import { llamaUnavailable, tinyLora, tinyModel } from "../../llama/fixtures.ts";
import { inTempDir, promptLogits } from "../tools-fixtures.ts";

const allTargets = Object.keys(loraTargets) as LoraTarget[];
const bits = (values: Float32Array) => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

/** Arbitrary adapters: 1–2 layers, any non-empty subset of the targets, small shapes, any f32 values (NaN payloads too). */
const arbitraryWeights: fc.Arbitrary<LoraWeights> = fc
  .record({
    rank: fc.integer({ min: 1, max: 4 }),
    alpha: fc.float({ noNaN: true, noDefaultInfinity: true }),
    layers: fc.integer({ min: 1, max: 2 }),
    targets: fc.subarray(allTargets, { minLength: 1 }),
    architecture: fc.constantFrom("llama", "qwen2", "mistral"),
    shapes: fc.array(fc.tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 })), { minLength: 14, maxLength: 14 }),
  })
  .chain(({ rank, alpha, layers, targets, architecture, shapes }) => {
    const slots = Array.from({ length: layers }, (_, l) => targets.map((t, i) => ({ weight: `blk.${l}.${loraTargets[t]}.weight`, shape: shapes[l * 7 + i]! }))).flat();
    return fc.tuple(...slots.map(({ weight, shape: [nIn, nOut] }) =>
      fc.record({
        weight: fc.constant(weight),
        nIn: fc.constant(nIn),
        nOut: fc.constant(nOut),
        a: fc.float32Array({ minLength: nIn * rank, maxLength: nIn * rank }),
        b: fc.float32Array({ minLength: rank * nOut, maxLength: rank * nOut }),
      }))).map((pairs) => ({ architecture, rank, alpha, targets, pairs }));
  });

function assertSameWeights(actual: LoraWeights, expected: LoraWeights): void {
  assert.equal(actual.architecture, expected.architecture);
  assert.equal(actual.rank, expected.rank);
  assert.equal(actual.alpha, Math.fround(expected.alpha), "alpha is stored as f32");
  assert.deepEqual(actual.targets, allTargets.filter((t) => expected.targets.includes(t)));
  assert.equal(actual.pairs.length, expected.pairs.length);
  actual.pairs.forEach((pair, i) => {
    const want = expected.pairs[i]!;
    assert.deepEqual([pair.weight, pair.nIn, pair.nOut], [want.weight, want.nIn, want.nOut]);
    assert.deepEqual(bits(pair.a), bits(want.a), `${pair.weight}.lora_a`);
    assert.deepEqual(bits(pair.b), bits(want.b), `${pair.weight}.lora_b`);
  });
}

/** AdamW moments for every tensor of `weights`, from a seed. */
function momentsFor(weights: LoraWeights, seed: number): Map<string, { m: Float32Array; v: Float32Array }> {
  let x = seed;
  const next = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5;
  const fill = (n: number) => Float32Array.from({ length: n }, next);
  return new Map(weights.pairs.flatMap((p) => [
    [`${p.weight}.lora_a`, { m: fill(p.a.length), v: fill(p.a.length).map(Math.abs) }],
    [`${p.weight}.lora_b`, { m: fill(p.b.length), v: fill(p.b.length).map(Math.abs) }],
  ]));
}

function stateFor(weights: LoraWeights, overrides: Partial<TrainingState> = {}): TrainingState {
  return {
    step: 12, epoch: 1, index: 5, seed: 42,
    options: { rank: weights.rank, alpha: weights.alpha, lr: 1e-4, betas: [0.9, 0.999], targets: weights.targets, schedule: { kind: "cosine", warmup: 3 } },
    baseIdentity: "gguf:123:sha256:ab", dataFingerprint: "sha256:cd", moments: momentsFor(weights, 7), optimizer: "adamw",
    schedule: { lastLr: 9.5e-5 },
    ...overrides,
  };
}

test("LoraWeights → GGUF → LoraWeights is exact for any adapter (property)", async () => {
  await fc.assert(fc.asyncProperty(arbitraryWeights, async (weights) => {
    const bytes = encodeLoraGguf(weights, [["general.name", { type: "string", value: "trained" }]]);
    assertSameWeights(await readLoraGguf(bytes), weights);
  }), { numRuns: 60 });
});

test("encodeLoraGguf writes llama.cpp's adapter format, tensor for tensor as makeTinyLora", async () => {
  const spec = tinyLora("checkpoint", { rank: 3, alpha: 6, seed: 4, targets: ["q", "k", "down"] }).spec;
  const weights = await readLoraGguf(encodeGguf(spec));
  assert.deepEqual(weights.targets, ["q", "k", "down"]);
  assert.equal(weights.rank, 3);
  assert.equal(weights.pairs[0]!.weight, "blk.0.attn_q.weight");
  // Same tensors, same bytes; the metadata keys and values llama.cpp reads.
  const again = await (async () => {
    const { openGguf } = await import("../../../src/formats/index.ts");
    await using file = await openGguf(encodeLoraGguf(weights));
    const tensors = [];
    for (const t of file.tensors) tensors.push({ name: t.name, type: t.type, shape: t.shape, data: await file.readTensor(t.name) });
    return { metadata: file.metadata, tensors };
  })();
  assert.deepEqual(again.tensors.map((t) => [t.name, t.type, t.shape, [...t.data]]), spec.tensors.map((t) => [t.name, t.type, t.shape, [...t.data]]));
  assert.deepEqual(
    ["general.architecture", "general.type", "adapter.type", "adapter.lora.alpha"].map((k) => again.metadata.get(k)),
    [{ type: "string", value: "llama" }, { type: "string", value: "adapter" }, { type: "string", value: "lora" }, { type: "f32", value: 6 }],
  );
});

test("readLoraGguf: F16 and BF16 A/B are read as f32; alpha missing reads as 0, as llama.cpp does", async () => {
  const a = Float32Array.from({ length: 8 * 2 }, (_, i) => (i - 7) / 3);
  const b = Float32Array.from({ length: 2 * 4 }, (_, i) => (i + 1) / 7);
  const f16 = f32ToF16Array(a);
  const bf16 = f32ToBf16Array(b);
  const tensors: GgufTensorSpec[] = [
    { name: "blk.0.attn_v.weight.lora_a", type: GgmlType.F16, shape: [8, 2], data: new Uint8Array(f16.buffer) },
    { name: "blk.0.attn_v.weight.lora_b", type: GgmlType.BF16, shape: [2, 4], data: new Uint8Array(bf16.buffer) },
  ];
  const weights = await readLoraGguf(encodeGguf({
    metadata: [["general.architecture", { type: "string", value: "llama" }], ["general.type", { type: "string", value: "adapter" }], ["adapter.type", { type: "string", value: "lora" }]],
    tensors,
  }));
  assert.equal(weights.alpha, 0);
  assert.deepEqual(weights.targets, ["v"]);
  assert.deepEqual([...weights.pairs[0]!.a], [...f16ToF32Array(f16)]);
  assert.deepEqual([...weights.pairs[0]!.b], [...bf16ToF32Array(bf16)]);
});

test("readLoraGguf and encodeLoraGguf refuse what LoraWeights cannot hold, with typed errors", async () => {
  const meta: [string, { type: "string"; value: string }][] = [["general.architecture", { type: "string", value: "llama" }], ["general.type", { type: "string", value: "adapter" }], ["adapter.type", { type: "string", value: "lora" }]];
  const f32 = (name: string, shape: number[]): GgufTensorSpec => ({ name, type: GgmlType.F32, shape, data: new Uint8Array(4 * shape[0]! * shape[1]!) });
  const read = (tensors: GgufTensorSpec[], metadata = meta) => readLoraGguf(encodeGguf({ metadata, tensors }));
  await assert.rejects(read([f32("blk.0.attn_q.weight.lora_a", [8, 2])]), (e) => e instanceof LoraShapeError && /lora_b is missing/.test(e.message));
  await assert.rejects(read([f32("blk.0.attn_q.weight.lora_a", [8, 2]), f32("blk.0.attn_q.weight.lora_b", [3, 8])]), (e) => e instanceof LoraShapeError && /different ranks/.test(e.message));
  await assert.rejects(read([f32("blk.0.attn_q.weight.lora_a", [8, 2]), f32("blk.0.attn_q.weight.lora_b", [2, 8]), f32("blk.0.attn_k.weight.lora_a", [8, 4]), f32("blk.0.attn_k.weight.lora_b", [4, 8])]),
    (e) => e instanceof LoraShapeError && /rank 4, but blk\.0\.attn_q\.weight has rank 2/.test(e.message));
  await assert.rejects(read([f32("output.weight.lora_a", [8, 2]), f32("output.weight.lora_b", [2, 8])]), (e) => e instanceof UnsupportedAdapterError && /output\.weight" is not one of the projections/.test(e.message));
  await assert.rejects(read([f32("blk.0.attn_q.weight", [8, 8])]), (e) => e instanceof UnsupportedAdapterError && /not a \.lora_a\/\.lora_b tensor/.test(e.message));
  await assert.rejects(read([{ name: "blk.0.attn_q.weight.lora_a", type: GgmlType.Q8_0, shape: [32, 2], data: new Uint8Array(2 * 34) }, f32("blk.0.attn_q.weight.lora_b", [2, 8])]),
    (e) => e instanceof UnsupportedAdapterError && /Q8_0; only F32, F16 and BF16/.test(e.message));
  await assert.rejects(readLoraGguf(encodeGguf(makeTinyModel({ seed: 1 }))), (e) => e instanceof UnsupportedAdapterError && /not a LoRA adapter/.test(e.message));
  await assert.rejects(read([], meta), (e) => e instanceof UnsupportedAdapterError && /holds no LoRA tensors/.test(e.message));

  const good: LoraWeights = { architecture: "llama", rank: 2, alpha: 4, targets: ["q"], pairs: [{ weight: "blk.0.attn_q.weight", nIn: 3, nOut: 5, a: new Float32Array(6), b: new Float32Array(10) }] };
  assert.ok(encodeLoraGguf(good).length > 0);
  const bad = (change: Partial<LoraWeights>) => () => encodeLoraGguf({ ...good, ...change });
  assert.throws(bad({ rank: 0 }), (e) => e instanceof LoraShapeError && /rank must be a positive integer/.test(e.message));
  assert.throws(bad({ targets: ["k"] }), (e) => e instanceof UnsupportedAdapterError && /a q projection, which is not among the targets/.test(e.message));
  assert.throws(bad({ pairs: [{ ...good.pairs[0]!, a: new Float32Array(5) }] }), (e) => e instanceof LoraShapeError && /lora_a.*needs 3·2 = 6 f32 values/.test(e.message));
  assert.throws(bad({ pairs: [good.pairs[0]!, good.pairs[0]!] }), (e) => e instanceof LoraShapeError && /two pairs/.test(e.message));
  assert.throws(bad({ pairs: [{ ...good.pairs[0]!, weight: "blk.0.attn_norm.weight" }] }), (e) => e instanceof UnsupportedAdapterError && /not one of the projections/.test(e.message));
  assert.throws(bad({ alpha: Number.NaN }), (e) => e instanceof UnsupportedAdapterError && /alpha: must be a finite number/.test(e.message));
  assert.throws(() => encodeLoraGguf(good, [["adapter.lora.alpha", { type: "f32", value: 1 }]]), (e) => e instanceof UnsupportedAdapterError && /written from the adapter itself/.test(e.message));
});

test("checkpoints: write → read is exact for any adapter and state, with and without moments (property)", () => inTempDir(async (dir) => {
  let run = 0;
  await fc.assert(fc.asyncProperty(arbitraryWeights, fc.boolean(), fc.nat({ max: 1e6 }), fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), async (weights, adam, step, seed) => {
    const path = join(dir, `ckpt-${run++}`);
    const state = stateFor(weights, { step, seed, ...(adam ? {} : { moments: new Map(), optimizer: "sgd", schedule: undefined }) });
    await writeCheckpoint(path, weights, state);
    const read = await readCheckpoint(path);
    assertSameWeights(read.weights, weights);
    assert.deepEqual({ ...read.state, moments: undefined }, { ...JSON.parse(JSON.stringify({ ...state, moments: undefined })), moments: undefined });
    assert.equal(read.state.moments.size, state.moments.size);
    for (const [name, { m, v }] of state.moments) {
      assert.deepEqual(bits(read.state.moments.get(name)!.m), bits(m), `${name}.m`);
      assert.deepEqual(bits(read.state.moments.get(name)!.v), bits(v), `${name}.v`);
    }
    assert.deepEqual((await readdir(dir)).filter((f) => f.endsWith(".tmp") || f.endsWith(".old")), []);
  }), { numRuns: 25 });
}));

test("checkpoints: optimizer.safetensors holds m and v per tensor in PyTorch shapes and string metadata", () => inTempDir(async (dir) => {
  const weights = await readLoraGguf(tinyLora("checkpoint-gqa", { rank: 2, alpha: 4, seed: 9, targets: ["q", "k"] }).path);
  await writeCheckpoint(join(dir, "c"), weights, stateFor(weights));
  await using file = await openSafetensors(join(dir, "c", "optimizer.safetensors"));
  const k = weights.pairs.find((p) => p.weight === "blk.0.attn_k.weight")!;
  assert.deepEqual(file.tensor("blk.0.attn_k.weight.lora_a.m").shape, [2, k.nIn]);
  assert.deepEqual(file.tensor("blk.0.attn_k.weight.lora_b.v").shape, [k.nOut, 2]);
  assert.equal(file.tensors.length, weights.pairs.length * 4);
  const meta = file.header.metadata!;
  assert.deepEqual([meta.format, meta.step, meta.epoch, meta.index, meta.seed, meta.optimizer], ["gpuffi-lora-checkpoint", "12", "1", "5", "42", "adamw"]);
  assert.deepEqual(JSON.parse(meta.options!).betas, [0.9, 0.999]);
  assert.equal(meta.base_identity, "gguf:123:sha256:ab");
}));

test("checkpoints: the adapter.gguf of a checkpoint is what llama.cpp applies (same logits as the adapter it came from)", () => inTempDir(async (dir) => {
  const fixture = tinyLora("checkpoint-llama", { rank: 4, alpha: 8, seed: 3 });
  const weights = await readLoraGguf(fixture.path);
  await writeCheckpoint(join(dir, "c"), weights, stateFor(weights));
  const expected = await promptLogits(tinyModel().path, [{ path: fixture.path, scale: 1 }]);
  const actual = await promptLogits(tinyModel().path, [{ path: join(dir, "c", "adapter.gguf"), scale: 1 }]);
  assert.deepEqual(bits(actual), bits(expected));
}), { skip: llamaUnavailable });

test("checkpoints: a new checkpoint replaces the old one whole; a refused one leaves it untouched", () => inTempDir(async (dir) => {
  const weights = await readLoraGguf(tinyLora("checkpoint-gqa", { rank: 2, alpha: 4, seed: 9, targets: ["q", "k"] }).path);
  const path = join(dir, "c");
  await writeCheckpoint(path, weights, stateFor(weights, { step: 1 }));
  await writeFile(join(path, "stray.txt"), "left by someone");
  await writeCheckpoint(path, weights, stateFor(weights, { step: 2, moments: new Map() }));
  assert.deepEqual((await readdir(path)).sort(), ["adapter.gguf", "optimizer.safetensors"]);
  assert.equal((await readCheckpoint(path)).state.step, 2);
  assert.deepEqual((await readdir(dir)).sort(), ["c"]);

  const refused = async (state: TrainingState, pattern: RegExp) => {
    await assert.rejects(writeCheckpoint(path, weights, state), (e) => e instanceof CheckpointError && e.code === "ERR_TRAIN_CHECKPOINT" && pattern.test(e.message));
    assert.equal((await readCheckpoint(path)).state.step, 2);
    assert.deepEqual((await readdir(dir)).sort(), ["c"]);
  };
  await refused(stateFor(weights, { step: -1 }), /step must be a non-negative integer/);
  await refused(stateFor(weights, { options: { lr: Number.NaN } }), /options\.lr is NaN, which JSON cannot carry/);
  await refused(stateFor(weights, { options: { nested: { when: undefined } } }), /options\.nested\.when is undefined/);
  await refused(stateFor(weights, { options: { big: 1n } }), /options\.big is a bigint/);
  const partial = momentsFor(weights, 1);
  partial.delete("blk.1.attn_k.weight.lora_b");
  await refused(stateFor(weights, { moments: partial }), /no moments for "blk\.1\.attn_k\.weight\.lora_b"/);
  await refused(stateFor(weights, { moments: new Map([...momentsFor(weights, 1), ["blk.0.ffn_up.weight.lora_a", { m: new Float32Array(1), v: new Float32Array(1) }]]) }), /not a tensor of the adapter/);
  const short = momentsFor(weights, 1);
  short.set("blk.0.attn_q.weight.lora_a", { m: new Float32Array(3), v: new Float32Array(3) });
  await refused(stateFor(weights, { moments: short }), /moment m of "blk\.0\.attn_q\.weight\.lora_a" needs/);
}));

test("readCheckpoint: missing, foreign or inconsistent parts are CheckpointErrors naming the file", () => inTempDir(async (dir) => {
  const weights = await readLoraGguf(tinyLora("checkpoint-gqa", { rank: 2, alpha: 4, seed: 9, targets: ["q", "k"] }).path);
  const good = join(dir, "good");
  await writeCheckpoint(good, weights, stateFor(weights));
  const variant = async (name: string, optimizer: Uint8Array | undefined, adapter = true) => {
    const path = join(dir, name);
    await mkdir(path);
    if (adapter) await copyFile(join(good, "adapter.gguf"), join(path, "adapter.gguf"));
    if (optimizer !== undefined) await writeFile(join(path, "optimizer.safetensors"), optimizer);
    return path;
  };
  const original = await (async () => {
    await using file = await openSafetensors(join(good, "optimizer.safetensors"));
    const tensors = [];
    for (const t of file.tensors) tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: await file.readTensor(t.name) });
    return { metadata: file.header.metadata!, tensors };
  })();
  const rewrite = (change: (o: typeof original) => Parameters<typeof encodeSafetensors>[0]) => encodeSafetensors(change(original));
  const check = async (path: string, file: string, pattern: RegExp) =>
    assert.rejects(readCheckpoint(path), (e) => e instanceof CheckpointError && e.path === join(path, file) && pattern.test(e.message));

  await check(join(dir, "absent"), "adapter.gguf", /ENOENT|no such file/i);
  await check(await variant("no-optimizer", undefined), "optimizer.safetensors", /ENOENT|no such file/i);
  await check(await variant("foreign", rewrite((o) => ({ ...o, metadata: { format: "pt" } }))), "optimizer.safetensors", /not a gpuffi LoRA checkpoint/);
  await check(await variant("newer", rewrite((o) => ({ ...o, metadata: { ...o.metadata, version: "2" } }))), "optimizer.safetensors", /checkpoint version 2/);
  await check(await variant("no-step", rewrite((o) => ({ ...o, metadata: { ...o.metadata, step: "twelve" } }))), "optimizer.safetensors", /"step" must be an integer/);
  await check(await variant("bad-options", rewrite((o) => ({ ...o, metadata: { ...o.metadata, options: "[1]" } }))), "optimizer.safetensors", /"options" is not a JSON object/);
  await check(await variant("no-v", rewrite((o) => ({ ...o, tensors: o.tensors.filter((t) => t.name !== "blk.1.attn_q.weight.lora_b.v") }))), "optimizer.safetensors", /no moment v for "blk\.1\.attn_q\.weight\.lora_b"/);
  await check(await variant("stranger", rewrite((o) => ({ ...o, tensors: [...o.tensors, { name: "blk.0.ffn_up.weight.lora_a.m", dtype: "F32", shape: [1], data: new Uint8Array(4) }] }))), "optimizer.safetensors", /not the moment of a tensor/);
  await check(await variant("f16", rewrite((o) => ({ ...o, tensors: o.tensors.map((t, i) => (i === 0 ? { ...t, dtype: "F16" as const, data: t.data.subarray(0, t.data.length / 2) } : t)) }))), "optimizer.safetensors", /is F16 .* expected F32/);
  const path = await variant("no-adapter", readFileSync(join(good, "optimizer.safetensors")), false);
  await check(path, "adapter.gguf", /ENOENT|no such file/i);
}));

test("baseIdentity: size, header and data samples; the same for a copy, different for other metadata or other weights", () => inTempDir(async (dir) => {
  const model = tinyModel().path;
  const identity = await baseIdentity(model);
  assert.match(identity, /^gguf:\d+:sha256:[0-9a-f]{64}$/);
  assert.equal(Number(identity.split(":")[1]), readFileSync(model).length);
  await copyFile(model, join(dir, "copy.gguf"));
  assert.equal(await baseIdentity(join(dir, "copy.gguf")), identity);
  const spec = tinyModel().spec;
  const metadata = [...(spec.metadata as Iterable<readonly [string, { type: string; value: unknown }]>)];
  const renamed = metadata.map(([k, v]) => [k, k === "general.name" ? { type: "string", value: "gpuffi tiny llamb" } : v]);
  await writeFile(join(dir, "renamed.gguf"), encodeGguf({ ...spec, metadata: renamed as never }));
  assert.equal(readFileSync(join(dir, "renamed.gguf")).length, readFileSync(model).length);
  assert.notEqual(await baseIdentity(join(dir, "renamed.gguf")), identity);
  // Same header, same size, other weights: only the data samples tell them apart.
  const reseeded = makeTinyModel({ seed: 8 });
  await writeFile(join(dir, "other.gguf"), encodeGguf({ ...reseeded, metadata: spec.metadata }));
  assert.notEqual(await baseIdentity(join(dir, "other.gguf")), identity);
}));

test("checkResumable: the same base, data and resume options pass; every difference is named at once", () => {
  const weights: LoraWeights = { architecture: "llama", rank: 2, alpha: 4, targets: ["q"], pairs: [{ weight: "blk.0.attn_q.weight", nIn: 3, nOut: 5, a: new Float32Array(6), b: new Float32Array(10) }] };
  const state = stateFor(weights);
  const keys = ["rank", "alpha", "lr", "betas", "targets", "schedule", "clip"];
  const same = { baseIdentity: state.baseIdentity, dataFingerprint: state.dataFingerprint, options: { ...state.options, schedule: { warmup: 3, kind: "cosine" }, logEvery: 5 } };
  checkResumable(state, same, keys);
  assert.throws(
    () => checkResumable(state, { baseIdentity: "gguf:1:sha256:00", dataFingerprint: "sha256:ee", options: { ...state.options, lr: 2e-4, clip: 1, betas: [0.9, 0.99] } }, keys),
    (e) => e instanceof ResumeMismatchError && e.code === "ERR_TRAIN_RESUME_MISMATCH" && e instanceof CheckpointError &&
      e.differences.length === 5 &&
      /^base model: the checkpoint was made with gguf:123:sha256:ab, this run has gguf:1:sha256:00$/.test(e.differences[0]!) &&
      /^data: /.test(e.differences[1]!) &&
      e.differences[2] === 'option "lr": checkpoint 0.0001, this run 0.0002' &&
      e.differences[3] === 'option "betas": checkpoint [0.9,0.999], this run [0.9,0.99]' &&
      e.differences[4] === 'option "clip": checkpoint unset, this run 1',
  );
});
