// Struct layouts and the codec that Deno, the Bun shim and native-memory reads share.
import assert from "node:assert/strict";
import fc from "fast-check";
import { test } from "../harness.ts";
import { type FieldType, type ScalarType, type StructType, FfiArgumentError, decodeStruct, defineStruct, encodeStruct, isStructType, sizeOf } from "../../src/ffi/index.ts";

const scalarTypes: ScalarType[] = ["bool", "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "isize", "usize", "f32", "f64", "ptr"];

const fieldType: fc.Arbitrary<FieldType> = fc.letrec<{ field: FieldType; struct: StructType }>((tie) => ({
  field: fc.oneof(
    { maxDepth: 3 },
    { weight: 6, arbitrary: fc.constantFrom(...scalarTypes) },
    { weight: 1, arbitrary: fc.record({ array: fc.constantFrom(...scalarTypes), length: fc.integer({ min: 1, max: 5 }) }) },
    { weight: 1, arbitrary: tie("struct") as fc.Arbitrary<StructType> },
  ),
  struct: fc.array(tie("field"), { minLength: 1, maxLength: 5 }).map((fields) => defineStruct("nested", Object.fromEntries(fields.map((f, i) => [`n${i}`, f])))),
})).field;

const structType = fc.array(fieldType, { minLength: 1, maxLength: 8 }).map((fields) => defineStruct("random", Object.fromEntries(fields.map((f, i) => [`f${i}`, f]))));

function scalarValue(type: ScalarType): fc.Arbitrary<unknown> {
  switch (type) {
    case "bool": return fc.boolean();
    case "f32": return fc.float({ noNaN: true });
    case "f64": return fc.double({ noNaN: true });
    case "i64": return fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
    case "u64": return fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
    case "isize": return fc.maxSafeInteger();
    case "usize": case "ptr": return fc.maxSafeNat();
    default: {
      const bits = Number(type.slice(1));
      return type.startsWith("u") ? fc.integer({ min: 0, max: 2 ** bits - 1 }) : fc.integer({ min: -(2 ** (bits - 1)), max: 2 ** (bits - 1) - 1 });
    }
  }
}
function valueOf(type: FieldType): fc.Arbitrary<unknown> {
  if (isStructType(type)) return fc.record(Object.fromEntries(type.layout.map((f) => [f.name, valueOf(f.type)])), { noNullPrototype: true });
  if (typeof type === "object") return fc.array(scalarValue(type.array), { minLength: type.length, maxLength: type.length });
  return scalarValue(type);
}

test("layouts: fields aligned, in order, not overlapping; size a multiple of the alignment", () => {
  fc.assert(fc.property(structType, (t) => {
    let end = 0;
    for (const field of t.layout) {
      const align = isStructType(field.type) ? field.type.alignment : sizeOf(typeof field.type === "object" && "array" in field.type ? field.type.array : field.type);
      if (field.offset % align !== 0 || field.offset < end) return false;
      end = field.offset + sizeOf(field.type);
    }
    return t.size >= end && t.size % t.alignment === 0 && t.size - end < t.alignment;
  }));
});

test("encode then decode gives the value back, bit for bit", () => {
  fc.assert(fc.property(structType.chain((t) => fc.tuple(fc.constant(t), valueOf(t))), ([t, value]) => {
    const bytes = encodeStruct(t, value as never);
    assert.equal(bytes.byteLength, t.size);
    assert.deepEqual(decodeStruct(t, bytes), value);
    // Decoding at an offset inside a larger buffer reads the same value.
    const padded = new Uint8Array(t.size + 24);
    padded.set(bytes, 16);
    assert.deepEqual(decodeStruct(t, padded, 16), value);
  }), { numRuns: 300 });
});

test("known C layouts", () => {
  const llamaLike = defineStruct("s", { a: "i32", b: "u8", c: "f64", d: { array: "i16", length: 3 }, e: "bool", f: "ptr" });
  assert.deepEqual(llamaLike.layout.map((f) => f.offset), [0, 4, 8, 16, 22, 24]);
  assert.equal(llamaLike.size, 32);
  assert.equal(defineStruct("c", { x: "u8" }).size, 1);
  assert.equal(defineStruct("d", { x: "f64", y: "u8" }).size, 16);
});

test("bad definitions and values are refused with the field named", () => {
  assert.throws(() => defineStruct("empty", {}), TypeError);
  assert.throws(() => defineStruct("bad", { x: "int" as never }), /field x has unknown type/);
  assert.throws(() => defineStruct("bad", { x: { array: "u8", length: 0 } }), /positive whole array length/);
  const t = defineStruct("t", { small: "u8", big: "u64", nested: defineStruct("n", { flag: "bool" }) });
  for (const [value, field] of [[{ small: 256 }, "small"], [{ small: 1.5 }, "small"], [{ small: "1" }, "small"], [{ big: -1n }, "big"], [{ big: 2n ** 64n }, "big"], [{ nested: { flag: 2 } }, "nested.flag"]] as const) {
    assert.throws(() => encodeStruct(t, value as never), (e: unknown) => e instanceof FfiArgumentError && e.message.includes(`t.${field}`), JSON.stringify(value, (_, v) => (typeof v === "bigint" ? `${v}n` : v)));
  }
  assert.throws(() => decodeStruct(t, new Uint8Array(t.size - 1)), FfiArgumentError);
});
