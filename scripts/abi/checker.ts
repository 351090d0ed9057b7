// Checks one library's symbol tables, struct layouts and constants against its C headers with the
// system's GCC, in two compiles of one translation unit each:
//
// 1. The headers alone, compiled with `-aux-info`: GCC writes out every function declaration it
//    saw with macros expanded and parameter types spelled as the header spells them
//    (`extern int32_t llama_decode (struct llama_context *, struct llama_batch);`). A table
//    symbol that is not declared there is missing from the header.
// 2. One line per check: for each parameter and result the header's type text goes through
//    `__typeof__` into a descriptor, class × 100000 + size, computed by the compiler itself
//    (class: signed or unsigned integer, bool, enum, char, floating, pointer, struct, union);
//    each struct's sizeof, _Alignof and each field's offsetof, size and descriptor; each
//    constant's value. Each line holds a `_Static_assert` whose message names the check and a
//    pair of declarations, `extern char (*gpuffi_abi_N)[expected]` then `[found]`, which
//    conflict exactly when the assertion fails: GCC's "conflicting types … have 'char (*)[F]'"
//    reports the value it found, and the line number says which check it was.
//
// Why not compare function types directly: the tables say `ptr` without a pointee type, so
// `__builtin_types_compatible_p(typeof(&f), …)` has nothing to compare against; and C has no way
// to name a declared function's i-th parameter type, which -aux-info's text provides.
// Enums match `i32` and `u32` alike (GCC makes an enum without negative values unsigned); C
// cannot tell an enum from its integer type except by __builtin_types_compatible_p, which holds
// between an integer type and an enum but never between two different enums.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { type FieldType, type ParameterType, type ResultType, type StructType, isArrayField, isStructType } from "../../src/ffi/types.ts";
import type { AbiLibrary, AbiStruct } from "./model.ts";

/** One difference between the bindings and the header. */
export interface AbiMismatch {
  readonly library: string;
  /** A function (table key), struct or JS constant. */
  readonly symbol: string;
  /** `parameter 2`, `result`, `field n_ctx offset`, `sizeof`, `declaration`, `value`. */
  readonly what: string;
  readonly expected: string;
  readonly found: string;
}

export interface AbiReport {
  readonly library: string;
  /** Why nothing was checked (no compiler, no headers). */
  readonly skipped?: string;
  /** Where the headers came from, and the version expression's value. */
  readonly source?: string;
  readonly functions: number;
  readonly structs: number;
  readonly fields: number;
  readonly constants: number;
  /** Tables whose guard did not hold for these headers, with the guard. */
  readonly inapplicable: readonly string[];
  readonly mismatches: readonly AbiMismatch[];
}

export interface CheckOptions {
  /** The C compiler; default: $CC, then gcc, then cc — the first that is GCC. */
  readonly compiler?: string;
  /** Keep the generated translation units here instead of a temporary directory. */
  readonly workDir?: string;
}

// ----- descriptors ----------------------------------------------------------------------------

const classes = { signed: 1, unsigned: 2, bool: 3, enum: 4, float: 5, pointer: 6, struct: 7, union: 8, char: 9, other: 10 } as const;
type ClassName = keyof typeof classes;
const classNames = Object.fromEntries(Object.entries(classes).map(([name, code]) => [code, name])) as Record<number, ClassName>;
const desc = (cls: ClassName, size: number) => classes[cls] * 100000 + size;

const scalarDescs: Record<string, number> = {
  i8: desc("signed", 1), u8: desc("unsigned", 1), bool: desc("bool", 1),
  i16: desc("signed", 2), u16: desc("unsigned", 2), i32: desc("signed", 4), u32: desc("unsigned", 4),
  i64: desc("signed", 8), u64: desc("unsigned", 8), isize: desc("signed", 8), usize: desc("unsigned", 8),
  f32: desc("float", 4), f64: desc("float", 8),
  ptr: desc("pointer", 8), buffer: desc("pointer", 8), cstring: desc("pointer", 8), callback: desc("pointer", 8),
};

const tableNames: Record<number, string> = {
  [desc("signed", 1)]: "i8", [desc("unsigned", 1)]: "u8", [desc("bool", 1)]: "bool", [desc("char", 1)]: "char",
  [desc("signed", 2)]: "i16", [desc("unsigned", 2)]: "u16", [desc("signed", 4)]: "i32", [desc("unsigned", 4)]: "u32",
  [desc("signed", 8)]: "i64", [desc("unsigned", 8)]: "u64", [desc("float", 4)]: "f32", [desc("float", 8)]: "f64",
  [desc("pointer", 8)]: "pointer",
};

