// gpuffi lora export-peft: GGUF adapters back to PEFT. Exported and converted back with
// `lora convert`, every tensor is bit-identical (q/k with GQA included); q/k rows in the PEFT
// files follow HF's order as written out here from convert_hf_to_gguf.py's permute; the
// inverse permutation undoes the converter's; loadPeftAdapter serves a PEFT directory without a file.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { test } from "../harness.ts";
import { type LoraTarget, InvalidOptionError, encodeGguf, loraTargets, makeTinyModel, openSafetensors } from "../../src/formats/index.ts";
import { seededRandom, uniformValues } from "../../src/formats/tiny/random.ts";
import { LlamaContext, LlamaModel, LoraAdapter } from "../../src/llama/index.ts";
import {
  type LoraWeights, LoraShapeError, UnsupportedAdapterError, convertPeftAdapter, encodeLoraGguf, exportPeftAdapter, loadPeftAdapter,
  loraWeightsToPeft, parsePeftConfig, permuteRopeRows, readLoraGguf, unpermuteRopeRows,
} from "../../src/lora/index.ts";
import { llamaUnavailable, tinyModel } from "../llama/fixtures.ts";
import { contextOptions, promptLogits as contextLogits } from "../llama/numerics.ts";
import { inTempDir, runCli, tensorsOf } from "./tools-fixtures.ts";

const allTargets = Object.keys(loraTargets) as LoraTarget[];
const bits = (values: Float32Array) => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

/** Random weights for every target of the tiny model (2 layers, 2 heads, 1 KV head: GQA). */
function tinyWeights(rank: number, alpha: number, seed: number, targets: readonly LoraTarget[] = allTargets): LoraWeights {
  const random = seededRandom(seed);
  const shapes = new Map(tinyModel().spec.tensors.map((t) => [t.name, t.shape as [number, number]]));
  const pairs = [0, 1].flatMap((layer) => targets.map((t) => {
    const weight = `blk.${layer}.${loraTargets[t]}.weight`;
    const [nIn, nOut] = shapes.get(weight)!;
    return { weight, nIn, nOut, a: uniformValues(random, nIn * rank, 0.3), b: uniformValues(random, rank * nOut, 0.3) };
  }));
  return { architecture: "llama", rank, alpha, targets, pairs };
}

/** HF row of llama.cpp row r (head size d): GGUF row (h, 2i + t) is HF row (h, t·d/2 + i) — convert_hf_to_gguf.py's permute. */
function hfOrder(b: Float32Array, rows: number, rank: number, heads: number): Float32Array {
  const d = rows / heads;
  const out = new Float32Array(b.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < d / 2; i++) {
      for (let t = 0; t < 2; t++) out.set(b.subarray((h * d + 2 * i + t) * rank, (h * d + 2 * i + t + 1) * rank), (h * d + t * (d / 2) + i) * rank);
    }
  }
  return out;
}

/** Every tensor of the GGUF at `path` as name → [type, shape, bytes]. */
async function ggufTensors(path: string): Promise<Map<string, [number, readonly number[], number[]]>> {
  return new Map([...(await tensorsOf(path))].map(([name, t]) => [name, [t.type, t.shape, [...t.data]]]));
}

test("export-peft → lora convert gives back every tensor bit for bit (all seven targets, q/k with GQA, with --base and with --heads)", () => inTempDir(async (dir) => {
  const weights = tinyWeights(3, 6, 17);
  const adapter = join(dir, "adapter.gguf");
  await writeFile(adapter, encodeLoraGguf(weights));
  const expected = await ggufTensors(adapter);
  for (const [name, options] of [["base", { base: tinyModel().path }], ["heads", { heads: 2, kvHeads: 1 }]] as const) {
    const peft = join(dir, `peft-${name}`);
    const result = await exportPeftAdapter(adapter, peft, options);
    assert.deepEqual(result, { pairs: 14, rank: 3, alpha: 6, targetModules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] });
    const back = join(dir, `back-${name}.gguf`);
    const converted = await convertPeftAdapter(peft, back, options);
    assert.equal(converted.alpha, 6);
    assert.deepEqual(await ggufTensors(back), expected);
  }
}));

