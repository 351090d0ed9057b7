// GGUF v2/v3 reader. The header (metadata and tensor infos) is parsed on its own; tensor data
// is read one tensor at a time by byte range. Every count, length and offset is checked
// against the file size before it is used, so a malformed file ends in a GgufFormatError.
import { GgufFormatError, TensorNotFoundError } from "../errors.ts";
import { type ByteInput, type ByteSource, openByteSource } from "../byte-source.ts";
import { Cursor, NeedMoreBytes } from "./cursor.ts";
import { ggmlTensorBytes, ggmlTypeInfo } from "./ggml-types.ts";
import { type GgufArray, type GgufMetadata, type GgufValue, type GgufValueType, GgufValueTypeId, fixedSizeTypes } from "./values.ts";

/** One tensor's description from the header. */
export interface GgufTensorInfo {
  readonly name: string;
  /** Dimensions, innermost first (ggml's ne[0] = row length). */
  readonly shape: readonly number[];
  /** ggml type id (see `ggmlTypes`). */
  readonly type: number;
  readonly typeName: string;
  /** Offset of the data from the start of the data section. */
  readonly offset: number;
  readonly byteLength: number;
}

export interface GgufHeader {
  readonly version: number;
  readonly metadata: GgufMetadata;
  readonly tensors: readonly GgufTensorInfo[];
  readonly alignment: number;
  /** Absolute file offset of the data section. */
  readonly dataOffset: number;
}

export interface GgufReadOptions {
  /** Refuse headers larger than this many bytes (default 512 MiB). */
  maxHeaderBytes?: number;
}

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml tensors have at most four dimensions (GGML_MAX_DIMS). */
export const GGML_MAX_DIMS = 4;
/** Arrays of arrays nest at most this deep; deeper would only serve to exhaust the stack. */
const MAX_ARRAY_DEPTH = 32;
const DEFAULT_MAX_HEADER_BYTES = 512 * 1024 * 1024;
const FIRST_HEADER_READ = 1024 * 1024;

const valueTypeById = new Map<number, GgufValueType>(
  Object.entries(GgufValueTypeId).map(([name, id]) => [id, name as GgufValueType]),
);

/** The fewest bytes one array element of each type can take in the file. */
function minElementBytes(type: GgufValueType): number {
  if (type === "bool") return 1;
  if (type === "string") return 8;
  if (type === "array") return 4 + 8;
  return fixedSizeTypes[type].BYTES_PER_ELEMENT;
}

function readValueType(cursor: Cursor, field: string): GgufValueType {
  const at = cursor.pos;
  const id = cursor.i32(field);
  const type = valueTypeById.get(id);
  if (type === undefined) throw new GgufFormatError(field, at, `unknown value type ${id}`);
  return type;
}

function readArray(cursor: Cursor, type: GgufValueType, field: string, depth: number): GgufArray {
  const length = cursor.count(minElementBytes(type), `${field} length`);
  switch (type) {
    case "bool":
      return { type, value: Array.from({ length }, () => cursor.u8(field) !== 0) };
    case "string":
      return { type, value: Array.from({ length }, () => cursor.string(field)) };
    case "array": {
      if (depth >= MAX_ARRAY_DEPTH) throw new GgufFormatError(field, cursor.pos, `arrays nested deeper than ${MAX_ARRAY_DEPTH}`);
      return {
        type,
        value: Array.from({ length }, (_, i) => readArray(cursor, readValueType(cursor, `${field}[${i}] type`), `${field}[${i}]`, depth + 1)),
      };
    }
    default: {
      const Ctor = fixedSizeTypes[type];
      const bytes = cursor.copy(length * Ctor.BYTES_PER_ELEMENT, field);
      return { type, value: new Ctor(bytes.buffer as ArrayBuffer) } as GgufArray;
    }
  }
}

function readValue(cursor: Cursor, type: GgufValueType, field: string): GgufValue {
  switch (type) {
    case "bool": return { type, value: cursor.u8(field) !== 0 };
    case "string": return { type, value: cursor.string(field) };
    case "array": return { type, value: readArray(cursor, readValueType(cursor, `${field} element type`), field, 1) };
    case "u64":
    case "i64": return { type, value: cursor.scalar(type, field) };
    default: return { type, value: cursor.scalar(type, field) };
  }
}

