// Struct values ↔ bytes in the C layout computed by defineStruct. Deno and the Bun shim pass
// structs as bytes; the same codec reads structs that C left in native memory on every runtime.
import { FfiArgumentError } from "./errors.ts";
import {
  type FieldType,
  type ScalarType,
  type StructFields,
  type StructInit,
  type StructType,
  type StructValue,
  isArrayField,
  isStructType,
  sizeOf,
} from "./types.ts";

const intRanges: Partial<Record<ScalarType, readonly [number, number]>> = {
  i8: [-0x80, 0x7f], u8: [0, 0xff], i16: [-0x8000, 0x7fff], u16: [0, 0xffff],
  i32: [-0x8000_0000, 0x7fff_ffff], u32: [0, 0xffff_ffff],
  isize: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER], usize: [0, Number.MAX_SAFE_INTEGER],
  ptr: [0, Number.MAX_SAFE_INTEGER],
};

/** Checks that `value` is a valid JS value for a scalar C type; `where` names it in the error. */
export function checkScalar(type: ScalarType, value: unknown, where: string): void {
  if (type === "bool") {
    if (typeof value !== "boolean" && value !== 0 && value !== 1) throw new FfiArgumentError(`${where}: expected a boolean, got ${describe(value)}`);
    return;
  }
  if (type === "f32" || type === "f64") {
    if (typeof value !== "number") throw new FfiArgumentError(`${where}: expected a number, got ${describe(value)}`);
    return;
  }
  if (type === "i64" || type === "u64") {
    const big = typeof value === "bigint" ? value : typeof value === "number" && Number.isInteger(value) ? BigInt(value) : undefined;
    const [lo, hi] = type === "i64" ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n];
    if (big === undefined || big < lo || big > hi) throw new FfiArgumentError(`${where}: expected an ${type} integer, got ${describe(value)}`);
    return;
  }
  const [lo, hi] = intRanges[type]!;
  if (typeof value !== "number" || !Number.isInteger(value) || value < lo || value > hi) {
    throw new FfiArgumentError(`${where}: expected ${type === "ptr" ? "a pointer (non-negative integer)" : `an ${type} integer`} in [${lo}, ${hi}], got ${describe(value)}`);
  }
}

function describe(value: unknown): string {
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "string") return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (value === null || typeof value !== "object") return String(value);
  return value.constructor?.name ?? "object";
}

function writeScalar(view: DataView, offset: number, type: ScalarType, value: unknown, where: string): void {
  checkScalar(type, value, where);
  switch (type) {
    case "bool": view.setUint8(offset, value ? 1 : 0); break;
    case "i8": view.setInt8(offset, value as number); break;
    case "u8": view.setUint8(offset, value as number); break;
    case "i16": view.setInt16(offset, value as number, true); break;
    case "u16": view.setUint16(offset, value as number, true); break;
    case "i32": view.setInt32(offset, value as number, true); break;
    case "u32": view.setUint32(offset, value as number, true); break;
    case "f32": view.setFloat32(offset, value as number, true); break;
    case "f64": view.setFloat64(offset, value as number, true); break;
    case "i64": view.setBigInt64(offset, BigInt(value as number | bigint), true); break;
    case "u64": view.setBigUint64(offset, BigInt(value as number | bigint), true); break;
    case "isize": view.setBigInt64(offset, BigInt(value as number), true); break;
    case "usize": case "ptr": view.setBigUint64(offset, BigInt(value as number), true); break;
  }
}

function readScalar(view: DataView, offset: number, type: ScalarType): number | bigint | boolean {
  switch (type) {
    case "bool": return view.getUint8(offset) !== 0;
    case "i8": return view.getInt8(offset);
    case "u8": return view.getUint8(offset);
    case "i16": return view.getInt16(offset, true);
    case "u16": return view.getUint16(offset, true);
    case "i32": return view.getInt32(offset, true);
    case "u32": return view.getUint32(offset, true);
    case "f32": return view.getFloat32(offset, true);
    case "f64": return view.getFloat64(offset, true);
    case "i64": return view.getBigInt64(offset, true);
    case "u64": return view.getBigUint64(offset, true);
    case "isize": return Number(view.getBigInt64(offset, true));
    case "usize": case "ptr": return Number(view.getBigUint64(offset, true));
  }
}

