// gpuffi lora merge: the library merge against the test's own float64 reference, merged models
// against llama.cpp applying the adapters, F16/BF16 bases, streaming output, refusals and the CLI.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "../harness.ts";
import {
  type GgufSpec, GgmlType, bf16ToF32Array, encodeGguf, f16ToF32Array, f32ToBf16Array, f32ToF16Array, makeTinyModel, openGguf, parseGguf, writeGgufFile,
} from "../../src/formats/index.ts";
import { LoraShapeError, QuantizedBaseError, mergeLoraFiles, mergeLoraSpecs } from "../../src/lora/index.ts";
import { llamaUnavailable, tinyLora, tinyModel } from "../llama/fixtures.ts";
import { mergeLora } from "../llama/lora-reference.ts";
import { assertLogitsClose, inTempDir, maxAbsDifference, promptLogits, runCli, tensorsOf } from "./tools-fixtures.ts";

const loraA = { rank: 4, alpha: 8, seed: 31 };
const loraB = { rank: 2, alpha: 3, seed: 32 };

/** The tiny model with every matrix stored as `type` (norms stay f32, as converters write them). */
function retyped(spec: GgufSpec, type: "F16" | "BF16"): GgufSpec {
  const encode = type === "F16" ? f32ToF16Array : f32ToBf16Array;
  return {
    ...spec,
    tensors: spec.tensors.map((t) => t.shape.length !== 2 ? t : { ...t, type: GgmlType[type], data: new Uint8Array(encode(new Float32Array(t.data.slice().buffer)).buffer) }),
  };
}

test("merge: the library merge equals the float64 reference merge bit for bit", async () => {
  const adapters = [{ spec: tinyLora("ma", loraA).spec, alpha: loraA.alpha, scale: 0.7 }, { spec: tinyLora("mb", loraB).spec, alpha: loraB.alpha, scale: 1.3 }];
  const merged = await mergeLoraSpecs(tinyModel().spec, adapters);
  const reference = mergeLora(tinyModel().spec, adapters);
  assert.deepEqual(merged.tensors.map((t) => [t.name, [...t.data]]), reference.tensors.map((t) => [t.name, [...t.data]]));
});

test("merge: streamed file merge gives the in-memory merge's tensors and the base's metadata", () => inTempDir(async (dir) => {
  const out = join(dir, "merged.gguf");
  const progress: number[] = [];
  const result = await mergeLoraFiles(tinyModel().path, [{ path: tinyLora("ma", loraA).path, scale: 0.5 }], out, { onProgress: (done, total) => progress.push(done / total) });
  assert.deepEqual(result, { mergedTensors: 14, tensors: tinyModel().spec.tensors.length, dequantized: [] });
  assert.equal(progress.at(-1), 1);
  assert.ok(progress.every((p, i) => i === 0 || p >= progress[i - 1]!));
  const expected = await mergeLoraSpecs(tinyModel().spec, [{ spec: tinyLora("ma", loraA).spec, scale: 0.5 }]);
  const written = await tensorsOf(out);
  for (const t of expected.tensors) assert.deepEqual({ ...written.get(t.name)!, data: [...written.get(t.name)!.data] }, { type: t.type, shape: t.shape, data: [...t.data] }, t.name);
  await using file = await openGguf(out);
  const base = parseGguf(encodeGguf(tinyModel().spec));
  for (const [key, value] of base.metadata) assert.deepEqual(file.metadata.get(key), value, key);
}));

test("merge: merged models give the logits of the adapters applied by llama.cpp (1e-4)", () => inTempDir(async (dir) => {
  const adapters = [{ path: tinyLora("ma", loraA).path, scale: 0.7 }, { path: tinyLora("mb", loraB).path, scale: 1.3 }];
  for (const set of [adapters.slice(0, 1), adapters]) {
    const out = join(dir, `merged-${set.length}.gguf`);
    await mergeLoraFiles(tinyModel().path, set, out);
    const adapted = await promptLogits(tinyModel().path, set);
    assertLogitsClose(await promptLogits(out), adapted, `${set.length} adapter(s)`);
    assert.ok(maxAbsDifference(adapted, await promptLogits(tinyModel().path)) > 1e-2, "the adapters should change the logits");
  }
}), { skip: llamaUnavailable, timeout: 60_000 });