function readVersion(cursor: Cursor): number {
  const magicAt = cursor.pos;
  const magic = cursor.u32("magic");
  if (magic !== GGUF_MAGIC) throw new GgufFormatError("magic", magicAt, `expected "GGUF", found 0x${magic.toString(16).padStart(8, "0")}`);
  const version = cursor.u32("version");
  if ((version & 0xffff) === 0) throw new GgufFormatError("version", 4, `version ${version} looks byte-swapped: big-endian GGUF files are not supported`);
  if (version === 1) throw new GgufFormatError("version", 4, "GGUF v1 is obsolete and not supported; convert the file to v3");
  if (version > 3) throw new GgufFormatError("version", 4, `version ${version} is newer than the supported v2 and v3`);
  return version;
}

/** The metadata, and where each key starts (for error reports about values). */
function readMetadata(cursor: Cursor): { metadata: GgufMetadata; keyOffsets: Map<string, number> } {
  // Smallest key/value: 8-byte key length + 4-byte type + 1-byte value.
  const count = cursor.count(8 + 4 + 1, "metadata count");
  const metadata: GgufMetadata = new Map();
  const keyOffsets = new Map<string, number>();
  for (let i = 0; i < count; i++) {
    const keyAt = cursor.pos;
    const key = cursor.string(`metadata[${i}] key`);
    if (key === "") throw new GgufFormatError(`metadata[${i}] key`, keyAt, "empty key");
    if (metadata.has(key)) throw new GgufFormatError(`metadata[${i}] key`, keyAt, `duplicate key "${key}"`);
    keyOffsets.set(key, keyAt);
    metadata.set(key, readValue(cursor, readValueType(cursor, `metadata "${key}" type`), `metadata "${key}"`));
  }
  return { metadata, keyOffsets };
}

function alignmentOf(metadata: GgufMetadata, alignmentAt: number): number {
  const value = metadata.get("general.alignment");
  if (value === undefined) return GGUF_DEFAULT_ALIGNMENT;
  if (value.type !== "u32") throw new GgufFormatError("metadata \"general.alignment\"", alignmentAt, `must be a u32, found ${value.type}`);
  if (value.value === 0 || (value.value & (value.value - 1)) !== 0) {
    throw new GgufFormatError("metadata \"general.alignment\"", alignmentAt, `${value.value} is not a power of two`);
  }
  return value.value;
}

interface TensorEntry extends GgufTensorInfo {
  readonly offsetAt: number;
}

function readTensorInfo(cursor: Cursor, index: number, alignment: number): TensorEntry {
  const name = cursor.string(`tensor[${index}] name`);
  const field = `tensor "${name}"`;
  const dimsAt = cursor.pos;
  const dims = cursor.u32(`${field} n_dims`);
  if (dims > GGML_MAX_DIMS) throw new GgufFormatError(`${field} n_dims`, dimsAt, `${dims} dimensions, at most ${GGML_MAX_DIMS} allowed`);
  const shape: number[] = [];
  for (let d = 0; d < dims; d++) {
    const at = cursor.pos;
    const dim = cursor.i64(`${field} shape[${d}]`);
    if (dim < 0n || dim > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufFormatError(`${field} shape[${d}]`, at, `invalid dimension ${dim}`);
    shape.push(Number(dim));
  }
  const typeAt = cursor.pos;
  const typeId = cursor.i32(`${field} type`);
  const type = ggmlTypeInfo(typeId);
  if (type === undefined) throw new GgufFormatError(`${field} type`, typeAt, `unknown or removed ggml type ${typeId}`);
  const rowLength = shape[0] ?? 1;
  if (rowLength % type.blockSize !== 0) {
    throw new GgufFormatError(`${field} shape[0]`, dimsAt + 4, `${rowLength} is not a multiple of the ${type.name} block size ${type.blockSize}`);
  }
  const byteLength = ggmlTensorBytes(type, shape);
  if (byteLength > BigInt(cursor.fileSize)) {
    throw new GgufFormatError(`${field} shape`, dimsAt, `${byteLength} bytes of ${type.name} data cannot fit in a ${cursor.fileSize}-byte file`);
  }
  const offsetAt = cursor.pos;
  const offset = cursor.u64(`${field} offset`);
  if (offset > BigInt(cursor.fileSize)) throw new GgufFormatError(`${field} offset`, offsetAt, `offset ${offset} is beyond the end of the file`);
  if (offset % BigInt(alignment) !== 0n) throw new GgufFormatError(`${field} offset`, offsetAt, `offset ${offset} is not a multiple of the alignment ${alignment}`);
  return { name, shape, type: typeId, typeName: type.name, offset: Number(offset), byteLength: Number(byteLength), offsetAt };
}

function checkTensorData(tensors: readonly TensorEntry[], dataOffset: number, fileSize: number): void {
  for (const t of tensors) {
    if (dataOffset + t.offset + t.byteLength > fileSize) {
      throw new GgufFormatError(`tensor "${t.name}" offset`, t.offsetAt, `data [${dataOffset + t.offset}, ${dataOffset + t.offset + t.byteLength}) extends past the end of the ${fileSize}-byte file`);
    }
  }
  const byOffset = [...tensors].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byOffset.length; i++) {
    const prev = byOffset[i - 1]!;
    const cur = byOffset[i]!;
    if (prev.offset + prev.byteLength > cur.offset) {
      throw new GgufFormatError(`tensor "${cur.name}" offset`, cur.offsetAt, `data overlaps tensor "${prev.name}"`);
    }
  }
}

