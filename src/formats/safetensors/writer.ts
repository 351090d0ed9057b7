// safetensors writer: tensors laid out contiguously in the given order, the JSON header padded
// with spaces to a multiple of 8 bytes as the reference implementation does (so the data
// section starts aligned).
import { FormatWriteError } from "../errors.ts";
import { openForWriting } from "../byte-writer.ts";
import { type SafetensorsDtype, isSafetensorsDtype, safetensorsDtypeSizes } from "./dtypes.ts";
import { SAFETENSORS_MAX_HEADER_BYTES } from "./reader.ts";

export interface SafetensorsTensorSpec {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

export interface SafetensorsSpec {
  readonly tensors: readonly SafetensorsTensorSpec[];
  readonly metadata?: Readonly<Record<string, string>>;
}

const utf8 = new TextEncoder();

function fail(field: string, detail: string): never {
  throw new FormatWriteError("safetensors", field, detail);
}

/** The 8-byte length and the padded JSON header. */
function encodeHeader(spec: SafetensorsSpec): Uint8Array {
  // No prototype: a tensor may be named "__proto__", which on a plain object would set the prototype.
  const header: Record<string, unknown> = Object.create(null);
  if (spec.metadata !== undefined) {
    for (const [key, value] of Object.entries(spec.metadata)) {
      if (typeof value !== "string") fail(`__metadata__ "${key}"`, "values must be strings");
    }
    header.__metadata__ = spec.metadata;
  }
  let offset = 0;
  for (const t of spec.tensors) {
    const field = `tensor "${t.name}"`;
    if (t.name === "__metadata__" || Object.hasOwn(header, t.name)) fail(field, "duplicate or reserved name");
    if (!isSafetensorsDtype(t.dtype)) fail(field, `unknown dtype ${String(t.dtype)}`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(field, `invalid shape [${t.shape.join(", ")}]`);
    const expected = t.shape.reduce((n, d) => n * d, safetensorsDtypeSizes[t.dtype]);
    if (t.data.length !== expected) fail(field, `has ${t.data.length} bytes of data, its shape and dtype need ${expected}`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    offset += t.data.length;
  }
  const json = utf8.encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > SAFETENSORS_MAX_HEADER_BYTES) fail("header", `${padded} bytes exceeds the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit`);
  const out = new Uint8Array(8 + padded).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/** Encodes a whole safetensors file in memory. */
export function encodeSafetensors(spec: SafetensorsSpec): Uint8Array {
  const header = encodeHeader(spec);
  const file = new Uint8Array(spec.tensors.reduce((n, t) => n + t.data.length, header.length));
  file.set(header);
  let at = header.length;
  for (const t of spec.tensors) {
    file.set(t.data, at);
    at += t.data.length;
  }
  return file;
}

/** Writes a safetensors file tensor by tensor, without assembling it in memory. */
export async function writeSafetensorsFile(path: string, spec: SafetensorsSpec): Promise<void> {
  const header = encodeHeader(spec);
  const file = await openForWriting(path);
  try {
    await file.write(header);
    for (const t of spec.tensors) await file.write(t.data);
  } finally {
    await file.close();
  }
}
