// The gpuffi CLI, run in-process through main() with captured output.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "../harness.ts";
import { main } from "../../src/cli/main.ts";
import { encodeSafetensors, openGguf } from "../../src/formats/index.ts";

async function run(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await main(argv, { out: (t) => (out += `${t}\n`), err: (t) => (err += `${t}\n`) });
  return { code, out, err };
}

async function inTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "gpuffi-cli-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true });
  }
}

test("cli: make-tiny-model, make-tiny-lora and gguf inspect (text and --json)", () => inTempDir(async (dir) => {
  const model = join(dir, "tiny.gguf");
  const lora = join(dir, "lora.gguf");
  assert.equal((await run("make-tiny-model", model, "--seed", "5", "--layers", "1", "--type", "f16")).code, 0);
  const again = join(dir, "again.gguf");
  await run("make-tiny-model", again, "--seed", "5", "--layers", "1", "--type", "f16");
  assert.deepEqual(await readFile(again), await readFile(model));

  const made = await run("make-tiny-lora", model, lora, "--rank", "4", "--alpha", "8", "--targets", "q,v");
  assert.equal(made.code, 0, made.err);
  await using adapter = await openGguf(lora);
  assert.deepEqual(adapter.tensors.map((t) => t.name), ["blk.0.attn_q.weight.lora_a", "blk.0.attn_q.weight.lora_b", "blk.0.attn_v.weight.lora_a", "blk.0.attn_v.weight.lora_b"]);
  assert.equal(adapter.metadata.get("adapter.alora.invocation_tokens"), undefined);

  const alora = join(dir, "alora.gguf");
  const aloraMade = await run("make-tiny-lora", model, alora, "--rank", "2", "--alpha", "4", "--invocation-tokens", "303, 7,0");
  assert.equal(aloraMade.code, 0, aloraMade.err);
  assert.match(aloraMade.out, /aLoRA invoked by 3 tokens/);
  await using aloraFile = await openGguf(alora);
  assert.deepEqual(aloraFile.metadata.get("adapter.alora.invocation_tokens"), { type: "array", value: { type: "u32", value: Uint32Array.of(303, 7, 0) } });
  const outside = await run("make-tiny-lora", model, join(dir, "outside.gguf"), "--rank", "2", "--alpha", "4", "--invocation-tokens", "304");
  assert.equal(outside.code, 1);
  assert.match(outside.err, /invocationTokens.*304 is not a token id of the base model \(0…303\)/);

  const text = await run("gguf", "inspect", model);
  assert.equal(text.code, 0);
  assert.match(text.out, /GGUF v3/);
  assert.match(text.out, /llama\.embedding_length\s+u32\s+64/);
  assert.match(text.out, /blk\.0\.attn_q\.weight\s+F16\s+\[64, 64\]/);

  const json = await run("gguf", "inspect", model, "--json");
  const parsed = JSON.parse(json.out) as { version: number; metadata: Record<string, { type: string; value: unknown }>; tensors: { name: string }[] };
  assert.equal(parsed.version, 3);
  assert.deepEqual(parsed.metadata["llama.block_count"], { type: "u32", value: 1 });
  assert.equal((parsed.metadata["tokenizer.ggml.tokens"]!.value as string[]).length, 304);
  assert.equal(parsed.tensors.length, 12);
}));

test("cli: safetensors inspect", () => inTempDir(async (dir) => {
  const path = join(dir, "m.safetensors");
  await writeFile(path, encodeSafetensors({ metadata: { format: "pt" }, tensors: [{ name: "w", dtype: "BF16", shape: [2, 3], data: new Uint8Array(12) }] }));
  const text = await run("safetensors", "inspect", path);
  assert.equal(text.code, 0);
  assert.match(text.out, /format\s+"pt"/);
  assert.match(text.out, /w\s+BF16\s+\[2, 3\]\s+\[0, 12\)\s+12/);
  const json = JSON.parse((await run("safetensors", "inspect", path, "--json")).out) as { metadata: object; tensors: { name: string; byteLength: number }[] };
  assert.deepEqual(json.metadata, { format: "pt" });
  assert.equal(json.tensors[0]!.byteLength, 12);
}));

test("cli: help exits 0, usage errors exit 2, typed and file errors exit 1 without a stack", () => inTempDir(async (dir) => {
  assert.equal((await run("--help")).code, 0);
  assert.match((await run("gguf", "--help")).out, /usage: gpuffi gguf inspect/);
  for (const argv of [[], ["nope"], ["gguf"], ["gguf", "inspect"], ["gguf", "inspect", "a", "b"], ["gguf", "inspect", "x", "--bogus"],
    ["make-tiny-model", join(dir, "x.gguf"), "--layers", "two"], ["make-tiny-model", join(dir, "x.gguf"), "--type", "q4"],
    ["make-tiny-lora", "a", "b", "--alpha", "1"], ["make-tiny-lora", "a", "b", "--rank", "2", "--alpha", "x"], ["make-tiny-lora", "a", "b", "--rank", "2", "--alpha", "1", "--targets", "q,zz"],
    ["make-tiny-lora", "a", "b", "--rank", "2", "--alpha", "1", "--invocation-tokens", "5,x"], ["make-tiny-lora", "a", "b", "--rank", "2", "--alpha", "1", "--invocation-tokens", ""]]) {
    const result = await run(...argv);
    assert.equal(result.code, 2, `${argv.join(" ")} → ${result.code}: ${result.err}`);
    assert.match(result.err, /usage: gpuffi/);
  }
  const garbage = join(dir, "garbage.gguf");
  await writeFile(garbage, "not a gguf file at all");
  for (const argv of [["gguf", "inspect", garbage], ["safetensors", "inspect", garbage], ["gguf", "inspect", join(dir, "missing.gguf")], ["make-tiny-model", join(dir, "x.gguf"), "--heads", "3"]]) {
    const result = await run(...argv);
    assert.equal(result.code, 1, argv.join(" "));
    assert.doesNotMatch(result.err, /\n\s+at /, "no stack trace");
  }
  assert.match((await run("gguf", "inspect", garbage)).err, /invalid GGUF file: magic at byte 0/);
}));
