// safetensors reader: an 8-byte little-endian header length, a JSON header, then the data.
// The format's rules are enforced as the reference implementation does: header at most 100 MB,
// tensor byte ranges contiguous from 0, non-overlapping, covering the data exactly, and each
// range as long as its shape and dtype require.
import { SafetensorsFormatError, TensorNotFoundError } from "../errors.ts";
import { type ByteInput, type ByteSource, openByteSource } from "../byte-source.ts";
import { type SafetensorsDtype, isSafetensorsDtype, safetensorsDtypeSizes } from "./dtypes.ts";

/** The reference implementation's limit on the JSON header. */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsTensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  /** Dimensions, outermost first (row-major, as PyTorch). */
  readonly shape: readonly number[];
  /** [begin, end) relative to the start of the data section. */
  readonly dataOffsets: readonly [number, number];
  readonly byteLength: number;
}

export interface SafetensorsHeader {
  /** The free-form string map `__metadata__`, if present. */
  readonly metadata: Readonly<Record<string, string>> | undefined;
  /** Tensors in file order (by data offset). */
  readonly tensors: readonly SafetensorsTensorInfo[];
  /** Absolute file offset of the data section (8 + header length). */
  readonly dataOffset: number;
}

const HEADER_AT = 8;
const utf8 = new TextDecoder("utf-8", { fatal: true });

function fail(field: string, detail: string, offset = HEADER_AT): never {
  throw new SafetensorsFormatError(field, offset, detail);
}

function readHeaderLength(prefix: Uint8Array, fileSize: number): number {
  if (fileSize < 8) fail("header length", `file has ${fileSize} bytes, fewer than the 8-byte header length`, 0);
  const length = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (length > BigInt(SAFETENSORS_MAX_HEADER_BYTES)) fail("header length", `${length} exceeds the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit`, 0);
  if (length > BigInt(fileSize - 8)) fail("header length", `${length} exceeds the ${fileSize - 8} bytes after it`, 0);
  return Number(length);
}

function parseJson(bytes: Uint8Array): unknown {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    fail("header", "is not valid UTF-8");
  }
  // The reference writer pads with spaces; the header must be a JSON object.
  if (!text.startsWith("{")) fail("header", "does not start with '{'");
  try {
    return JSON.parse(text);
  } catch (error) {
    fail("header", `is not valid JSON (${error instanceof Error ? error.message : String(error)})`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isNonNegativeInteger(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function readMetadata(value: unknown): Record<string, string> {
  if (!isObject(value)) fail("__metadata__", "must be an object of strings");
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== "string") fail(`__metadata__ "${key}"`, "must be a string");
  }
  return value as Record<string, string>;
}

function readTensorInfo(name: string, value: unknown): SafetensorsTensorInfo {
  const field = `tensor "${name}"`;
  if (!isObject(value)) fail(field, "must be an object");
  const { dtype, shape, data_offsets: offsets } = value;
  if (!isSafetensorsDtype(dtype)) fail(`${field} dtype`, `unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) fail(`${field} shape`, "must be an array of non-negative integers");
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
    fail(`${field} data_offsets`, "must be [begin, end] of non-negative integers");
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) fail(`${field} data_offsets`, `begin ${begin} is after end ${end}`);
  const byteLength = shape.reduce((n: bigint, d: number) => n * BigInt(d), BigInt(safetensorsDtypeSizes[dtype]));
  if (byteLength !== BigInt(end - begin)) {
    fail(`${field} data_offsets`, `covers ${end - begin} bytes but shape [${shape.join(", ")}] of ${dtype} needs ${byteLength}`);
  }
  return { name, dtype, shape, dataOffsets: [begin, end], byteLength: end - begin };
}

/** Parses the JSON header `json` of a file of `fileSize` bytes and checks the data layout. */
function parseHeader(json: Uint8Array, fileSize: number): SafetensorsHeader {
  const root = parseJson(json);
  if (!isObject(root)) fail("header", "must be a JSON object");
  let metadata: Record<string, string> | undefined;
  const tensors: SafetensorsTensorInfo[] = [];
  for (const [name, value] of Object.entries(root)) {
    if (name === "__metadata__") metadata = readMetadata(value);
    else tensors.push(readTensorInfo(name, value));
  }
  tensors.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  const dataOffset = HEADER_AT + json.length;
  let end = 0;
  for (const t of tensors) {
    if (t.dataOffsets[0] !== end) {
      fail(`tensor "${t.name}" data_offsets`, t.dataOffsets[0] < end ? `overlaps the previous tensor (begins at ${t.dataOffsets[0]}, previous ends at ${end})` : `leaves a gap: begins at ${t.dataOffsets[0]}, previous ends at ${end}`);
    }
    end = t.dataOffsets[1];
  }
  if (end !== fileSize - dataOffset) fail("data section", `tensors cover ${end} bytes but the data section has ${fileSize - dataOffset}`, dataOffset);
  return { metadata, tensors, dataOffset };
}

/** Parses the header of a safetensors file that is entirely in memory. */
export function parseSafetensors(bytes: Uint8Array): SafetensorsHeader {
  const length = readHeaderLength(bytes, bytes.length);
  return parseHeader(bytes.subarray(HEADER_AT, HEADER_AT + length), bytes.length);
}

/** An open safetensors file: its header, and its tensors' bytes on request. */
export class SafetensorsFile implements AsyncDisposable {
  private readonly byName: Map<string, SafetensorsTensorInfo>;

  private constructor(
    private readonly source: ByteSource,
    readonly header: SafetensorsHeader,
  ) {
    this.byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  /** Opens a path (read lazily) or in-memory bytes and parses the header only. */
  static async open(input: ByteInput): Promise<SafetensorsFile> {
    const source = await openByteSource(input);
    try {
      const length = readHeaderLength(await source.read(0, Math.min(8, source.size)), source.size);
      return new SafetensorsFile(source, parseHeader(await source.read(HEADER_AT, length), source.size));
    } catch (error) {
      await source.close();
      throw error;
    }
  }

  get metadata(): Readonly<Record<string, string>> | undefined {
    return this.header.metadata;
  }

  get tensors(): readonly SafetensorsTensorInfo[] {
    return this.header.tensors;
  }

  /** Size of the whole file in bytes. */
  get size(): number {
    return this.source.size;
  }

  tensor(name: string): SafetensorsTensorInfo {
    const info = this.byName.get(name);
    if (info === undefined) throw new TensorNotFoundError(name);
    return info;
  }

  /** The raw bytes of one tensor (a view for in-memory input, a fresh buffer for files). */
  async readTensor(name: string): Promise<Uint8Array> {
    const info = this.tensor(name);
    return this.source.read(this.header.dataOffset + info.dataOffsets[0], info.byteLength);
  }

  close(): Promise<void> {
    return this.source.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Opens a safetensors file (path or bytes); shorthand for `SafetensorsFile.open`. */
export function openSafetensors(input: ByteInput): Promise<SafetensorsFile> {
  return SafetensorsFile.open(input);
}