test("export-peft round trip for any rank, alpha, targets and head layout, GQA included (property)", () => inTempDir(async (dir) => {
  let run = 0;
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }),
    fc.subarray(allTargets, { minLength: 1 }), fc.integer({ min: 1, max: 64 }), fc.integer(),
    async (kvHeads, groups, halfHead, rank, targets, alpha, seed) => {
      const heads = kvHeads * groups;
      const embd = heads * 2 * halfHead;
      const nOut: Record<LoraTarget, number> = { q: embd, k: kvHeads * 2 * halfHead, v: kvHeads * 2 * halfHead, o: embd, gate: 6, up: 6, down: embd };
      const nIn: Record<LoraTarget, number> = { q: embd, k: embd, v: embd, o: embd, gate: embd, up: embd, down: 6 };
      const random = seededRandom(seed);
      const weights: LoraWeights = {
        architecture: "llama", rank, alpha, targets,
        pairs: targets.map((t) => ({ weight: `blk.0.${loraTargets[t]}.weight`, nIn: nIn[t], nOut: nOut[t], a: uniformValues(random, nIn[t] * rank, 1), b: uniformValues(random, rank * nOut[t], 1) })),
      };
      const path = join(dir, `${run++}`);
      await mkdir(path);
      await writeFile(join(path, "adapter.gguf"), encodeLoraGguf(weights));
      await exportPeftAdapter(join(path, "adapter.gguf"), join(path, "peft"), { heads, kvHeads });
      await convertPeftAdapter(join(path, "peft"), join(path, "back.gguf"), { heads, kvHeads });
      const back = await readLoraGguf(join(path, "back.gguf"));
      const byWeight = new Map(back.pairs.map((p) => [p.weight, p]));
      assert.equal(back.alpha, alpha);
      for (const pair of weights.pairs) {
        assert.deepEqual(bits(byWeight.get(pair.weight)!.a), bits(pair.a));
        assert.deepEqual(bits(byWeight.get(pair.weight)!.b), bits(pair.b));
      }
    },
  ), { numRuns: 20 });
}));

test("export-peft writes PEFT's names, shapes, HF row order for q/k, and an adapter_config.json PEFT and lora convert accept", () => inTempDir(async (dir) => {
  const weights = tinyWeights(2, 0, 5, ["q", "k", "down"]);
  const adapter = join(dir, "adapter.gguf");
  await writeFile(adapter, encodeLoraGguf(weights, [["general.base_model.0.name", { type: "string", value: "gpuffi/tiny-llama" }]]));
  const peft = join(dir, "peft");
  const result = await exportPeftAdapter(adapter, peft, { base: tinyModel().path });
  assert.equal(result.alpha, 2, "alpha 0 (llama.cpp: scale 1) becomes lora_alpha = r");
  const config = JSON.parse(await readFile(join(peft, "adapter_config.json"), "utf8"));
  assert.deepEqual(
    { peft_type: config.peft_type, r: config.r, lora_alpha: config.lora_alpha, target_modules: config.target_modules, task_type: config.task_type, bias: config.bias, fan_in_fan_out: config.fan_in_fan_out, lora_dropout: config.lora_dropout, base: config.base_model_name_or_path, dora: config.use_dora, rslora: config.use_rslora },
    { peft_type: "LORA", r: 2, lora_alpha: 2, target_modules: ["q_proj", "k_proj", "down_proj"], task_type: "CAUSAL_LM", bias: "none", fan_in_fan_out: false, lora_dropout: 0, base: "gpuffi/tiny-llama", dora: false, rslora: false },
  );
  assert.equal(parsePeftConfig(config).alpha, 2);
  await using file = await openSafetensors(join(peft, "adapter_model.safetensors"));
  assert.deepEqual(file.header.metadata, { format: "pt" });
  const names = file.tensors.map((t) => t.name);
  assert.deepEqual(names, [...names].sort());
  for (const pair of weights.pairs) {
    const layer = pair.weight.split(".")[1];
    const module = { attn_q: "self_attn.q_proj", attn_k: "self_attn.k_proj", ffn_down: "mlp.down_proj" }[pair.weight.split(".")[2] as "attn_q"];
    const prefix = `base_model.model.model.layers.${layer}.${module}`;
    const a = file.tensor(`${prefix}.lora_A.weight`);
    const b = file.tensor(`${prefix}.lora_B.weight`);
    assert.deepEqual([a.dtype, a.shape, b.dtype, b.shape], ["F32", [2, pair.nIn], "F32", [pair.nOut, 2]]);
    assert.deepEqual(await file.readTensor(a.name), bits(pair.a));
    const heads = module.endsWith("q_proj") ? 2 : module.endsWith("k_proj") ? 1 : undefined;
    assert.deepEqual(await file.readTensor(b.name), bits(heads === undefined ? pair.b : hfOrder(pair.b, pair.nOut, 2, heads)), `${b.name} rows`);
  }
}));

