// safetensors reader and writer: round trips, the format's layout rules, lazy file reads, and a
// 10,000-input fuzz of byte-level and header-level (JSON) mutations.
import assert from "node:assert/strict";
import fc from "fast-check";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "../harness.ts";
import {
  FormatWriteError,
  SAFETENSORS_MAX_HEADER_BYTES,
  type SafetensorsDtype,
  SafetensorsFormatError,
  type SafetensorsSpec,
  encodeSafetensors,
  openSafetensors,
  parseSafetensors,
  safetensorsDtypeSizes,
  writeSafetensorsFile,
} from "../../src/formats/index.ts";
import { fuzz, mutatedFile } from "./mutations.ts";

const dtypes = Object.keys(safetensorsDtypeSizes) as SafetensorsDtype[];

const tensor = (name: string) =>
  fc.record({ dtype: fc.constantFrom(...dtypes), shape: fc.array(fc.nat(4), { maxLength: 4 }), seed: fc.nat() }).map(({ dtype, shape, seed }) => {
    const length = shape.reduce((a, b) => a * b, safetensorsDtypeSizes[dtype]);
    return { name, dtype, shape, data: Uint8Array.from({ length }, (_, i) => (seed + 7 * i) & 0xff) };
  });

const spec: fc.Arbitrary<SafetensorsSpec> = fc.record({
  names: fc.uniqueArray(fc.string({ unit: "grapheme", minLength: 1, maxLength: 16 }).filter((n) => n !== "__metadata__"), { maxLength: 6 }),
  metadata: fc.option(fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 16 }))),
}).chain(({ names, metadata }) =>
  fc.tuple(...names.map(tensor)).map((tensors): SafetensorsSpec => (metadata === null ? { tensors } : { tensors, metadata })));

test("safetensors round trip: write → read gives the same tensors and metadata", async () => {
  await fc.assert(fc.asyncProperty(spec, async (s) => {
    const bytes = encodeSafetensors(s);
    const file = await openSafetensors(bytes);
    assert.equal(file.header.dataOffset % 8, 0);
    // fc.dictionary makes null-prototype objects, JSON.parse plain ones: compare the entries.
    assert.deepEqual(file.metadata && Object.entries(file.metadata), s.metadata && Object.entries(s.metadata));
    // Zero-length tensors share offsets, so compare as sets keyed by name.
    const byName = new Map(file.tensors.map((t) => [t.name, t]));
    assert.equal(byName.size, s.tensors.length);
    for (const t of s.tensors) {
      assert.deepEqual({ dtype: byName.get(t.name)!.dtype, shape: byName.get(t.name)!.shape }, { dtype: t.dtype, shape: t.shape });
      assert.deepEqual(await file.readTensor(t.name), t.data);
    }
  }), { numRuns: 300 });
});

test("tensor names that are Object.prototype's own keys round-trip", async () => {
  const names = ["__proto__", "constructor", "toString", "hasOwnProperty"];
  const tensors = names.map((name, i) => ({ name, dtype: "U8" as const, shape: [1], data: Uint8Array.of(i) }));
  const file = await openSafetensors(encodeSafetensors({ tensors }));
  assert.deepEqual(file.tensors.map((t) => t.name).sort(), [...names].sort());
  for (const [i, name] of names.entries()) assert.deepEqual(await file.readTensor(name), Uint8Array.of(i));
});

test("safetensors files are read lazily from a path", async () => {
  const dir = await mkdtemp(join(tmpdir(), "gpuffi-st-"));
  try {
    await fc.assert(fc.asyncProperty(spec, async (s) => {
      const path = join(dir, "m.safetensors");
      await writeSafetensorsFile(path, s);
      await using file = await openSafetensors(path);
      assert.deepEqual(file.header, parseSafetensors(encodeSafetensors(s)));
      for (const t of s.tensors) assert.deepEqual(await file.readTensor(t.name), t.data);
    }), { numRuns: 30 });
  } finally {
    await rm(dir, { recursive: true });
  }
});

/** A file with this JSON header and `dataLength` data bytes. */
function withHeader(header: unknown, dataLength: number, headerLength?: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const bytes = new Uint8Array(8 + json.length + dataLength);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(headerLength ?? json.length), true);
  bytes.set(json, 8);
  return bytes;
}

function assertRejected(bytes: Uint8Array, field: RegExp): void {
  assert.throws(() => parseSafetensors(bytes), (e: unknown) => {
    assert.ok(e instanceof SafetensorsFormatError, `expected SafetensorsFormatError, got ${String(e)}`);
    assert.match(e.field, field);
    return true;
  });
}

