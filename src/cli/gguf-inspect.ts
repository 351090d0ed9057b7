// `gpuffi gguf inspect FILE [--json]`: the header of a GGUF file, without reading tensor data.
import { type GgufHeader, type GgufValue, openGguf, plainValue } from "../formats/index.ts";
import { type Command, inspectCommand, table } from "./command.ts";

const usage = `usage: gpuffi gguf inspect FILE [--json]

Prints a GGUF file's version, metadata and tensor table (name, type, shape, offset, bytes).
  --json   print everything, untruncated, as JSON`;

const PREVIEW_ITEMS = 6;
const PREVIEW_CHARS = 80;

/** The shortest decimal that reads back as the same float32 (1e-5, not 0.000009999999747…). */
function shortF32(x: number): string {
  for (let digits = 1; digits < 9; digits++) {
    const text = x.toPrecision(digits);
    if (Math.fround(Number(text)) === x) return String(Number(text));
  }
  return String(x);
}

function previewItem(item: unknown, isF32: boolean): string {
  if (typeof item === "string") return JSON.stringify(item);
  if (Array.isArray(item)) return `[…${item.length}]`;
  return isF32 ? shortF32(item as number) : String(item);
}

function preview(value: GgufValue): string {
  if (value.type !== "array") {
    const text = previewItem(value.value, value.type === "f32");
    return text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}…` : text;
  }
  const items = plainValue(value) as unknown[];
  const shown = items.slice(0, PREVIEW_ITEMS).map((item) => previewItem(item, value.value.type === "f32"));
  return `[${shown.join(", ")}${items.length > PREVIEW_ITEMS ? ", …" : ""}]`;
}

function typeLabel(value: GgufValue): string {
  return value.type === "array" ? `${value.value.type}[${value.value.value.length}]` : value.type;
}

function describe(file: string, size: number, header: GgufHeader): string {
  const lines = [
    `${file}: GGUF v${header.version}, ${size} bytes, alignment ${header.alignment}, data section at byte ${header.dataOffset}`,
    "",
    `metadata (${header.metadata.size} keys):`,
    table([["key", "type", "value"], ...[...header.metadata].map(([key, v]) => [key, typeLabel(v), preview(v)])]),
    "",
    `tensors (${header.tensors.length}):`,
    table([
      ["name", "type", "shape", "offset", "bytes"],
      ...header.tensors.map((t) => [t.name, t.typeName, `[${t.shape.join(", ")}]`, String(t.offset), String(t.byteLength)]),
    ]),
  ];
  return lines.join("\n");
}

function asJson(header: GgufHeader): unknown {
  return {
    version: header.version,
    alignment: header.alignment,
    dataOffset: header.dataOffset,
    metadata: Object.fromEntries([...header.metadata].map(([key, v]) => [key, { type: typeLabel(v), value: plainValue(v) }])),
    tensors: header.tensors,
  };
}

export const ggufCommand: Command = inspectCommand({
  name: "gguf",
  summary: "print a GGUF file's metadata and tensor table",
  usage,
  open: openGguf,
  describe,
  json: asJson,
});
