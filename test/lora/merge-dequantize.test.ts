// gpuffi lora merge --dequantize: adapted tensors of a Q8_0/Q4_0/Q4_1/Q5_0/Q5_1 base are
// dequantized as ggml does, merged and written as F16 or F32, the rest of the base untouched;
// checked against the float64 reference merge of the dequantized base, through llama.cpp, and
// on the command line with its refusals.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "../harness.ts";
import {
  type GgufSpec, GgmlType, InvalidOptionError, dequantize, dequantizableTypes, f32ToF16Array, ggmlTypeInfo, writeGgufFile,
} from "../../src/formats/index.ts";
import { QuantizedBaseError, mergeLoraFiles } from "../../src/lora/index.ts";
import { quantize } from "../formats/ggml-quantize.ts";
import { llamaUnavailable, tinyLora, tinyModel } from "../llama/fixtures.ts";
import { mergeLora } from "../llama/lora-reference.ts";
import { assertLogitsClose, inTempDir, maxAbsDifference, promptLogits, runCli, tensorsOf } from "./tools-fixtures.ts";

const lora = { rank: 4, alpha: 8, seed: 41 };
const floats = (data: Uint8Array) => new Float32Array(data.slice().buffer);
const bytes = (values: Float32Array | Uint16Array) => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

/** The tiny model with the tensors `which` picks quantized to `type` (as llama.cpp's quantizer would). */
function quantized(type: number, which: (name: string) => boolean): GgufSpec {
  const base = tinyModel().spec;
  return { ...base, tensors: base.tensors.map((t) => (t.shape.length === 2 && which(t.name) ? { ...t, type, data: quantize(floats(t.data), type) } : t)) };
}

/** The adapted projections (every matrix of the blocks) and the token embedding; the output matrix stays F32. */
const blockMatrices = (name: string) => name.startsWith("blk.") || name === "token_embd.weight";

test("merge --dequantize: each adapted tensor is the reference merge of its dequantized weights, as F16 or F32; the rest is the base's bytes", () => inTempDir(async (dir) => {
  for (const type of dequantizableTypes) {
    const base = quantized(type, blockMatrices);
    const basePath = join(dir, `base-${ggmlTypeInfo(type)!.name}.gguf`);
    await writeGgufFile(basePath, base);
    // The reference: the base with every quantized tensor dequantized to F32, merged in float64.
    const widened: GgufSpec = { ...base, tensors: base.tensors.map((t) => (t.type === type ? { ...t, type: GgmlType.F32, data: bytes(dequantize(t.data, type)) } : t)) };
    const reference = mergeLora(widened, [{ spec: tinyLora("dq", lora).spec, alpha: lora.alpha, scale: 0.8 }]);
    for (const target of ["f16", "f32"] as const) {
      const out = join(dir, `merged-${type}-${target}.gguf`);
      const result = await mergeLoraFiles(basePath, [{ path: tinyLora("dq", lora).path, scale: 0.8 }], out, { dequantize: target });
      const to = target === "f16" ? "F16" : "F32";
      assert.equal(result.mergedTensors, 14);
      assert.deepEqual(result.dequantized.map((d) => [d.from, d.to]), new Array(14).fill([ggmlTypeInfo(type)!.name, to]));
      const written = await tensorsOf(out);
      for (const [i, t] of base.tensors.entries()) {
        const got = written.get(t.name)!;
        if (result.dequantized.some((d) => d.name === t.name)) {
          const values = floats(reference.tensors[i]!.data);
          assert.equal(got.type, GgmlType[to], t.name);
          assert.deepEqual(got.data, target === "f16" ? bytes(f32ToF16Array(values)) : bytes(values), `${t.name} (${ggmlTypeInfo(type)!.name} → ${to})`);
        } else {
          // token_embd stays quantized, the norms and the output stay F32: unchanged bytes.
          assert.deepEqual({ type: got.type, data: [...got.data] }, { type: t.type, data: [...t.data] }, t.name);
        }
      }
    }
  }
}));