const trainFixture = fileURLToPath(new URL("./train/fixture/", import.meta.url));
const haveTrainFixture = ["adapter.gguf", "base.gguf", "peft/adapter_model.safetensors"].every((f) => existsSync(join(trainFixture, f)));

test("export-peft of the training fixture's adapter is its PEFT twin, tensor for tensor (written independently of src/lora)", () => inTempDir(async (dir) => {
  await exportPeftAdapter(join(trainFixture, "adapter.gguf"), join(dir, "peft"), { base: join(trainFixture, "base.gguf") });
  await using ours = await openSafetensors(join(dir, "peft", "adapter_model.safetensors"));
  await using theirs = await openSafetensors(join(trainFixture, "peft", "adapter_model.safetensors"));
  assert.deepEqual(ours.tensors.map((t) => t.name).sort(), theirs.tensors.map((t) => t.name).sort());
  for (const t of theirs.tensors) {
    assert.deepEqual([ours.tensor(t.name).dtype, ours.tensor(t.name).shape], [t.dtype, t.shape]);
    assert.deepEqual(await ours.readTensor(t.name), await theirs.readTensor(t.name), t.name);
  }
  const config = JSON.parse(readFileSync(join(dir, "peft", "adapter_config.json"), "utf8"));
  const twin = JSON.parse(readFileSync(join(trainFixture, "peft", "adapter_config.json"), "utf8"));
  assert.deepEqual([config.r, config.lora_alpha, config.target_modules], [twin.r, twin.lora_alpha, twin.target_modules]);
}), { skip: haveTrainFixture ? undefined : "test/lora/train/fixture/ is not there" });

test("unpermuteRopeRows inverts permuteRopeRows for any head layout (property)", () => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 9 }), (heads, halfHead, rowBytes, seed) => {
    const rows = heads * 2 * halfHead;
    const data = Uint8Array.from({ length: rows * rowBytes }, (_, i) => (i * 31 + seed) & 0xff);
    assert.deepEqual(unpermuteRopeRows(permuteRopeRows(data, rows, rowBytes, heads), rows, rowBytes, heads), data);
    assert.deepEqual(permuteRopeRows(unpermuteRopeRows(data, rows, rowBytes, heads), rows, rowBytes, heads), data);
  }));
  assert.throws(() => unpermuteRopeRows(new Uint8Array(12), 6, 2, 2), RangeError);
});

