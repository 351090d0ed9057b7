// fast-check arbitraries for GGUF files: metadata of every value type (nested arrays included)
// and tensors of every ggml type with matching random data.
import fc from "fast-check";
import { type GgufArray, type GgufSpec, type GgufTensorSpec, type GgufValue, ggmlTypes } from "../../src/formats/index.ts";

const ints = {
  u8: fc.integer({ min: 0, max: 0xff }),
  i8: fc.integer({ min: -0x80, max: 0x7f }),
  u16: fc.integer({ min: 0, max: 0xffff }),
  i16: fc.integer({ min: -0x8000, max: 0x7fff }),
  u32: fc.integer({ min: 0, max: 0xffffffff }),
  i32: fc.integer({ min: -0x80000000, max: 0x7fffffff }),
  f32: fc.float(),
  f64: fc.double(),
};
const bigints = {
  u64: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  i64: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
};
const text = fc.string({ unit: "grapheme", maxLength: 12 });

export const scalarValue: fc.Arbitrary<GgufValue> = fc.oneof(
  ...Object.entries(ints).map(([type, arb]) => arb.map((value) => ({ type, value }) as GgufValue)),
  ...Object.entries(bigints).map(([type, arb]) => arb.map((value) => ({ type, value }) as GgufValue)),
  fc.boolean().map((value): GgufValue => ({ type: "bool", value })),
  text.map((value): GgufValue => ({ type: "string", value })),
);

const typedArrays = {
  u8: Uint8Array, i8: Int8Array, u16: Uint16Array, i16: Int16Array, u32: Uint32Array, i32: Int32Array,
  f32: Float32Array, f64: Float64Array, u64: BigUint64Array, i64: BigInt64Array,
} as const;
const options = { maxLength: 6 };

const { array: arrayValue } = fc.letrec<{ array: GgufArray }>((tie) => ({
  array: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    ...Object.entries(ints).map(([type, arb]) => fc.array(arb, options).map((xs) => ({ type, value: (typedArrays[type as keyof typeof ints] as Float64ArrayConstructor).from(xs) }) as GgufArray)),
    ...Object.entries(bigints).map(([type, arb]) => fc.array(arb, options).map((xs) => ({ type, value: (typedArrays[type as keyof typeof bigints] as BigInt64ArrayConstructor).from(xs) }) as GgufArray)),
    fc.array(fc.boolean(), options).map((value): GgufArray => ({ type: "bool", value })),
    fc.array(text, options).map((value): GgufArray => ({ type: "string", value })),
    fc.array(tie("array"), { maxLength: 3 }).map((value): GgufArray => ({ type: "array", value })),
  ),
}));

export const ggufValue: fc.Arbitrary<GgufValue> = fc.oneof(scalarValue, arrayValue.map((value): GgufValue => ({ type: "array", value })));

const ggufKey = fc.string({ unit: "grapheme-ascii", minLength: 1, maxLength: 24 }).filter((k) => k !== "general.alignment");

export const metadataEntries: fc.Arbitrary<[string, GgufValue][]> = fc.uniqueArray(fc.tuple(ggufKey, ggufValue), {
  selector: ([key]) => key,
  maxLength: 8,
});

const tensorName = fc.stringMatching(/^[a-z][a-z0-9_.]{0,40}$/);

/** A tensor of any ggml type with a valid shape and random bytes of the right length. */
export const tensorSpec = (name: string): fc.Arbitrary<GgufTensorSpec> =>
  fc.record({
    typeIndex: fc.nat(ggmlTypes.length - 1),
    rowBlocks: fc.nat(3),
    outer: fc.array(fc.nat(3), { maxLength: 3 }),
    seed: fc.nat(),
  }).map(({ typeIndex, rowBlocks, outer, seed }) => {
    const type = ggmlTypes[typeIndex]!;
    const shape = [rowBlocks * type.blockSize, ...outer];
    const length = (shape[0]! / type.blockSize) * outer.reduce((a, b) => a * b, 1) * type.typeSize;
    const data = Uint8Array.from({ length }, (_, i) => (seed + i * 131) & 0xff);
    return { name, type: type.id, shape, data };
  });

export const ggufSpec: fc.Arbitrary<GgufSpec> = fc.record({
  version: fc.constantFrom(2 as const, 3 as const),
  metadata: metadataEntries,
  alignment: fc.option(fc.constantFrom(1, 8, 16, 32, 64, 128)),
  names: fc.uniqueArray(tensorName, { maxLength: 5 }),
}).chain(({ version, metadata, alignment, names }) =>
  fc.tuple(...names.map(tensorSpec)).map((tensors): GgufSpec => ({
    version,
    metadata: alignment === null ? metadata : [...metadata, ["general.alignment", { type: "u32", value: alignment }]],
    tensors,
  })),
);