test("merge: F16 and BF16 bases stay in their type, each value the rounded f32 merge", async () => {
  const adapter = [{ spec: tinyLora("ma", loraA).spec, scale: 1 }];
  for (const type of ["F16", "BF16"] as const) {
    const base = retyped(tinyModel().spec, type);
    // The merge starts from the rounded base weights, so the reference does too.
    const widened: GgufSpec = { ...base, tensors: base.tensors.map((t) => t.type === GgmlType.F32 ? t : { ...t, type: GgmlType.F32, data: new Uint8Array((type === "F16" ? f16ToF32Array : bf16ToF32Array)(new Uint16Array(t.data.slice().buffer)).buffer) }) };
    const reference = retyped(await mergeLoraSpecs(widened, adapter), type);
    const merged = await mergeLoraSpecs(base, adapter);
    assert.deepEqual(merged.tensors.map((t) => [t.name, t.type, [...t.data]]), reference.tensors.map((t) => [t.name, t.type, [...t.data]]), type);
    assert.notDeepEqual(merged.tensors[2]!.data, base.tensors[2]!.data, "the merge changes the weights");
  }
});

test("merge: refuses quantized adapted tensors and adapters for another base before writing anything", () => inTempDir(async (dir) => {
  const base = tinyModel().spec;
  // Q8_0: blocks of 32 values in 34 bytes.
  const quantized: GgufSpec = { ...base, tensors: base.tensors.map((t) => t.name !== "blk.0.attn_q.weight" ? t : { ...t, type: GgmlType.Q8_0, data: new Uint8Array((t.shape[0]! / 32) * 34 * t.shape[1]!) }) };
  const path = join(dir, "q8.gguf");
  await writeGgufFile(path, quantized);
  const out = join(dir, "out.gguf");
  await assert.rejects(mergeLoraFiles(path, [{ path: tinyLora("ma", loraA).path }], out), (e) => e instanceof QuantizedBaseError && e.tensor === "blk.0.attn_q.weight" && /Q8_0/.test(e.message));
  assert.equal(existsSync(out), false);
  const other = join(dir, "other.gguf");
  await writeGgufFile(other, makeTinyModel({ embd: 32, ff: 64 }));
  await assert.rejects(mergeLoraFiles(other, [{ path: tinyLora("ma", loraA).path }], out), LoraShapeError);
  assert.equal(existsSync(out), false);
}));

test("cli: gpuffi lora merge with ADAPTER:SCALE, and its refusals", () => inTempDir(async (dir) => {
  const out = join(dir, "m.gguf");
  const ok = await runCli("lora", "merge", tinyModel().path, `${tinyLora("ma", loraA).path}:0.5`, tinyLora("mb", loraB).path, out, "--device", "cpu");
  assert.equal(ok.code, 0, ok.err);
  assert.match(ok.out, /14 of 21 tensors merged/);
  const expected = await mergeLoraSpecs(tinyModel().spec, [{ spec: tinyLora("ma", loraA).spec, scale: 0.5 }, { spec: tinyLora("mb", loraB).spec, scale: 1 }]);
  const written = await tensorsOf(out);
  assert.ok(expected.tensors.every((t) => Buffer.from(t.data).equals(Buffer.from(written.get(t.name)!.data))));
  assert.equal((await runCli("lora", "merge", tinyModel().path, out)).code, 2);
  const gpu = await runCli("lora", "merge", tinyModel().path, tinyLora("ma", loraA).path, out, "--device", "gpu");
  assert.equal(gpu.code, 2);
  assert.match(gpu.err, /cpu or cuda/);
}));
