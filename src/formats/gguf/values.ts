// GGUF metadata values. Each value carries its GGUF type so that a read → write round trip is
// byte-identical; arrays of numbers are typed arrays so that large vocabularies stay compact.

/** GGUF value types, with the ids the file stores (gguf.h `enum gguf_type`). */
export const GgufValueTypeId = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;

export type GgufValueType = keyof typeof GgufValueTypeId;
export type GgufNumberType = "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "f64";
export type GgufBigIntType = "u64" | "i64";

/** One metadata value. */
export type GgufValue =
  | { type: GgufNumberType; value: number }
  | { type: GgufBigIntType; value: bigint }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "array"; value: GgufArray };

/** The contents of an array value; arrays may nest. */
export type GgufArray =
  | { type: "u8"; value: Uint8Array }
  | { type: "i8"; value: Int8Array }
  | { type: "u16"; value: Uint16Array }
  | { type: "i16"; value: Int16Array }
  | { type: "u32"; value: Uint32Array }
  | { type: "i32"; value: Int32Array }
  | { type: "f32"; value: Float32Array }
  | { type: "f64"; value: Float64Array }
  | { type: "u64"; value: BigUint64Array }
  | { type: "i64"; value: BigInt64Array }
  | { type: "bool"; value: boolean[] }
  | { type: "string"; value: string[] }
  | { type: "array"; value: GgufArray[] };

/** The metadata of a GGUF file, in file order. */
export type GgufMetadata = Map<string, GgufValue>;

/** A typed-array class that holds one GGUF element type. */
export type GgufArrayConstructor = {
  new (buffer: ArrayBuffer): ArrayLike<number | bigint> & { readonly buffer: ArrayBufferLike; readonly byteOffset: number; readonly byteLength: number };
  readonly BYTES_PER_ELEMENT: number;
};

/** Fixed-size element types: their byte size and the typed array that holds them. */
export const fixedSizeTypes: Readonly<Record<GgufNumberType | GgufBigIntType, GgufArrayConstructor>> = {
  u8: Uint8Array,
  i8: Int8Array,
  u16: Uint16Array,
  i16: Int16Array,
  u32: Uint32Array,
  i32: Int32Array,
  f32: Float32Array,
  f64: Float64Array,
  u64: BigUint64Array,
  i64: BigInt64Array,
};

/** Plain JS for a value: numbers, bigints, booleans, strings and (nested) arrays. */
export type GgufPlain = number | bigint | boolean | string | GgufPlain[];

/** Drops the type tags, e.g. for printing or for code that only wants the data. */
export function plainValue(value: GgufValue): GgufPlain {
  return value.type === "array" ? plainArray(value.value) : value.value;
}

function plainArray(array: GgufArray): GgufPlain[] {
  if (array.type === "array") return array.value.map(plainArray);
  return Array.from(array.value as ArrayLike<number | bigint | boolean | string>);
}