/**
 * Parses a GGUF header from `bytes`, the first bytes of a file of `fileSize` bytes (all of it
 * by default). Throws NeedMoreBytes if the header continues past `bytes`.
 */
function parseHeader(bytes: Uint8Array, fileSize: number): GgufHeader {
  const cursor = new Cursor(bytes, fileSize);
  const version = readVersion(cursor);
  // Smallest tensor info: 8-byte name length + 4-byte n_dims + 4-byte type + 8-byte offset.
  const tensorCount = cursor.count(8 + 4 + 4 + 8, "tensor count");
  const { metadata, keyOffsets } = readMetadata(cursor);
  const alignment = alignmentOf(metadata, keyOffsets.get("general.alignment") ?? 0);
  const tensors: TensorEntry[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const at = cursor.pos;
    const tensor = readTensorInfo(cursor, i, alignment);
    if (names.has(tensor.name)) throw new GgufFormatError(`tensor[${i}] name`, at, `duplicate tensor name "${tensor.name}"`);
    names.add(tensor.name);
    tensors.push(tensor);
  }
  const dataOffset = Math.ceil(cursor.pos / alignment) * alignment;
  checkTensorData(tensors, dataOffset, fileSize);
  return { version, metadata, tensors: tensors.map(({ offsetAt: _, ...info }) => info), alignment, dataOffset };
}

/** Parses the header of a GGUF file that is entirely in memory. */
export function parseGguf(bytes: Uint8Array): GgufHeader {
  return parseHeader(bytes, bytes.length);
}

/** Reads just enough of `source` to parse the header, growing the read as the header demands. */
async function readHeader(source: ByteSource, maxHeaderBytes: number): Promise<GgufHeader> {
  let length = Math.min(source.size, FIRST_HEADER_READ, maxHeaderBytes);
  for (;;) {
    try {
      return parseHeader(await source.read(0, length), source.size);
    } catch (error) {
      if (!(error instanceof NeedMoreBytes)) throw error;
      if (error.upTo > maxHeaderBytes) {
        throw new GgufFormatError("header", 0, `header is larger than the ${maxHeaderBytes}-byte limit (maxHeaderBytes)`);
      }
      length = Math.min(source.size, maxHeaderBytes, Math.max(error.upTo, length * 2));
    }
  }
}

/** An open GGUF file: its header, and its tensors' bytes on request. */
export class GgufFile implements AsyncDisposable {
  private readonly byName: Map<string, GgufTensorInfo>;

  private constructor(
    private readonly source: ByteSource,
    readonly header: GgufHeader,
  ) {
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  /** Opens a path (read lazily) or in-memory bytes and parses the header only. */
  static async open(input: ByteInput, options: GgufReadOptions = {}): Promise<GgufFile> {
    const source = await openByteSource(input);
    try {
      return new GgufFile(source, await readHeader(source, options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES));
    } catch (error) {
      await source.close();
      throw error;
    }
  }

  get metadata(): GgufMetadata {
    return this.header.metadata;
  }

  get tensors(): readonly GgufTensorInfo[] {
    return this.header.tensors;
  }

  /** Size of the whole file in bytes. */
  get size(): number {
    return this.source.size;
  }

  tensor(name: string): GgufTensorInfo {
    const info = this.byName.get(name);
    if (info === undefined) throw new TensorNotFoundError(name);
    return info;
  }

  /** The raw bytes of one tensor (a view for in-memory input, a fresh buffer for files). */
  async readTensor(name: string): Promise<Uint8Array> {
    const info = this.tensor(name);
    return this.source.read(this.header.dataOffset + info.offset, info.byteLength);
  }

  close(): Promise<void> {
    return this.source.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Opens a GGUF file (path or bytes); shorthand for `GgufFile.open`. */
export function openGguf(input: ByteInput, options?: GgufReadOptions): Promise<GgufFile> {
  return GgufFile.open(input, options);
}