test("merge --dequantize refuses other quantized types, and without it every quantized base, naming the way out; nothing is written", () => inTempDir(async (dir) => {
  const adapter = [{ path: tinyLora("dq", lora).path }];
  const out = join(dir, "out.gguf");
  const q8 = join(dir, "q8.gguf");
  await writeGgufFile(q8, quantized(GgmlType.Q8_0, blockMatrices));
  await assert.rejects(mergeLoraFiles(q8, adapter, out), (e) =>
    e instanceof QuantizedBaseError && e.tensor === "blk.0.attn_q.weight" && e.message.includes("Q8_0") && e.message.includes("--dequantize"));
  // Q4_K (a k-quant, blocks of 256) is beyond gpuffi's dequantizer: refused, with or without the option.
  const base = tinyModel().spec;
  const k4 = join(dir, "q4k.gguf");
  await writeGgufFile(k4, { ...base, tensors: base.tensors.map((t) => (t.name === "blk.1.ffn_down.weight" ? { ...t, shape: [256, 32], type: GgmlType.Q4_K, data: new Uint8Array(144 * 32) } : t)) });
  await assert.rejects(mergeLoraFiles(k4, adapter, out, { dequantize: "f16" }), (e) =>
    e instanceof QuantizedBaseError && e.tensor === "blk.1.ffn_down.weight" && /is Q4_K: gpuffi dequantizes Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 only/.test(e.message));
  await assert.rejects(mergeLoraFiles(q8, adapter, out, { dequantize: "f8" as "f16" }), (e) => e instanceof InvalidOptionError && /dequantize: expected "f16" or "f32", got "f8"/.test(e.message));
  assert.equal(existsSync(out), false);
}));

test("merge --dequantize: the merged model gives the logits of llama.cpp applying the adapter to the dequantized base (1e-4)", () => inTempDir(async (dir) => {
  const basePath = join(dir, "q8.gguf");
  await writeGgufFile(basePath, quantized(GgmlType.Q8_0, blockMatrices));
  const adapter = tinyLora("dq", lora).path;
  const merged = join(dir, "merged.gguf");
  const dequantizedOnly = join(dir, "dequantized.gguf");
  await mergeLoraFiles(basePath, [{ path: adapter, scale: 1 }], merged, { dequantize: "f32" });
  // Scale 0 merges nothing: the adapted tensors dequantized to F32, everything else as in the merged model.
  await mergeLoraFiles(basePath, [{ path: adapter, scale: 0 }], dequantizedOnly, { dequantize: "f32" });
  const applied = await promptLogits(dequantizedOnly, [{ path: adapter, scale: 1 }]);
  assertLogitsClose(await promptLogits(merged), applied, "Q8_0 base dequantized and merged");
  assert.ok(maxAbsDifference(applied, await promptLogits(dequantizedOnly)) > 1e-2, "the adapter should change the logits");
}), { skip: llamaUnavailable, timeout: 60_000 });

test("cli: gpuffi lora merge --dequantize [--dequantize-to f32] says what it dequantized; its refusals", () => inTempDir(async (dir) => {
  const basePath = join(dir, "q4.gguf");
  await writeGgufFile(basePath, quantized(GgmlType.Q4_0, (name) => name.includes("attn_") || name.includes("ffn_")));
  const adapter = tinyLora("dq", lora).path;
  const out = join(dir, "m.gguf");
  const f16 = await runCli("lora", "merge", basePath, adapter, out, "--dequantize");
  assert.equal(f16.code, 0, f16.err);
  assert.match(f16.out, /\(14 of 21 tensors merged; dequantized to F16: 14 Q4_0\)/);
  const f32 = await runCli("lora", "merge", basePath, `${adapter}:0.5`, out, "--dequantize", "--dequantize-to", "f32");
  assert.equal(f32.code, 0, f32.err);
  assert.match(f32.out, /dequantized to F32: 14 Q4_0/);
  assert.equal((await tensorsOf(out)).get("blk.0.attn_q.weight")!.type, GgmlType.F32);
  const refused = await runCli("lora", "merge", basePath, adapter, out);
  assert.equal(refused.code, 1);
  assert.match(refused.err, /is Q4_0: .*--dequantize/);
  for (const [args, message] of [[["--dequantize-to", "f32"], /--dequantize-to goes with --dequantize/], [["--dequantize", "--dequantize-to", "q8"], /--dequantize-to takes f16 or f32, got "q8"/]] as const) {
    const usage = await runCli("lora", "merge", basePath, adapter, out, ...args);
    assert.equal(usage.code, 2);
    assert.match(usage.err, message);
  }
}));
