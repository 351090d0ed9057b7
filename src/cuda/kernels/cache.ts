// The compile cache: a compiled program is keyed by everything that decides its bytes (source,
// file name, the full option list with the architecture, name expressions, NVRTC's version) and
// kept in memory for the process and on disk for the machine, so the second run of a script or
// notebook compiles nothing. A disk entry is one file, `<key>.kernel`: a JSON header line, then
// the image. Entries are written to a temporary file and renamed, so a reader never sees half
// of one; an unreadable or mismatched entry counts as a miss and is written again.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import process from "node:process";

/** What NVRTC made of a source: the image to load, and what else the compile reported. */
export interface CompiledProgram {
  /** CUBIN for an `sm_XY` architecture, PTX (NUL-terminated text) for `compute_XY`. */
  readonly kind: "cubin" | "ptx";
  readonly image: Uint8Array;
  /** The architecture compiled for, e.g. "sm_90". */
  readonly arch: string;
  /** Name expression → the symbol it compiled to (`scale<float>` → `_Z5scaleIfEvPT_i`). */
  readonly loweredNames: ReadonlyMap<string, string>;
  /** NVRTC's log: warnings, or "" when there were none. */
  readonly log: string;
  /** The full NVRTC option list. */
  readonly options: readonly string[];
  /** The cache key (a SHA-256 in hex). */
  readonly key: string;
  readonly nvrtcVersion: string;
  /** Where this came from without compiling: "memory", "disk", or undefined for a fresh compile. */
  readonly cached: "memory" | "disk" | undefined;
}

export interface CacheKeyParts {
  readonly source: string;
  readonly name: string;
  readonly options: readonly string[];
  readonly nameExpressions: readonly string[];
  readonly nvrtcVersion: string;
}

const formatVersion = 1;

export function cacheKey(parts: CacheKeyParts): string {
  const { source, name, options, nameExpressions, nvrtcVersion } = parts;
  return createHash("sha256").update(JSON.stringify({ formatVersion, source, name, options, nameExpressions, nvrtcVersion })).digest("hex");
}

/** `$GPUFFI_CACHE/kernels`, else `~/.cache/gpuffi/kernels` (`$XDG_CACHE_HOME/gpuffi/kernels` where set). */
export function defaultCacheDir(env: Readonly<Record<string, string | undefined>> = process.env): string {
  if (env.GPUFFI_CACHE) return join(env.GPUFFI_CACHE, "kernels");
  return join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), ".cache"), "gpuffi", "kernels");
}

// Bounded so that a program generating sources in a loop does not grow without end; the oldest
// entry goes first (Map keeps insertion order, and a hit re-inserts).
const memoryLimit = 256;
const memory = new Map<string, CompiledProgram>();

/** Forgets the in-memory entries (the disk cache stays). */
export function clearMemoryCache(): void {
  memory.clear();
}

interface Header {
  readonly key: string;
  readonly kind: "cubin" | "ptx";
  readonly arch: string;
  readonly loweredNames: [string, string][];
  readonly log: string;
  readonly options: string[];
  readonly nvrtcVersion: string;
  readonly imageBytes: number;
}

function readEntry(dir: string, key: string): CompiledProgram | undefined {
  let bytes: Uint8Array;
  try {
    const file = readFileSync(join(dir, `${key}.kernel`));
    bytes = new Uint8Array(file.buffer, file.byteOffset, file.byteLength);
  } catch {
    return undefined;
  }
  const newline = bytes.indexOf(10);
  if (newline < 0) return undefined;
  try {
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(0, newline))) as Header;
    const image = bytes.slice(newline + 1);
    if (header.key !== key || header.imageBytes !== image.length || (header.kind !== "cubin" && header.kind !== "ptx")) return undefined;
    const { kind, arch, log, options, nvrtcVersion } = header;
    return { kind, arch, log, options, nvrtcVersion, key, image, loweredNames: new Map(header.loweredNames), cached: "disk" };
  } catch {
    return undefined;
  }
}

function writeEntry(dir: string, compiled: CompiledProgram): void {
  const { key, kind, arch, log, options, nvrtcVersion, image } = compiled;
  const header: Header = { key, kind, arch, log, options: [...options], nvrtcVersion, loweredNames: [...compiled.loweredNames], imageBytes: image.length };
  const head = new TextEncoder().encode(`${JSON.stringify(header)}\n`);
  const file = new Uint8Array(head.length + image.length);
  file.set(head);
  file.set(image, head.length);
  const temporary = join(dir, `${key}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(temporary, file);
    renameSync(temporary, join(dir, `${key}.kernel`));
  } catch {
    // A cache that cannot be written (read-only home, full disk) costs a compile next time, never a failure.
  }
}

// In memory, entries are also told apart by the libnvrtc file that made them: one process may
// load two builds that call themselves the same version (a test's fake beside the real one).
// On disk the version alone decides, so that a move between installs keeps the cache.

/** The cached program for `key`: from memory, else from `dir` when given (then kept in memory too). */
export function lookup(key: string, dir: string | undefined, library: string): CompiledProgram | undefined {
  const slot = `${library}\0${key}`;
  const hit = memory.get(slot);
  if (hit) {
    memory.delete(slot);
    memory.set(slot, hit);
    return { ...hit, cached: "memory" };
  }
  const entry = dir === undefined ? undefined : readEntry(dir, key);
  if (entry) keep(entry, library);
  return entry;
}

function keep(compiled: CompiledProgram, library: string): void {
  memory.set(`${library}\0${compiled.key}`, compiled);
  if (memory.size > memoryLimit) memory.delete(memory.keys().next().value!);
}

/** Keeps a fresh compile in memory, and in `dir` when given. */
export function remember(compiled: CompiledProgram, dir: string | undefined, library: string): void {
  keep(compiled, library);
  if (dir !== undefined) writeEntry(dir, compiled);
}
