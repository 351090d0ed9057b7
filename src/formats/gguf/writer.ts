// GGUF v3 (or v2) writer, laid out the way llama.cpp's gguf_write_out does: header, metadata,
// tensor infos, padding to the alignment, then each tensor's data padded to the alignment.
import { FormatWriteError } from "../errors.ts";
import { ByteWriter, openForWriting } from "../byte-writer.ts";
import { ggmlTensorBytes, ggmlTypeInfo } from "./ggml-types.ts";
import { GGML_MAX_DIMS, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC } from "./reader.ts";
import { type GgufArray, type GgufValue, type GgufValueType, GgufValueTypeId, fixedSizeTypes } from "./values.ts";

export interface GgufTensorSpec {
  readonly name: string;
  /** ggml type id, e.g. `GgmlType.F32`. */
  readonly type: number;
  /** Dimensions, innermost first (ggml's ne[0]). */
  readonly shape: readonly number[];
  /** The tensor's bytes, exactly as ggml lays them out. */
  readonly data: Uint8Array;
}

export interface GgufSpec {
  /** 3 (default) or 2; the layouts are identical for little-endian files. */
  readonly version?: 2 | 3;
  readonly metadata: Iterable<readonly [string, GgufValue]> | Readonly<Record<string, GgufValue>>;
  readonly tensors: readonly GgufTensorSpec[];
}

/** llama.cpp refuses tensor names of GGML_MAX_NAME (64) bytes or more. */
const GGML_MAX_NAME = 64;

const utf8 = new TextEncoder();

const integerRanges: Partial<Record<GgufValueType, readonly [number, number]>> = {
  u8: [0, 0xff],
  i8: [-0x80, 0x7f],
  u16: [0, 0xffff],
  i16: [-0x8000, 0x7fff],
  u32: [0, 0xffffffff],
  i32: [-0x80000000, 0x7fffffff],
};
const bigintRanges: Partial<Record<GgufValueType, readonly [bigint, bigint]>> = {
  u64: [0n, 2n ** 64n - 1n],
  i64: [-(2n ** 63n), 2n ** 63n - 1n],
};

function fail(field: string, detail: string): never {
  throw new FormatWriteError("GGUF", field, detail);
}

function writeString(out: ByteWriter, text: string): void {
  const bytes = utf8.encode(text);
  out.u64(bytes.length);
  out.bytes(bytes);
}

function writeScalar(out: ByteWriter, type: GgufValueType, value: unknown, field: string): void {
  const intRange = integerRanges[type];
  const bigRange = bigintRanges[type];
  if (intRange !== undefined && !(Number.isInteger(value) && (value as number) >= intRange[0] && (value as number) <= intRange[1])) {
    fail(field, `${String(value)} is not a ${type}`);
  }
  if (bigRange !== undefined && !(typeof value === "bigint" && value >= bigRange[0] && value <= bigRange[1])) {
    fail(field, `${String(value)} is not a ${type} bigint`);
  }
  if ((type === "f32" || type === "f64") && typeof value !== "number") fail(field, `${String(value)} is not a number`);
  if (type === "bool" && typeof value !== "boolean") fail(field, `${String(value)} is not a boolean`);
  if (type === "string" && typeof value !== "string") fail(field, `${String(value)} is not a string`);
  switch (type) {
    case "u8": return out.u8(value as number);
    case "i8": return out.i8(value as number);
    case "u16": return out.u16(value as number);
    case "i16": return out.i16(value as number);
    case "u32": return out.u32(value as number);
    case "i32": return out.i32(value as number);
    case "f32": return out.f32(value as number);
    case "f64": return out.f64(value as number);
    case "u64": return out.u64(value as bigint);
    case "i64": return out.i64(value as bigint);
    case "bool": return out.u8(value ? 1 : 0);
    case "string": return writeString(out, value as string);
    default: fail(field, `unknown value type ${String(type)}`);
  }
}

