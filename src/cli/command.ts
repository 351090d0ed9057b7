// What every subcommand module provides, and the helpers they share for arguments and output.
import process from "node:process";
import { parseArgs } from "node:util";
import { GpuffiError } from "../ffi/errors.ts";

/** Where a command prints; tests capture it, the real CLI writes to stdout/stderr. */
export interface CliIO {
  out(text: string): void;
  err(text: string): void;
}

export interface Command {
  readonly name: string;
  /** The command line, e.g. "gguf inspect FILE [--json]". */
  readonly synopsis: string;
  readonly summary: string;
  readonly usage: string;
  /** Runs with the arguments after the command name; resolves to the exit code. */
  run(argv: string[], io: CliIO): Promise<number>;
}

/** The command line was wrong; main prints the message and the command's usage, exit code 2. */
export class UsageError extends GpuffiError {
  override name = "UsageError";
  constructor(message: string) {
    super("ERR_USAGE", message);
  }
}

type OptionKinds = Record<string, "string" | "boolean">;

export interface ParsedArgs {
  readonly positionals: string[];
  readonly values: Record<string, string | boolean | undefined>;
}

/**
 * Strict parsing (unknown options are usage errors) with exactly as many positionals as
 * `positionalNames`, or at least that many when `variadic`.
 */
export function parseCommandArgs(argv: string[], options: OptionKinds, positionalNames: readonly string[], variadic = false): ParsedArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: Object.fromEntries(Object.entries(options).map(([name, type]) => [name, { type }])),
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  const { positionals, values } = parsed;
  if (variadic ? positionals.length < positionalNames.length : positionals.length !== positionalNames.length) {
    const expected = positionalNames.length <= 2 ? positionalNames.join(" and ") : `${positionalNames.slice(0, -1).join(", ")} and ${positionalNames.at(-1)}`;
    throw new UsageError(`expected ${expected}, got ${positionals.length === 0 ? "nothing" : positionals.map((p) => `"${p}"`).join(" ")}`);
  }
  return { positionals, values: values as ParsedArgs["values"] };
}

/** An integer option (at least `min` when given), or `fallback` when absent. */
export function integerOption(values: ParsedArgs["values"], name: string, fallback: number, min?: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  if (typeof raw !== "string" || !/^-?\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw new UsageError(`--${name} needs an integer, got "${String(raw)}"`);
  if (min !== undefined && Number(raw) < min) throw new UsageError(`--${name} needs an integer ≥ ${min}, got ${raw}`);
  return Number(raw);
}

/** A required finite number option. */
export function numberOption(values: ParsedArgs["values"], name: string): number {
  const raw = values[name];
  if (raw === undefined) throw new UsageError(`--${name} is required`);
  const value = Number(raw);
  if (typeof raw !== "string" || raw.trim() === "" || !Number.isFinite(value)) throw new UsageError(`--${name} needs a number, got "${String(raw)}"`);
  return value;
}

/**
 * Runs `body` with a `\r`-redrawn progress bar on stderr when it is a terminal (nothing
 * otherwise: pipes and tests); `body` reports progress as done and total amounts. The bar's line
 * is ended however `body` ends, so a message printed after it starts on a line of its own.
 */
export async function withProgressBar<T>(label: string, body: (progress: (done: number, total: number) => void) => Promise<T>): Promise<T> {
  const tty = process.stderr.isTTY === true;
  const width = 30;
  try {
    return await body((done, total) => {
      if (!tty) return;
      const fraction = total === 0 ? 1 : done / total;
      const filled = Math.round(fraction * width);
      process.stderr.write(`\r${label} [${"#".repeat(filled)}${" ".repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%`);
    });
  } finally {
    if (tty) process.stderr.write("\n");
  }
}

/** JSON that survives bigints, typed arrays and non-finite floats. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === "bigint") return v.toString();
    if (typeof v === "number" && !Number.isFinite(v)) return String(v);
    if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v as unknown as ArrayLike<number | bigint>);
    return v;
  }, 2);
}

/** Left-aligned columns; the first row is the heading. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => "  " + r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join("  ")).join("\n");
}

/** What an `inspect` subcommand needs to know about its file format. */
export interface InspectedFormat<H> {
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  open(path: string): Promise<AsyncDisposable & { readonly size: number; readonly header: H }>;
  describe(path: string, size: number, header: H): string;
  json(header: H): unknown;
}

/** `gpuffi <format> inspect FILE [--json]`: prints a file's header without reading tensor data. */
export function inspectCommand<H>(format: InspectedFormat<H>): Command {
  return {
    name: format.name,
    synopsis: `${format.name} inspect FILE [--json]`,
    summary: format.summary,
    usage: format.usage,
    async run(argv: string[], io: CliIO): Promise<number> {
      const [sub, ...rest] = argv;
      if (sub !== "inspect") throw new UsageError(sub === undefined ? "missing subcommand" : `unknown subcommand "${sub}"`);
      const { positionals, values } = parseCommandArgs(rest, { json: "boolean" }, ["FILE"]);
      const path = positionals[0]!;
      await using file = await format.open(path);
      io.out(values.json ? toJson(format.json(file.header)) : format.describe(path, file.size, file.header));
      return 0;
    },
  };
}
