// `gpuffi safetensors inspect FILE [--json]`: the header of a safetensors file.
import { type SafetensorsHeader, openSafetensors } from "../formats/index.ts";
import { type CliIO, type Command, UsageError, parseCommandArgs, table, toJson } from "./command.ts";

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

export const safetensorsCommand: Command = {
  name: "safetensors",
  synopsis: "safetensors inspect FILE [--json]",
  summary: "print a safetensors file's metadata and tensor table",
  usage,
  async run(argv: string[], io: CliIO): Promise<number> {
    const [sub, ...rest] = argv;
    if (sub !== "inspect") throw new UsageError(sub === undefined ? "missing subcommand" : `unknown subcommand "${sub}"`);
    const { positionals, values } = parseCommandArgs(rest, { json: "boolean" }, ["FILE"]);
    const path = positionals[0]!;
    await using file = await openSafetensors(path);
    io.out(values.json ? toJson(file.header) : describe(path, file.size, file.header));
    return 0;
  },
};
