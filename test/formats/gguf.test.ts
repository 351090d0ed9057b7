// GGUF reader and writer: property-based round trips, the ggml type table, lazy file reads,
// and the typed errors for specific malformations.
import assert from "node:assert/strict";
import fc from "fast-check";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "../harness.ts";
import {
  FormatWriteError,
  GgmlType,
  GgufFormatError,
  type GgufSpec,
  type GgufValue,
  TensorNotFoundError,
  encodeGguf,
  ggmlTypeByName,
  ggmlTypeInfo,
  ggmlTypes,
  openGguf,
  parseGguf,
  plainValue,
  writeGgufFile,
} from "../../src/formats/index.ts";
import { ggufSpec } from "./gguf-arbitraries.ts";

function entriesOf(spec: GgufSpec): [string, GgufValue][] {
  return [...(spec.metadata as Iterable<[string, GgufValue]>)];
}

test("GGUF round trip: write → read gives the same metadata, tensors and bytes", async () => {
  await fc.assert(fc.asyncProperty(ggufSpec, async (spec) => {
    const bytes = encodeGguf(spec);
    const file = await openGguf(bytes);
    assert.equal(file.header.version, spec.version);
    assert.deepEqual([...file.metadata], entriesOf(spec));
    assert.equal(file.header.dataOffset % file.header.alignment, 0);
    assert.deepEqual(file.tensors.map((t) => [t.name, t.type, t.shape, t.byteLength]), spec.tensors.map((t) => [t.name, t.type, t.shape, t.data.length]));
    for (const t of spec.tensors) assert.deepEqual(await file.readTensor(t.name), t.data);
    // Re-encoding what was read reproduces the file byte for byte.
    const again = encodeGguf({ version: spec.version, metadata: file.metadata, tensors: await Promise.all(file.tensors.map(async (t) => ({ ...t, data: await file.readTensor(t.name) }))) });
    assert.deepEqual(again, bytes);
  }), { numRuns: 300 });
});

test("GGUF files read lazily from a path match the in-memory parse", async () => {
  const dir = await mkdtemp(join(tmpdir(), "gpuffi-gguf-"));
  try {
    await fc.assert(fc.asyncProperty(ggufSpec, async (spec) => {
      const path = join(dir, "model.gguf");
      await writeGgufFile(path, spec);
      await using file = await openGguf(path);
      assert.deepEqual(file.header, parseGguf(encodeGguf(spec)));
      for (const t of spec.tensors) assert.deepEqual(await file.readTensor(t.name), t.data);
    }), { numRuns: 30 });
  } finally {
    await rm(dir, { recursive: true });
  }
});

test("a header larger than the first read is fetched in growing reads; maxHeaderBytes caps it", async () => {
  const dir = await mkdtemp(join(tmpdir(), "gpuffi-gguf-"));
  try {
    const tokens = Array.from({ length: 120_000 }, (_, i) => `token-${i}`);
    const spec: GgufSpec = {
      metadata: [["tokenizer.ggml.tokens", { type: "array", value: { type: "string", value: tokens } }]],
      tensors: [{ name: "w", type: GgmlType.F32, shape: [4], data: new Uint8Array(16).fill(9) }],
    };
    const path = join(dir, "big-header.gguf");
    await writeGgufFile(path, spec);
    await using file = await openGguf(path);
    assert.ok(file.header.dataOffset > 2 * 1024 * 1024);
    assert.deepEqual(plainValue(file.metadata.get("tokenizer.ggml.tokens")!), tokens);
    assert.deepEqual(await file.readTensor("w"), new Uint8Array(16).fill(9));
    await assert.rejects(openGguf(path, { maxHeaderBytes: 1024 * 1024 }), (e) => e instanceof GgufFormatError && e.field === "header");
  } finally {
    await rm(dir, { recursive: true });
  }
});

