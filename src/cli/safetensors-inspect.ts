// `gpuffi safetensors inspect FILE [--json]`: the header of a safetensors file.
import { type SafetensorsHeader, openSafetensors } from "../formats/index.ts";
import { type Command, inspectCommand, table } from "./command.ts";

const usage = `usage: gpuffi safetensors inspect FILE [--json]

Prints a safetensors file's __metadata__ and tensor table (name, dtype, shape, data offsets).
  --json   print the same as JSON`;

function describe(file: string, size: number, header: SafetensorsHeader): string {
  const metadata = Object.entries(header.metadata ?? {});
  return [
    `${file}: safetensors, ${size} bytes, data section at byte ${header.dataOffset}`,
    "",
    `metadata (${metadata.length} keys):`,
    ...(metadata.length === 0 ? [] : [table([["key", "value"], ...metadata.map(([k, v]) => [k, JSON.stringify(v)])])]),
    "",
    `tensors (${header.tensors.length}):`,
    table([
      ["name", "dtype", "shape", "offsets", "bytes"],
      ...header.tensors.map((t) => [t.name, t.dtype, `[${t.shape.join(", ")}]`, `[${t.dataOffsets.join(", ")})`, String(t.byteLength)]),
    ]),
  ].join("\n");
}

export const safetensorsCommand: Command = inspectCommand({
  name: "safetensors",
  summary: "print a safetensors file's metadata and tensor table",
  usage,
  open: openSafetensors,
  describe,
  json: (header: SafetensorsHeader) => header,
});