test("the safetensors layout rules are enforced", () => {
  const f32 = (begin: number, end: number, shape = [(end - begin) / 4]) => ({ dtype: "F32", shape, data_offsets: [begin, end] });
  assert.equal(parseSafetensors(withHeader({ a: f32(0, 8), b: f32(8, 16) }, 16)).tensors.length, 2);
  assertRejected(withHeader({ a: f32(0, 8), b: f32(4, 12) }, 12), /^tensor "b" data_offsets$/); // overlap
  assertRejected(withHeader({ a: f32(0, 8), b: f32(12, 16) }, 16), /^tensor "b" data_offsets$/); // gap
  assertRejected(withHeader({ a: f32(4, 12) }, 12), /^tensor "a" data_offsets$/); // not starting at 0
  assertRejected(withHeader({ a: f32(0, 8) }, 12), /^data section$/); // trailing bytes
  assertRejected(withHeader({ a: f32(0, 8) }, 4), /^data section$/); // truncated data
  assertRejected(withHeader({ a: f32(0, 8, [3]) }, 8), /^tensor "a" data_offsets$/); // shape × size ≠ length
  assertRejected(withHeader({ a: { dtype: "F4", shape: [2], data_offsets: [0, 1] } }, 1), /^tensor "a" dtype$/);
  assertRejected(withHeader({ a: { dtype: "F32", shape: [-1], data_offsets: [0, 0] } }, 0), /^tensor "a" shape$/);
  assertRejected(withHeader({ a: { dtype: "F32", shape: [1], data_offsets: [4, 0] } }, 4), /^tensor "a" data_offsets$/);
  assertRejected(withHeader({ a: { dtype: "F32", shape: [2 ** 60], data_offsets: [0, 4] } }, 4), /^tensor "a" shape$/);
  assertRejected(withHeader({ __metadata__: { k: 1 } }, 0), /^__metadata__ "k"$/);
  assertRejected(withHeader("[1, 2]", 0), /^header$/);
  assertRejected(withHeader("{\"a\": ", 0), /^header$/);
  assertRejected(withHeader("{}", 0, 1000), /^header length$/);
  assertRejected(withHeader("{}", 0, SAFETENSORS_MAX_HEADER_BYTES + 1), /^header length$/);
  assertRejected(new Uint8Array(5), /^header length$/);
  const invalidUtf8 = withHeader("{}  ", 0);
  invalidUtf8[10] = 0xff;
  assertRejected(invalidUtf8, /^header$/);
  const deep = `${"[".repeat(200_000)}${"]".repeat(200_000)}`;
  assertRejected(withHeader(`{"a": ${deep}}`, 0), /^(header|tensor "a")$/);
});

test("the safetensors writer rejects what the format cannot hold", () => {
  const data = new Uint8Array(8);
  const bad: SafetensorsSpec[] = [
    { tensors: [{ name: "a", dtype: "F32", shape: [3], data }] },
    { tensors: [{ name: "a", dtype: "F4" as SafetensorsDtype, shape: [2], data }] },
    { tensors: [{ name: "a", dtype: "F32", shape: [2], data }, { name: "a", dtype: "F32", shape: [2], data }] },
    { tensors: [{ name: "__metadata__", dtype: "F32", shape: [2], data }] },
    { tensors: [], metadata: { k: 1 as unknown as string } },
  ];
  for (const s of bad) assert.throws(() => encodeSafetensors(s), FormatWriteError);
});

/** Header-level mutations: valid JSON, broken rules (offsets, shapes, dtypes, metadata). */
const headerMutation = fc.record({
  seed: spec.filter((s) => s.tensors.length > 0),
  tensorIndex: fc.nat(),
  edit: fc.oneof(
    fc.record({ key: fc.constant("data_offsets"), value: fc.array(fc.oneof(fc.nat(64), fc.constant(2 ** 53), fc.constant(-1), fc.double())) }),
    fc.record({ key: fc.constant("shape"), value: fc.array(fc.oneof(fc.nat(8), fc.constant(2 ** 40), fc.constant(-3), fc.constant("2"))) }),
    fc.record({ key: fc.constant("dtype"), value: fc.oneof(fc.constantFrom(...dtypes, "F4", "f32", ""), fc.integer()) }),
    fc.record({ key: fc.constant("__metadata__"), value: fc.oneof(fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer())), fc.constant(null)) }),
  ),
  lengthDelta: fc.oneof(fc.constant(0), fc.integer({ min: -8, max: 8 })),
}).map(({ seed, tensorIndex, edit, lengthDelta }) => {
  const bytes = encodeSafetensors(seed);
  const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))) as Record<string, Record<string, unknown>>;
  if (edit.key === "__metadata__") header.__metadata__ = edit.value as Record<string, unknown>;
  else header[seed.tensors[tensorIndex % seed.tensors.length]!.name]![edit.key] = edit.value;
  // Re-encode with the edited header, then cut or zero-extend the data by lengthDelta bytes.
  const data = bytes.subarray(8 + headerLength);
  const dataLength = Math.max(0, data.length + lengthDelta);
  const edited = withHeader(header, dataLength);
  edited.set(data.subarray(0, dataLength), edited.length - dataLength);
  return edited;
});

test("fuzz: 10,000 mutated safetensors files end in success or SafetensorsFormatError", () => {
  const seeds = fc.sample(spec.filter((s) => s.tensors.length > 0), 5).map((s) => {
    const bytes = encodeSafetensors(s);
    return { bytes, headerLength: parseSafetensors(bytes).dataOffset };
  });
  const parse = (bytes: Uint8Array) => {
    const header = parseSafetensors(bytes);
    for (const t of header.tensors) assert.ok(header.dataOffset + t.dataOffsets[1] <= bytes.length);
  };
  const isExpected = (e: unknown) => e instanceof SafetensorsFormatError;
  fuzz(mutatedFile(seeds), 6_000, parse, isExpected);
  fuzz(headerMutation, 4_000, parse, isExpected);
}, { timeout: 60_000 });