test("ggml type table: block and type sizes of quantized types as in ggml-common.h", () => {
  const expected: Record<string, [number, number]> = {
    F32: [1, 4], F16: [1, 2], BF16: [1, 2], Q4_0: [32, 18], Q4_1: [32, 20], Q5_0: [32, 22], Q5_1: [32, 24], Q8_0: [32, 34], Q8_1: [32, 36],
    Q2_K: [256, 84], Q3_K: [256, 110], Q4_K: [256, 144], Q5_K: [256, 176], Q6_K: [256, 210], Q8_K: [256, 292],
    IQ2_XXS: [256, 66], IQ2_XS: [256, 74], IQ3_XXS: [256, 98], IQ1_S: [256, 50], IQ4_NL: [32, 18], IQ3_S: [256, 110],
    IQ2_S: [256, 82], IQ4_XS: [256, 136], IQ1_M: [256, 56], TQ1_0: [256, 54], TQ2_0: [256, 66], MXFP4: [32, 17], NVFP4: [64, 36],
    Q1_0: [128, 18], Q2_0: [64, 18], I8: [1, 1], I16: [1, 2], I32: [1, 4], I64: [1, 8], F64: [1, 8],
  };
  assert.deepEqual(Object.fromEntries(ggmlTypes.map((t) => [t.name, [t.blockSize, t.typeSize]])), expected);
  assert.equal(ggmlTypeInfo(GgmlType.Q4_K)?.name, "Q4_K");
  assert.equal(ggmlTypeByName("q8_0")?.id, 8);
  for (const removed of [4, 5, 31, 32, 33, 36, 37, 38, 43, -1]) assert.equal(ggmlTypeInfo(removed), undefined);
});

/** A small valid file and a helper to patch it. */
function sample(): Uint8Array {
  return encodeGguf({
    metadata: [["general.architecture", { type: "string", value: "llama" }], ["n", { type: "u32", value: 7 }]],
    tensors: [
      { name: "a", type: GgmlType.F32, shape: [2, 2], data: new Uint8Array(16) },
      { name: "b", type: GgmlType.Q8_0, shape: [32], data: new Uint8Array(34) },
    ],
  });
}
// Offsets in sample(): magic 0, version 4, tensor count 8, kv count 16, first key length 24.
const FIRST_KEY_LENGTH_AT = 24;

function patched(edit: (view: DataView, bytes: Uint8Array) => void, bytes = sample()): Uint8Array {
  edit(new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), bytes);
  return bytes;
}

function assertFormatError(bytes: Uint8Array, field: RegExp, offset?: number): void {
  assert.throws(() => parseGguf(bytes), (e: unknown) => {
    assert.ok(e instanceof GgufFormatError, `expected GgufFormatError, got ${String(e)}`);
    assert.match(e.field, field);
    if (offset !== undefined) assert.equal(e.offset, offset);
    assert.equal(e.code, "ERR_GGUF_FORMAT");
    return true;
  });
}

/** Finds the byte offset of a tensor info field by scanning for the tensor's name. */
function tensorInfoAt(bytes: Uint8Array, name: string): number {
  const needle = new TextEncoder().encode(name);
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i - 8] === needle.length && needle.every((b, j) => bytes[i + j] === b) && bytes[i - 7] === 0) return i + needle.length;
  }
  throw new Error(`tensor ${name} not found`);
}

test("malformed GGUF headers raise GgufFormatError naming the field and offset", () => {
  assertFormatError(patched((v) => v.setUint32(0, 0x46554748, true)), /^magic$/, 0);
  assertFormatError(patched((v) => v.setUint32(4, 1, true)), /^version$/, 4);
  assertFormatError(patched((v) => v.setUint32(4, 0x03000000, true)), /^version$/, 4);
  assertFormatError(patched((v) => v.setUint32(4, 4, true)), /^version$/, 4);
  assertFormatError(patched((v) => v.setBigUint64(8, 2n ** 63n, true)), /^tensor count$/, 8);
  assertFormatError(patched((v) => v.setBigUint64(16, 2n ** 40n, true)), /^metadata count$/, 16);
  assertFormatError(patched((v) => v.setBigUint64(FIRST_KEY_LENGTH_AT, 2n ** 64n - 1n, true)), /^metadata\[0\] key$/, FIRST_KEY_LENGTH_AT);
  assertFormatError(sample().subarray(0, 3), /^magic$/, 0);
  // Two tensor infos need at least 48 bytes, so a 30-byte file fails at the count.
  assertFormatError(sample().subarray(0, 30), /^tensor count$/, 8);
  assertFormatError(sample().subarray(0, 64), /^metadata "general.architecture"$/, 56);
  // The type of the first value follows the 20-byte key "general.architecture".
  assertFormatError(patched((v) => v.setInt32(FIRST_KEY_LENGTH_AT + 8 + 20, 13, true)), /^metadata "general.architecture" type$/, FIRST_KEY_LENGTH_AT + 28);
  const bytes = sample();
  const afterA = tensorInfoAt(bytes, "a"); // n_dims u32, 2 × i64 dims, type i32, offset u64
  assertFormatError(patched((v) => v.setUint32(afterA, 5, true), sample()), /^tensor "a" n_dims$/, afterA);
  assertFormatError(patched((v) => v.setBigInt64(afterA + 4, -1n, true), sample()), /^tensor "a" shape\[0\]$/, afterA + 4);
  assertFormatError(patched((v) => v.setBigInt64(afterA + 12, 2n ** 40n, true), sample()), /^tensor "a" shape$/);
  assertFormatError(patched((v) => v.setInt32(afterA + 20, 4, true), sample()), /^tensor "a" type$/, afterA + 20);
  assertFormatError(patched((v) => v.setInt32(afterA + 20, GgmlType.Q4_0, true), sample()), /^tensor "a" shape\[0\]$/);
  assertFormatError(patched((v) => v.setBigUint64(afterA + 24, 8n, true), sample()), /^tensor "a" offset$/, afterA + 24);
  assertFormatError(patched((v) => v.setBigUint64(afterA + 24, 32n, true), sample()), /^tensor "(a|b)" offset$/);
  assertFormatError(patched((v) => v.setBigUint64(afterA + 24, 2n ** 60n, true), sample()), /^tensor "a" offset$/, afterA + 24);
  assertFormatError(sample().subarray(0, sample().length - 40), /^tensor "b" offset$/);
});