/** What a descriptor the compiler computed means, in the tables' own words where there are some. */
export function describeDescriptor(value: number): string {
  const cls = classNames[Math.floor(value / 100000)] ?? "other";
  const size = value % 100000;
  return tableNames[value] ?? (cls === "struct" || cls === "union" || cls === "enum" ? `${cls} of ${size} bytes` : `${cls} of ${size} bytes`);
}

/** The descriptors a table type accepts from C. */
function accepted(type: ParameterType | ResultType | FieldType, cText: string, library: AbiLibrary, relaxed: boolean): number[] {
  if (isStructType(type)) return [desc("struct", type.size)];
  const base = scalarDescs[type as string];
  if (base === undefined) throw new Error(`no descriptor for table type ${JSON.stringify(type)}`);
  const size = base % 100000;
  const out = [base];
  if (relaxed) out.push(desc("signed", size), desc("unsigned", size), desc("pointer", size));
  if (type === "i32" || type === "u32") out.push(desc("enum", 4));
  if (type === "i8" || type === "u8") out.push(desc("char", 1));
  if (type === "ptr" && library.addressTypes?.includes(cText.trim())) out.push(desc("unsigned", 8));
  return [...new Set(out)];
}

function describeType(type: ParameterType | ResultType | FieldType): string {
  if (isStructType(type)) return `${type.name} (${type.size} bytes)`;
  if (typeof type === "object" && "array" in type) return `${type.array}[${type.length}]`;
  return type as string;
}

// ----- the C prelude --------------------------------------------------------------------------

const prelude = `
#include <stddef.h>
#include <stdbool.h>
enum gpuffi_abi_u { gpuffi_abi_u0 = 0 };
enum gpuffi_abi_s { gpuffi_abi_s0 = -1 };
#define GPUFFI_E(T) (*(T *)0)
#define GPUFFI_IS(T, U) __builtin_types_compatible_p(T, U)
#define GPUFFI_ENUM(T) (!GPUFFI_IS(T, enum gpuffi_abi_u) && !GPUFFI_IS(T, enum gpuffi_abi_s) && (GPUFFI_IS(T, unsigned int) || GPUFFI_IS(T, int)))
#define GPUFFI_SIGNED(T) _Generic(GPUFFI_E(T), signed char: 1, short: 1, int: 1, long: 1, long long: 1, __int128: 1, default: 0)
#define GPUFFI_CLASS(T) (GPUFFI_IS(T, _Bool) ? 3 : GPUFFI_IS(T, char) ? 9 : GPUFFI_ENUM(T) ? 4 : \\
  __builtin_classify_type(GPUFFI_E(T)) == 1 ? (GPUFFI_SIGNED(T) ? 1 : 2) : \\
  __builtin_classify_type(GPUFFI_E(T)) == 8 ? 5 : __builtin_classify_type(GPUFFI_E(T)) == 5 ? 6 : \\
  __builtin_classify_type(GPUFFI_E(T)) == 12 ? 7 : __builtin_classify_type(GPUFFI_E(T)) == 13 ? 8 : 10)
#define GPUFFI_DESC(T) (GPUFFI_CLASS(T) * 100000L + (long)sizeof(T))
`;

// ----- pass 1: the declarations, from -aux-info ------------------------------------------------

interface CDeclaration {
  readonly result: string;
  readonly parameters: readonly string[];
  readonly variadic: boolean;
  readonly where: string;
}

function matchingParen(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === "(") depth++;
    else if (text[i] === ")" && --depth === 0) return i;
  }
  return -1;
}

function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "(" || c === "[") depth++;
    else if (c === ")" || c === "]") depth--;
    else if (c === "," && depth === 0) {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(text.slice(start).trim());
  return parts;
}

/** A parameter declared as an array is a pointer: `const void *const[]` → `const void *const *`. */
function adjustParameter(text: string): string {
  return text.includes("(") ? text : text.replace(/\s*\[[^\][()]*\]\s*$/, " *");
}