function writeField(view: DataView, offset: number, type: FieldType, value: unknown, where: string): void {
  if (value === undefined) return; // left out: stays zero
  if (isStructType(type)) {
    if (typeof value !== "object" || value === null) throw new FfiArgumentError(`${where}: expected a ${type.name} object, got ${describe(value)}`);
    writeStructInto(view, offset, type, value as Record<string, unknown>, where);
  } else if (isArrayField(type)) {
    const items = value as ArrayLike<unknown>;
    if (typeof items !== "object" || items === null || typeof items.length !== "number") throw new FfiArgumentError(`${where}: expected an array of ${type.length} ${type.array}, got ${describe(value)}`);
    if (items.length > type.length) throw new FfiArgumentError(`${where}: ${items.length} elements do not fit ${type.array}[${type.length}]`);
    const step = sizeOf(type.array);
    for (let i = 0; i < items.length; i++) writeScalar(view, offset + i * step, type.array, items[i], `${where}[${i}]`);
  } else {
    writeScalar(view, offset, type, value, where);
  }
}

function writeStructInto(view: DataView, base: number, type: StructType, init: Record<string, unknown>, where: string): void {
  for (const key of Object.keys(init)) {
    if (!(key in type.fields)) throw new FfiArgumentError(`${where}: struct ${type.name} has no field ${key} (fields: ${Object.keys(type.fields).join(", ")})`);
  }
  for (const field of type.layout) writeField(view, base + field.offset, field.type, init[field.name], `${where}.${field.name}`);
}

function readField(view: DataView, offset: number, type: FieldType): unknown {
  if (isStructType(type)) return readStruct(view, offset, type);
  if (isArrayField(type)) {
    const step = sizeOf(type.array);
    return Array.from({ length: type.length }, (_, i) => readScalar(view, offset + i * step, type.array));
  }
  return readScalar(view, offset, type);
}

function readStruct(view: DataView, base: number, type: StructType): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of type.layout) out[field.name] = readField(view, base + field.offset, field.type);
  return out;
}

/** Encodes a struct value (missing fields zero) into a new buffer of exactly `type.size` bytes. */
export function encodeStruct<F extends StructFields>(type: StructType<F>, init: StructInit<F>, where = type.name): Uint8Array {
  const bytes = new Uint8Array(type.size);
  writeStructInto(new DataView(bytes.buffer), 0, type, init as Record<string, unknown>, where);
  return bytes;
}

/** Writes a struct value into existing memory (for example a native view) at `offset`. */
export function writeStruct<F extends StructFields>(target: ArrayBufferView, offset: number, type: StructType<F>, init: StructInit<F>): void {
  if (offset < 0 || offset + type.size > target.byteLength) throw new FfiArgumentError(`struct ${type.name} (${type.size} bytes) at offset ${offset} does not fit ${target.byteLength} bytes`);
  const view = new DataView(target.buffer, target.byteOffset, target.byteLength);
  new Uint8Array(target.buffer, target.byteOffset + offset, type.size).fill(0);
  writeStructInto(view, offset, type, init as Record<string, unknown>, type.name);
}

/** Decodes a struct value from bytes laid out as C would. */
export function decodeStruct<F extends StructFields>(type: StructType<F>, source: ArrayBufferView, offset = 0): StructValue<F> {
  if (offset < 0 || offset + type.size > source.byteLength) throw new FfiArgumentError(`struct ${type.name} (${type.size} bytes) at offset ${offset} does not fit ${source.byteLength} bytes`);
  return readStruct(new DataView(source.buffer, source.byteOffset, source.byteLength), offset, type) as StructValue<F>;
}