test("export-peft refuses q/k without head counts, head counts that cannot be right, and a wrong base", () => inTempDir(async (dir) => {
  const adapter = join(dir, "adapter.gguf");
  await writeFile(adapter, encodeLoraGguf(tinyWeights(2, 4, 1, ["q", "k", "v"])));
  const out = join(dir, "peft");
  await assert.rejects(exportPeftAdapter(adapter, out), (e) => e instanceof UnsupportedAdapterError && /head counts.*--base.*--heads/.test(e.message));
  await assert.rejects(exportPeftAdapter(adapter, out, { heads: 2, kvHeads: 5 }), (e) => e instanceof LoraShapeError && /32 rows do not split into 5 heads of even size \(wrong key\/value head count\?\)/.test(e.message));
  await assert.rejects(exportPeftAdapter(adapter, out, { heads: 4, kvHeads: 1 }), (e) => e instanceof LoraShapeError && /attn_k\.weight": 1 heads of 32 rows, but blk\.0\.attn_q\.weight has heads of 16 \(wrong head counts\?\)/.test(e.message));
  await assert.rejects(exportPeftAdapter(adapter, out, { kvHeads: 1 }), (e) => e instanceof InvalidOptionError && /goes with heads/.test(e.message));
  await assert.rejects(exportPeftAdapter(adapter, out, { base: tinyModel().path, heads: 2, kvHeads: 2 }), (e) => e instanceof InvalidOptionError && /base model has 2 and 1/.test(e.message));
  const other = join(dir, "other.gguf");
  await writeFile(other, encodeGguf(makeTinyModel({ seed: 7, ff: 96, embd: 32 })));
  await assert.rejects(exportPeftAdapter(adapter, out, { base: other }), (e) => e instanceof LoraShapeError && /wrong base/.test(e.message));
  assert.equal(existsSync(out), false, "nothing is written when refused");
  // V alone needs no head counts.
  const v = join(dir, "v.gguf");
  await writeFile(v, encodeLoraGguf(tinyWeights(2, 4, 1, ["v"])));
  assert.equal((await exportPeftAdapter(v, out)).pairs, 2);
  // In memory: kvHeads defaults to heads, as for the converter.
  assert.equal(loraWeightsToPeft(tinyWeights(2, 4, 1, ["k"]), { heads: 2 }).result.pairs, 2);
  assert.throws(() => loraWeightsToPeft(tinyWeights(2, 4, 1, ["q"]), { heads: 3 }), (e) => e instanceof LoraShapeError && /64 rows do not split into 3 heads/.test(e.message));
}));

test("cli: gpuffi lora export-peft writes the directory and reports refusals with exit code 1", () => inTempDir(async (dir) => {
  const adapter = join(dir, "adapter.gguf");
  await writeFile(adapter, encodeLoraGguf(tinyWeights(2, 4, 3, ["q", "o"])));
  const ok = await runCli("lora", "export-peft", adapter, join(dir, "peft"), "--base", tinyModel().path);
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /wrote .*peft \(4 pairs, r 2, lora_alpha 4, q_proj, o_proj\)/);
  assert.ok(existsSync(join(dir, "peft", "adapter_model.safetensors")) && existsSync(join(dir, "peft", "adapter_config.json")));
  const heads = await runCli("lora", "export-peft", adapter, join(dir, "peft2"), "--heads", "2", "--kv-heads", "1", "--base-model-name", "me/tiny");
  assert.equal(heads.code, 0, heads.err);
  assert.equal(JSON.parse(readFileSync(join(dir, "peft2", "adapter_config.json"), "utf8")).base_model_name_or_path, "me/tiny");
  const refused = await runCli("lora", "export-peft", adapter, join(dir, "peft3"));
  assert.equal(refused.code, 1);
  assert.match(refused.err, /head counts/);
  const usage = await runCli("lora", "export-peft", adapter, join(dir, "peft3"), "--kv-heads", "1");
  assert.notEqual(usage.code, 0);
  assert.match(usage.err, /--kv-heads goes with --heads/);
}));

test("loadPeftAdapter: a PEFT directory served without a file gives the logits of the GGUF adapter it was exported from", () => inTempDir(async (dir) => {
  const adapter = join(dir, "adapter.gguf");
  await writeFile(adapter, encodeLoraGguf(tinyWeights(3, 6, 29)));
  const peft = join(dir, "peft");
  await exportPeftAdapter(adapter, peft, { base: tinyModel().path });
  const model = await LlamaModel.load(tinyModel().path, { gpuLayers: 0 });
  const context = LlamaContext.create(model, contextOptions);
  try {
    using fromFile = await LoraAdapter.load(model, adapter);
    using fromPeft = await loadPeftAdapter(model, peft);
    const base = contextLogits(context);
    context.setAdapters([{ adapter: fromFile, scale: 1 }]);
    const expected = contextLogits(context);
    context.setAdapters([{ adapter: fromPeft, scale: 1 }]);
    const actual = contextLogits(context);
    assert.deepEqual(bits(actual), bits(expected));
    assert.notDeepEqual(bits(actual), bits(base));
    assert.equal(fromPeft.path, peft);
    assert.equal(fromPeft.rank, 3);
    assert.equal(fromPeft.alpha, 6);
    // The model's head counts order q/k rows; counts given that are wrong are refused by the converter.
    await assert.rejects(loadPeftAdapter(model, peft, { heads: 2, kvHeads: 5 }), LoraShapeError);
  } finally {
    context.dispose();
    model.dispose();
  }
}), { skip: llamaUnavailable });
