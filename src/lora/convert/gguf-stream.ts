// Writes a GGUF file whose tensor data is produced one tensor at a time, so that a merged model
// never has to fit in memory (writeGgufFile takes every tensor's bytes up front).
// The metadata section is encoded by the formats layer's encodeGguf: encoded with no tensors and
// general.alignment = 1 last, it is exactly magic, version, counts and metadata with no padding;
// the real alignment is then patched into its last four bytes and the tensor count into bytes
// 8..15. Only the tensor infos (name, dims, type, offset) are written here.
import { type GgufValue, encodeGguf, ggmlTensorBytes, ggmlTypeInfo, GGUF_DEFAULT_ALIGNMENT } from "../../formats/index.ts";
import { openForWriting } from "../../formats/byte-writer.ts";

export interface StreamedTensor {
  readonly name: string;
  readonly type: number;
  readonly shape: readonly number[];
}

const utf8 = new TextEncoder();
const padded = (n: number, alignment: number) => Math.ceil(n / alignment) * alignment;

function byteLength(t: StreamedTensor): number {
  const info = ggmlTypeInfo(t.type);
  if (info === undefined) throw new RangeError(`tensor "${t.name}": unknown ggml type ${t.type}`);
  return Number(ggmlTensorBytes(info, t.shape));
}

function header(metadata: Iterable<readonly [string, GgufValue]>, tensors: readonly StreamedTensor[]): { bytes: Uint8Array; alignment: number } {
  const entries = [...metadata].filter(([key]) => key !== "general.alignment");
  const given = [...metadata].find(([key]) => key === "general.alignment")?.[1];
  const alignment = given?.type === "u32" ? given.value : GGUF_DEFAULT_ALIGNMENT;
  const prefix = encodeGguf({ metadata: [...entries, ["general.alignment", { type: "u32", value: 1 }]], tensors: [] });
  const infos = tensors.map((t) => utf8.encode(t.name));
  const size = prefix.length + tensors.reduce((n, t, i) => n + 8 + infos[i]!.length + 4 + 8 * t.shape.length + 4 + 8, 0);
  const bytes = new Uint8Array(padded(size, alignment));
  bytes.set(prefix);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(8, BigInt(tensors.length), true);
  view.setUint32(prefix.length - 4, alignment, true);
  let at = prefix.length;
  let offset = 0;
  tensors.forEach((t, i) => {
    view.setBigUint64(at, BigInt(infos[i]!.length), true);
    bytes.set(infos[i]!, at + 8);
    at += 8 + infos[i]!.length;
    view.setUint32(at, t.shape.length, true);
    at += 4;
    for (const d of t.shape) {
      view.setBigUint64(at, BigInt(d), true);
      at += 8;
    }
    view.setInt32(at, t.type, true);
    view.setBigUint64(at + 4, BigInt(offset), true);
    at += 12;
    offset += padded(byteLength(t), alignment);
  });
  return { bytes, alignment };
}

/** Writes `tensors` with the bytes `produce(i)` returns for each, in order, one at a time. */
export async function writeGgufStreamed(
  path: string,
  metadata: Iterable<readonly [string, GgufValue]>,
  tensors: readonly StreamedTensor[],
  produce: (index: number) => Promise<Uint8Array>,
): Promise<void> {
  const { bytes, alignment } = header(metadata, tensors);
  const file = await openForWriting(path);
  try {
    await file.write(bytes);
    for (const [i, t] of tensors.entries()) {
      const data = await produce(i);
      const expected = byteLength(t);
      if (data.length !== expected) throw new RangeError(`tensor "${t.name}": produced ${data.length} bytes, its shape and type need ${expected}`);
      await file.write(data);
      await file.write(new Uint8Array(padded(expected, alignment) - expected));
    }
  } finally {
    await file.close();
  }
}