test("general.alignment must be a u32 power of two, on read and on write", () => {
  const spec = (value: GgufValue): GgufSpec => ({ metadata: [["general.alignment", value]], tensors: [] });
  assert.throws(() => encodeGguf(spec({ type: "u32", value: 24 })), FormatWriteError);
  assert.throws(() => encodeGguf(spec({ type: "u64", value: 32n })), FormatWriteError);
  const bytes = encodeGguf(spec({ type: "u32", value: 64 }));
  assert.equal(parseGguf(bytes).alignment, 64);
  // The u32 value sits at the end of the header: 24 bytes of counts, 8 + 17 key, 4 type, then 4 value.
  new DataView(bytes.buffer).setUint32(24 + 8 + 17 + 4, 48, true);
  assertFormatError(bytes, /general\.alignment/, 24);
});

test("duplicate keys and tensor names are rejected by the reader and the writer", () => {
  const bytes = encodeGguf({ metadata: [["aa", { type: "u8", value: 1 }], ["ab", { type: "u8", value: 2 }]], tensors: [] });
  const renamed = bytes.slice();
  renamed[24 + (8 + 2 + 4 + 1) + 8 + 1] = "a".charCodeAt(0); // second key "ab" → "aa"
  assertFormatError(renamed, /^metadata\[1\] key$/);
  assert.throws(() => encodeGguf({ metadata: [["k", { type: "u8", value: 1 }], ["k", { type: "u8", value: 1 }]], tensors: [] }), FormatWriteError);
  const t = { name: "t", type: GgmlType.F32, shape: [1], data: new Uint8Array(4) };
  assert.throws(() => encodeGguf({ metadata: [], tensors: [t, t] }), FormatWriteError);
});

test("the writer rejects values and tensors it cannot represent", () => {
  const bad: [string, GgufValue][] = [
    ["u8 out of range", { type: "u8", value: 256 }],
    ["i32 not integer", { type: "i32", value: 1.5 }],
    ["u64 negative", { type: "u64", value: -1n }],
    ["bool not boolean", { type: "bool", value: 1 as unknown as boolean }],
    ["wrong typed array", { type: "array", value: { type: "u32", value: new Float32Array(1) as unknown as Uint32Array } }],
    ["string array with a number", { type: "array", value: { type: "string", value: [1 as unknown as string] } }],
  ];
  for (const [key, value] of bad) assert.throws(() => encodeGguf({ metadata: [[key, value]], tensors: [] }), FormatWriteError, key);
  const tensor = { name: "t", type: GgmlType.F32, shape: [2], data: new Uint8Array(8) };
  for (const broken of [
    { ...tensor, data: new Uint8Array(7) },
    { ...tensor, type: GgmlType.Q4_0 },
    { ...tensor, type: 4 },
    { ...tensor, shape: [] },
    { ...tensor, shape: [1, 1, 1, 1, 2] },
    { ...tensor, name: "x".repeat(64) },
    { ...tensor, shape: [-2] },
  ]) {
    assert.throws(() => encodeGguf({ metadata: [], tensors: [broken] }), FormatWriteError, JSON.stringify({ ...broken, data: broken.data.length }));
  }
});

test("asking for a tensor the file lacks is a TensorNotFoundError", async () => {
  const file = await openGguf(sample());
  assert.throws(() => file.tensor("missing"), TensorNotFoundError);
  await assert.rejects(() => file.readTensor("missing"), TensorNotFoundError);
});