function writeArray(out: ByteWriter, array: GgufArray, field: string): void {
  const id = GgufValueTypeId[array.type];
  if (id === undefined) fail(field, `unknown array element type ${String(array.type)}`);
  out.i32(id);
  out.u64(array.value.length);
  if (array.type === "array") {
    array.value.forEach((item, i) => writeArray(out, item, `${field}[${i}]`));
  } else if (array.type === "bool" || array.type === "string") {
    array.value.forEach((item, i) => writeScalar(out, array.type, item, `${field}[${i}]`));
  } else {
    // Typed arrays hold only valid values of their type; copy them whole (little-endian hosts).
    const v = array.value;
    if (!(v instanceof fixedSizeTypes[array.type])) fail(field, `a ${array.type} array needs a ${fixedSizeTypes[array.type].name}`);
    out.bytes(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  }
}

function writeValue(out: ByteWriter, value: GgufValue, field: string): void {
  const id = GgufValueTypeId[value.type];
  if (id === undefined) fail(field, `unknown value type ${String(value.type)}`);
  out.i32(id);
  if (value.type === "array") writeArray(out, value.value, field);
  else writeScalar(out, value.type, value.value, field);
}

function metadataEntries(metadata: GgufSpec["metadata"]): [string, GgufValue][] {
  const entries = Symbol.iterator in metadata
    ? [...(metadata as Iterable<readonly [string, GgufValue]>)].map(([k, v]) => [k, v] as [string, GgufValue])
    : Object.entries(metadata as Record<string, GgufValue>);
  const seen = new Set<string>();
  for (const [key] of entries) {
    if (key === "") fail("metadata", "empty key");
    if (seen.has(key)) fail(`metadata "${key}"`, "duplicate key");
    seen.add(key);
  }
  return entries;
}

function alignmentOf(entries: readonly [string, GgufValue][]): number {
  const value = entries.find(([k]) => k === "general.alignment")?.[1];
  if (value === undefined) return GGUF_DEFAULT_ALIGNMENT;
  if (value.type !== "u32" || value.value === 0 || (value.value & (value.value - 1)) !== 0) {
    fail("metadata \"general.alignment\"", "must be a u32 power of two");
  }
  return value.value;
}

function checkTensor(tensor: GgufTensorSpec, names: Set<string>): void {
  const field = `tensor "${tensor.name}"`;
  const nameBytes = utf8.encode(tensor.name).length;
  if (nameBytes === 0 || nameBytes >= GGML_MAX_NAME) fail(field, `name must be 1 to ${GGML_MAX_NAME - 1} bytes`);
  if (names.has(tensor.name)) fail(field, "duplicate tensor name");
  names.add(tensor.name);
  if (tensor.shape.length === 0 || tensor.shape.length > GGML_MAX_DIMS) fail(field, `needs 1 to ${GGML_MAX_DIMS} dimensions`);
  if (!tensor.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(field, `invalid shape [${tensor.shape.join(", ")}]`);
  const type = ggmlTypeInfo(tensor.type);
  if (type === undefined) fail(field, `unknown ggml type ${tensor.type}`);
  if (tensor.shape[0]! % type.blockSize !== 0) fail(field, `shape[0] = ${tensor.shape[0]} is not a multiple of the ${type.name} block size ${type.blockSize}`);
  const expected = ggmlTensorBytes(type, tensor.shape);
  if (BigInt(tensor.data.length) !== expected) fail(field, `has ${tensor.data.length} bytes of data, its shape and type need ${expected}`);
}

interface GgufLayout {
  /** Everything before the data section, padding included. */
  readonly header: Uint8Array;
  readonly alignment: number;
}

function layout(spec: GgufSpec): GgufLayout {
  const entries = metadataEntries(spec.metadata);
  const alignment = alignmentOf(entries);
  const names = new Set<string>();
  spec.tensors.forEach((t) => checkTensor(t, names));

  const out = new ByteWriter();
  out.u32(GGUF_MAGIC);
  out.u32(spec.version ?? 3);
  out.u64(spec.tensors.length);
  out.u64(entries.length);
  for (const [key, value] of entries) {
    writeString(out, key);
    writeValue(out, value, `metadata "${key}"`);
  }
  let offset = 0;
  for (const tensor of spec.tensors) {
    writeString(out, tensor.name);
    out.u32(tensor.shape.length);
    tensor.shape.forEach((d) => out.u64(d));
    out.i32(tensor.type);
    out.u64(offset);
    offset += paddedLength(tensor.data.length, alignment);
  }
  out.pad(alignment);
  return { header: out.result(), alignment };
}

function paddedLength(length: number, alignment: number): number {
  return Math.ceil(length / alignment) * alignment;
}

/** Encodes a whole GGUF file in memory. */
export function encodeGguf(spec: GgufSpec): Uint8Array {
  const { header, alignment } = layout(spec);
  const total = spec.tensors.reduce((sum, t) => sum + paddedLength(t.data.length, alignment), header.length);
  const file = new Uint8Array(total);
  file.set(header);
  let at = header.length;
  for (const tensor of spec.tensors) {
    file.set(tensor.data, at);
    at += paddedLength(tensor.data.length, alignment);
  }
  return file;
}

/** Writes a GGUF file tensor by tensor, without assembling it in memory. */
export async function writeGgufFile(path: string, spec: GgufSpec): Promise<void> {
  const { header, alignment } = layout(spec);
  const file = await openForWriting(path);
  try {
    await file.write(header);
    for (const tensor of spec.tensors) {
      await file.write(tensor.data);
      await file.write(new Uint8Array(paddedLength(tensor.data.length, alignment) - tensor.data.length));
    }
  } finally {
    await file.close();
  }
}