/** Parses GCC's -aux-info output: `/* file:line:NC *\/ extern int32_t f (int32_t, void *);`. */
export function parseAuxInfo(text: string): Map<string, CDeclaration> {
  const declarations = new Map<string, CDeclaration>();
  for (const line of text.split("\n")) {
    const m = /^\/\* (.+):(\d+):[NO][CF] \*\/ (.*?;)(?:\s*\/\* \(([^)]*)\).*\*\/)?\s*$/.exec(line);
    if (!m) continue;
    const [, file, lineNo, declaration, nameList] = m as unknown as [string, string, string, string, string | undefined];
    const open = declaration.indexOf(" (");
    if (open < 0) continue;
    const name = /([A-Za-z_]\w*)$/.exec(declaration.slice(0, open))?.[1];
    if (!name || declarations.has(name)) continue;
    const result = declaration.slice(0, open - name.length).replace(/\b(extern|static|inline|__inline__|__inline|_Noreturn)\b/g, "").trim();
    const close = matchingParen(declaration, open + 1);
    if (close < 0 || result.includes("(") || declaration.slice(close + 1).trim() !== ";") continue; // returns a function pointer: not bound
    let parameters = splitTopLevel(declaration.slice(open + 2, close));
    const variadic = parameters.at(-1) === "...";
    if (variadic) parameters = parameters.slice(0, -1);
    // `f(void)`; and `f()` without a prototype (nccl.h's ncclGroupStart), which gcc prints as
    // `f (/* ??? */)`: the header says nothing of the parameters, so none are compared.
    if (parameters.length === 1 && (parameters[0] === "void" || parameters[0] === "/* ??? */")) parameters = [];
    // Definitions (F) carry parameter names; the trailing comment lists them in order.
    const names = nameList?.split(",").map((n) => n.trim()) ?? [];
    parameters = parameters.map((p, i) => {
      const pname = names[i];
      if (!pname) return adjustParameter(p);
      const at = p.search(new RegExp(`\\b${pname}\\b(?!.*\\b${pname}\\b)`));
      return adjustParameter(at < 0 ? p : `${p.slice(0, at)}${p.slice(at + pname.length)}`.replace(/\s+/g, " ").trim());
    });
    declarations.set(name, { result, parameters, variadic, where: `${file}:${lineNo}` });
  }
  return declarations;
}

// ----- compiling ------------------------------------------------------------------------------

interface Compiled {
  readonly ok: boolean;
  readonly output: string;
}

function compile(compiler: string, file: string, includeDirs: readonly string[], extra: readonly string[]): Compiled {
  const args = ["-std=gnu11", "-fsyntax-only", "-fno-diagnostics-show-caret", "-fdiagnostics-color=never", ...includeDirs.map((d) => `-I${d}`), ...extra, file];
  const run = spawnSync(compiler, args, { encoding: "utf8", env: { ...process.env, LC_ALL: "C", LANG: "C" }, maxBuffer: 64 << 20 });
  if (run.error) throw run.error;
  return { ok: run.status === 0, output: `${run.stdout}${run.stderr}` };
}

let compilerFound: { compiler: string } | { skip: string } | undefined;

/** The first of $CC, gcc, cc that is GCC (-aux-info is GCC's alone), or why there is none. */
export function findCompiler(preferred?: string): { compiler: string } | { skip: string } {
  if (!preferred && compilerFound) return compilerFound;
  const tried: string[] = [];
  for (const candidate of [preferred, process.env.CC, "gcc", "cc"].filter((c): c is string => !!c)) {
    const run = spawnSync(candidate, ["--version"], { encoding: "utf8" });
    if (run.error) {
      tried.push(`${candidate} (not found)`);
      continue;
    }
    if (/Free Software Foundation|\bgcc\b|GCC/.test(run.stdout) && !/clang/i.test(run.stdout)) return (compilerFound = { compiler: candidate });
    tried.push(`${candidate} (not GCC)`);
  }
  return (compilerFound = { skip: `no GCC to compile against the headers (the check needs GCC's -aux-info); tried ${tried.join(", ")}` });
}

// ----- pass 2: the checks ---------------------------------------------------------------------

interface Check {
  readonly symbol: string;
  readonly what: string;
  readonly expected: string;
  /** What the C text was, to print beside the found descriptor. */
  readonly cText?: string;
  /** How to print the found number: a descriptor, a plain number, or a number minus a bias. */
  readonly found: "descriptor" | "number" | "boolean" | { bias: number };
}

const valueBias = 2 ** 33;

class CheckWriter {
  readonly lines: string[] = [];
  readonly checks = new Map<number, Check>();
  #next = 0;

  constructor(header: string) {
    this.lines.push(...header.split("\n"));
  }

  raw(line: string): void {
    this.lines.push(line);
  }

  /** One line: fails to compile unless `found` (a C constant expression) is one of `accepted`. */
  add(check: Check, found: string, accepted: readonly number[]): void {
    const id = this.#next++;
    const ok = accepted.map((a) => `(${found}) == ${a}L`).join(" || ");
    const label = `gpuffi-abi: ${check.symbol} ${check.what}: expected ${check.expected}`.replace(/["\\]/g, "'");
    this.lines.push(
      `_Static_assert(${ok}, "${label}"); ` +
        `extern char (*gpuffi_abi_${id})[${accepted[0]}L]; extern char (*gpuffi_abi_${id})[(${ok}) ? ${accepted[0]}L : (long)(${found})];`,
    );
    this.checks.set(this.lines.length, check);
  }
}

function typeOf(text: string): string {
  return `__typeof__(${text})`;
}

function addStructChecks(writer: CheckWriter, library: AbiLibrary, entry: AbiStruct): number {
  const { type, c } = entry;
  const symbol = type.name;
  writer.add({ symbol, what: "sizeof", expected: String(type.size), found: "number" }, `sizeof(${c})`, [type.size]);
  writer.add({ symbol, what: "_Alignof", expected: String(type.alignment), found: "number" }, `_Alignof(${c})`, [type.alignment]);
  let fields = 0;
  const walk = (struct: StructType, path: string) => {
    for (const field of struct.layout) {
      fields++;
      const member = path ? `${path}.${field.name}` : field.name;
      const access = `((${c} *)0)->${member}`;
      const name = `field ${member}`;
      const offset = offsetWithin(type, member);
      writer.add({ symbol, what: `${name} offset`, expected: String(offset), found: "number" }, `offsetof(${c}, ${member})`, [offset]);
      const fieldSize = isStructType(field.type) ? field.type.size : isArrayField(field.type) ? (scalarDescs[field.type.array]! % 100000) * field.type.length : scalarDescs[field.type]! % 100000;
      writer.add({ symbol, what: `${name} size`, expected: String(fieldSize), found: "number" }, `sizeof(${access})`, [fieldSize]);
      if (isStructType(field.type)) {
        walk(field.type, member);
      } else if (isArrayField(field.type)) {
        writer.add({ symbol, what: `${name}[0] type`, expected: field.type.array, found: "descriptor" }, `GPUFFI_DESC(${typeOf(`${access}[0]`)})`, accepted(field.type.array, "", library, false));
      } else {
        writer.add({ symbol, what: `${name} type`, expected: field.type, found: "descriptor" }, `GPUFFI_DESC(${typeOf(access)})`, accepted(field.type, "", library, false));
      }
    }
  };
  walk(type, "");
  return fields;
}

/** The offset of a (possibly nested) member from the start of the outermost struct. */
function offsetWithin(type: StructType, member: string): number {
  let offset = 0;
  let current: StructType = type;
  for (const name of member.split(".")) {
    const field = current.layout.find((f) => f.name === name)!;
    offset += field.offset;
    if (isStructType(field.type)) current = field.type;
  }
  return offset;
}

function parseDiagnostics(output: string, file: string): { line: number; message: string; lines: number[] }[] {
  const blocks: { line: number; message: string; lines: number[] }[] = [];
  const escaped = file.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  for (const raw of output.split("\n")) {
    const m = new RegExp(`^${escaped}:(\\d+):\\d+: (error|note|warning): (.*)$`).exec(raw) ?? /^(?:In file included from )?(.+?):(\d+):\d+: (error|note|warning): (.*)$/.exec(raw);
    if (!m) continue;
    const inFile = m.length === 4;
    const kind = inFile ? m[2]! : m[3]!;
    const message = inFile ? m[3]! : `${m[1]}:${m[2]}: ${m[4]}`;
    const line = inFile ? Number(m[1]) : 0;
    if (kind === "error") blocks.push({ line, message, lines: line ? [line] : [] });
    else if (blocks.length > 0 && line) blocks.at(-1)!.lines.push(line);
  }
  return blocks;
}

function formatFound(check: Check, value: number): string {
  if (check.found === "descriptor") return `${check.cText ? `${check.cText} (${describeDescriptor(value)})` : describeDescriptor(value)}`;
  if (check.found === "boolean") return value ? "yes" : `another type${check.cText ? `: ${check.cText}` : ""}`;
  if (check.found === "number") return String(value);
  return String(value - check.found.bias);
}

// ----- the whole check ------------------------------------------------------------------------

function includeLine(header: string): string {
  return header.startsWith("<") ? `#include ${header}` : `#include "${header}"`;
}

/** Checks one library against its headers in `includeDirs`. */
export function checkLibrary(library: AbiLibrary, includeDirs: readonly string[], options: CheckOptions = {}): AbiReport {
  const empty = { library: library.name, functions: 0, structs: 0, fields: 0, constants: 0, inapplicable: [], mismatches: [] };
  const found = findCompiler(options.compiler);
  if ("skip" in found) return { ...empty, skipped: found.skip };
  for (const header of library.headers) {
    if (header.startsWith("<")) continue;
    if (!includeDirs.some((dir) => existsSync(join(dir, header)))) return { ...empty, skipped: `${header} not found in ${includeDirs.join(", ") || "(no include directories)"}` };
  }
  const dir = options.workDir ?? mkdtempSync(join(tmpdir(), "gpuffi-abi-"));
  try {
    return run(library, includeDirs, found.compiler, dir);
  } finally {
    if (!options.workDir) rmSync(dir, { recursive: true, force: true });
  }
}

function run(library: AbiLibrary, includeDirs: readonly string[], compiler: string, dir: string): AbiReport {
  const mismatches: AbiMismatch[] = [];
  const fail = (symbol: string, what: string, expected: string, foundText: string) => mismatches.push({ library: library.name, symbol, what, expected, found: foundText });
  const includes = [...(library.defines ?? []).map((d) => `#define ${d}`), ...library.headers.map(includeLine)].join("\n");

  // Pass 1: declarations, guards, version.
  const guards = [...library.tables.map((t) => t.guard), ...(library.structs ?? []).map((s) => s.guard)];
  const pass1 = [
    includes,
    ...guards.map((guard, i) => (guard ? `#if ${guard}\nvoid gpuffi_abi_guard_${i}(void);\n#endif` : `void gpuffi_abi_guard_${i}(void);`)),
    library.version ? `void gpuffi_abi_version(char (*)[(${library.version}) + 1]);` : "",
  ].join("\n");
  const file1 = join(dir, `${library.name}-declarations.c`);
  const aux = join(dir, `${library.name}-declarations.aux`);
  writeFileSync(file1, `${pass1}\n`);
  const first = compile(compiler, file1, includeDirs, ["-aux-info", aux]);
  const empty = { library: library.name, functions: 0, structs: 0, fields: 0, constants: 0, inapplicable: [] };
  if (!first.ok) {
    fail(library.headers.join(", "), "headers", "to compile", first.output.split("\n").find((l) => l.includes("error")) ?? first.output.trim());
    return { ...empty, mismatches };
  }
  const declarations = parseAuxInfo(readFileSync(aux, "utf8"));
  const applies = (i: number) => declarations.has(`gpuffi_abi_guard_${i}`);
  const versionValue = /char \(\*\)\[(\d+)\]/.exec(declarations.get("gpuffi_abi_version")?.parameters[0] ?? "")?.[1];
  const inapplicable: string[] = [];

  // Pass 2: the checks.
  const writer = new CheckWriter(`${includes}\n${prelude}`);
  let functions = 0;
  library.tables.forEach((table, t) => {
    if (!applies(t)) {
      inapplicable.push(`${table.name} (${table.guard})`);
      return;
    }
    for (const [key, definition] of Object.entries(table.symbols)) {
      functions++;
      const cName = definition.symbol ?? key;
      const symbol = cName === key ? key : `${key} (${cName})`;
      const declaration = declarations.get(cName);
      if (!declaration) {
        fail(symbol, "declaration", `declared in ${library.headers.join(", ")}`, "not declared");
        continue;
      }
      const exception = (position: "result" | number) => library.exceptions?.some((e) => e.symbol === key && e.position === position) ?? false;
      const n = definition.parameters.length;
      const m = declaration.parameters.length;
      if (n !== m && !(declaration.variadic && n > m)) {
        fail(symbol, "parameter count", `${n}`, `${m}${declaration.variadic ? " and ..." : ""} (${declaration.where})`);
      }
      definition.parameters.slice(0, m).forEach((type, i) => {
        const cText = declaration.parameters[i]!;
        const check = { symbol, what: `parameter ${i + 1}`, expected: describeType(type), cText, found: "descriptor" } as const;
        writer.add(check, `GPUFFI_DESC(${typeOf(cText)})`, accepted(type, cText, library, exception(i + 1)));
        if (isStructType(type)) addStructIdentity(writer, library, symbol, `parameter ${i + 1}`, type, cText, fail);
      });
      const result = definition.result;
      if (result === "void" || declaration.result === "void") {
        if (result !== declaration.result) fail(symbol, "result", describeType(result), declaration.result);
      } else {
        writer.add({ symbol, what: "result", expected: describeType(result), cText: declaration.result, found: "descriptor" }, `GPUFFI_DESC(${typeOf(declaration.result)})`, accepted(result, declaration.result, library, exception("result")));
        if (isStructType(result)) addStructIdentity(writer, library, symbol, "result", result, declaration.result, fail);
      }
    }
  });

  let structs = 0;
  let fields = 0;
  (library.structs ?? []).forEach((entry, s) => {
    if (!applies(library.tables.length + s)) {
      inapplicable.push(`${entry.type.name} (${entry.guard})`);
      return;
    }
    structs++;
    fields += addStructChecks(writer, library, entry);
  });

  for (const constant of library.constants ?? []) {
    writer.add({ symbol: constant.js, what: `= ${constant.c}`, expected: String(constant.value), found: { bias: valueBias } }, `(long long)(${constant.c}) + ${valueBias}LL`, [constant.value + valueBias]);
  }

  const file2 = join(dir, `${library.name}-checks.c`);
  writeFileSync(file2, `${writer.lines.join("\n")}\n`);
  const second = compile(compiler, file2, includeDirs, []);
  if (!second.ok) collectFailures(second.output, file2, writer.checks, fail);

  const source = versionValue === undefined ? undefined : `${library.version} ${Number(versionValue) - 1}`;
  return { library: library.name, source, functions, structs, fields, constants: library.constants?.length ?? 0, inapplicable, mismatches };
}

/** A struct passed by value must be the very C type the registry pairs with its layout. */
function addStructIdentity(writer: CheckWriter, library: AbiLibrary, symbol: string, what: string, type: StructType, cText: string, fail: (s: string, w: string, e: string, f: string) => void): void {
  const entry = library.structs?.find((s) => s.type === type);
  if (!entry) {
    fail(symbol, what, `${type.name} listed in the library's structs (scripts/abi/tables.ts)`, "not listed: its layout is unchecked");
    return;
  }
  writer.add({ symbol, what: `${what} type`, expected: entry.c, cText, found: "boolean" }, `GPUFFI_IS(${typeOf(cText)}, ${entry.c})`, [1]);
}

function collectFailures(output: string, file: string, checks: Map<number, Check>, fail: (s: string, w: string, e: string, f: string) => void): void {
  const reported = new Set<number>();
  const values = new Map<number, number>();
  const other = new Map<number, string>();
  const general: string[] = [];
  for (const block of parseDiagnostics(output, file)) {
    const line = block.lines.find((l) => checks.has(l));
    if (line === undefined) {
      general.push(block.message);
      continue;
    }
    const conflict = /conflicting types for '?gpuffi_abi_\d+'?; have 'char \(\*\)\[(-?\d+)L?\]'/.exec(block.message);
    if (conflict) values.set(line, Number(conflict[1]));
    else if (!/static assertion failed/.test(block.message) && !/conflicting types|variably modified|previous declaration/.test(block.message) && !other.has(line)) other.set(line, block.message);
    reported.add(line);
  }
  // A member or name the header lacks fails every check that uses it: name it once.
  const missing = new Set<string>();
  for (const line of [...reported].sort((a, b) => a - b)) {
    const check = checks.get(line)!;
    const value = values.get(line);
    const text = other.get(line);
    if (text !== undefined) {
      if (missing.has(`${check.symbol}\0${text}`)) continue;
      missing.add(`${check.symbol}\0${text}`);
      const expected = check.what.endsWith(" offset") ? `a member at offset ${check.expected}` : check.expected;
      fail(check.symbol, check.what.replace(/ (offset|size|type)$/, ""), expected, `does not compile: ${text}`);
    } else {
      fail(check.symbol, check.what, check.expected, value !== undefined ? formatFound(check, value) : "something else (see the compiler's output)");
    }
  }
  for (const message of new Set(general)) fail("(translation unit)", "compile", "no errors", message);
}
