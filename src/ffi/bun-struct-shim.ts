// Generates and compiles (with bun:ffi's built-in TinyCC) the C wrappers that let Bun call
// functions taking or returning structs by value. See csrc/struct_shim.h for the contract.
//
// Every wrapper has the same signature, (fn, args, ret): the arguments travel in one block laid
// out as a C struct (encoded by gpuffi's struct codec, declared to TinyCC by the same typedef
// generator) and the result comes back through `ret`. Passing only pointers keeps these calls
// clear of a Bun JIT defect seen here: after warm-up, int32 arguments to a TinyCC-compiled
// function sometimes arrived as garbage.
import { FFIType, cc, ptr } from "bun:ffi";
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readCString } from "./bun-types.ts";
import { callbackPointer, encodeCString } from "./convert.ts";
import { UnsupportedError } from "./errors.ts";
import { decodeStruct, encodeStruct } from "./struct-codec.ts";
import {
  type FieldType,
  type FunctionDefinition,
  type ParameterType,
  type Pointer,
  type ScalarType,
  type StructType,
  defineStruct,
  isArrayField,
  isStructType,
  sizeOf,
} from "./types.ts";

const csrcDir = fileURLToPath(new URL("../../csrc/", import.meta.url));

const cScalars: Record<ScalarType, string> = {
  bool: "bool", i8: "int8_t", u8: "uint8_t", i16: "int16_t", u16: "uint16_t", i32: "int32_t", u32: "uint32_t",
  i64: "int64_t", u64: "uint64_t", isize: "intptr_t", usize: "uintptr_t", f32: "float", f64: "double", ptr: "void *",
};

/** Emits C typedefs for structs (nested ones first, each once) and names them. */
class StructTypedefs {
  readonly names = new Map<StructType, string>();
  readonly lines: string[] = [];

  name(type: StructType): string {
    const known = this.names.get(type);
    if (known) return known;
    const fields = type.layout.map((f, i) => `  ${this.fieldDeclaration(f.type, `f${i}`)};`);
    const cName = `gpuffi_s${this.names.size}_${type.name.replace(/\W/g, "_")}`;
    this.names.set(type, cName);
    this.lines.push(`typedef struct {\n${fields.join("\n")}\n} ${cName};`);
    return cName;
  }

  private fieldDeclaration(type: FieldType, name: string): string {
    if (isStructType(type)) return `${this.name(type)} ${name}`;
    if (isArrayField(type)) return `${cScalars[type.array]} ${name}[${type.length}]`;
    return `${cScalars[type]} ${name}`;
  }

  cType(type: FieldType | "void"): string {
    if (isStructType(type)) return this.name(type);
    if (type === "void") return "void";
    return cScalars[type as ScalarType];
  }
}

type EightbyteClass = "int" | "sse";

/** System V classes of a struct's eightbytes, or `undefined` when it is passed in memory (> 16 bytes). */
function eightbyteClasses(type: StructType): EightbyteClass[] | undefined {
  if (type.size > 16) return undefined;
  const classes: EightbyteClass[] = [];
  const visit = (t: FieldType, offset: number): void => {
    if (isStructType(t)) return t.layout.forEach((f) => visit(f.type, offset + f.offset));
    if (isArrayField(t)) return Array.from({ length: t.length }, (_, i) => i).forEach((i) => visit(t.array, offset + i * sizeOf(t.array)));
    const index = Math.floor(offset / 8);
    classes[index] = classes[index] === "int" || (t !== "f32" && t !== "f64") ? "int" : "sse";
  };
  visit(type, 0);
  return classes;
}

/** The case TinyCC gets wrong: two eightbytes of different classes. */
function isMixed(type: StructType): boolean {
  const classes = eightbyteClasses(type);
  return classes !== undefined && classes.length === 2 && classes[0] !== classes[1];
}

/** Registers (general, SSE) a parameter takes when passed in registers. */
function registersOf(type: FieldType): [number, number] {
  if (type === "f32" || type === "f64") return [0, 1];
  if (!isStructType(type)) return [1, 0];
  const classes = eightbyteClasses(type) ?? [];
  return [classes.filter((c) => c === "int").length, classes.filter((c) => c === "sse").length];
}

/** The C type each parameter has inside the argument block: JS memory and callbacks become pointers. */
const blockField = (type: ParameterType): FieldType => (isStructType(type) ? type : type === "buffer" || type === "cstring" || type === "callback" ? "ptr" : type);

function wrapperSource(name: string, definition: FunctionDefinition, argsType: StructType | undefined, typedefs: StructTypedefs): string {
  const calleeTypes: string[] = [];
  const args: string[] = [];
  let [generalUsed, sseUsed] = [0, 0];
  definition.parameters.forEach((parameter, i) => {
    const t = blockField(parameter);
    const [general, sse] = registersOf(t);
    if (isStructType(t) && isMixed(t)) {
      // Split into eightbytes only while both fit in registers, as the ABI would place them.
      if (generalUsed + general > 6 || sseUsed + sse > 8) {
        throw new UnsupportedError(`${name}: on Bun, argument ${i} (struct ${t.name}) would be passed on the stack, which the struct shim cannot express`);
      }
      eightbyteClasses(t)!.forEach((c, e) => {
        calleeTypes.push(c === "int" ? "uint64_t" : "double");
        args.push(`gpuffi_eightbyte_${c}(&a->f${i}, ${t.size}, ${e})`);
      });
    } else {
      calleeTypes.push(typedefs.cType(t));
      args.push(`a->f${i}`);
    }
    if (!isStructType(t) || eightbyteClasses(t)) [generalUsed, sseUsed] = [generalUsed + general, sseUsed + sse];
  });
  const callee = (ret: string) => `((${ret} (*)(${calleeTypes.join(", ") || "void"}))fn)(${args.join(", ")})`;
  const result = definition.result === "cstring" ? "ptr" : definition.result;
  const argsDecl = argsType ? `  const ${typedefs.name(argsType)} *a = args;\n` : "";
  let body: string;
  if (result === "void") body = `  ${callee("void")};`;
  else if (isStructType(result) && isMixed(result)) {
    body =
      `  uint64_t rax = ${callee("uint64_t")};\n  uint64_t xmm0;\n  __asm__ volatile("movq %%xmm0, %0" : "=m"(xmm0));\n` +
      `  gpuffi_store_mixed(ret, ${result.size}, ${eightbyteClasses(result)![0] === "int" ? 1 : 0}, rax, xmm0);`;
  } else body = `  *(${typedefs.cType(result)} *)ret = ${callee(typedefs.cType(result))};`;
  return `void gpuffi_shim_${name}(void *fn, const void *args, void *ret) {\n${argsDecl}${body}\n}`;
}

/** The JS side of one wrapper: fill the argument block, call, read the result. */
function bindWrapper(name: string, definition: FunctionDefinition, argsType: StructType | undefined, address: Pointer, call: (fn: Pointer, args: Uint8Array | null, ret: Uint8Array | null) => void) {
  const result = definition.result;
  const resultType = result === "void" ? undefined : isStructType(result) ? result : defineStruct(`${name} result`, { r: result === "cstring" ? "ptr" : result });
  const readResult = (ret: Uint8Array) => {
    if (isStructType(result)) return decodeStruct(result, ret);
    const value = decodeStruct(resultType!, ret).r;
    return result === "cstring" ? (value === 0 ? null : readCString(value as number)) : value;
  };
  return (...values: unknown[]) => {
    // JS memory handed to C stays referenced here until the call returns.
    const keepAlive: (ArrayBufferView | null)[] = [];
    const addressOf = (view: ArrayBufferView | null) => (keepAlive.push(view), view === null || view.byteLength === 0 ? 0 : (ptr(view as never) as number));
    const init: Record<string, unknown> = {};
    definition.parameters.forEach((t, i) => {
      const value = values[i];
      init[`f${i}`] = t === "buffer" ? addressOf(value as ArrayBufferView | null) : t === "cstring" ? addressOf(encodeCString(value as string | null)) : t === "callback" ? callbackPointer(value as never) : value;
    });
    const args = argsType ? encodeStruct(argsType, init as never, name) : null;
    const ret = resultType ? new Uint8Array(resultType.size) : null;
    call(address, args, ret);
    keepAlive.length = 0;
    return ret ? readResult(ret) : undefined;
  };
}

export function compileStructShim(entries: readonly (readonly [string, FunctionDefinition])[], addresses: ReadonlyMap<string, Pointer>) {
  const typedefs = new StructTypedefs();
  const wrappers: string[] = [];
  const supported: (readonly [string, FunctionDefinition, StructType | undefined])[] = [];
  const symbols: Record<string, (...args: never[]) => unknown> = {};
  for (const [name, d] of entries) {
    const fields = Object.fromEntries(d.parameters.map((t, i) => [`f${i}`, blockField(t)]));
    const argsType = d.parameters.length > 0 ? defineStruct(`${name}_args`, fields) : undefined;
    try {
      wrappers.push(wrapperSource(name, d, argsType, typedefs));
      supported.push([name, d, argsType]);
    } catch (error) {
      if (!(error instanceof UnsupportedError)) throw error;
      symbols[name] = () => {
        throw error;
      };
    }
  }
  const source = `#include "struct_shim.h"\n\n${typedefs.lines.join("\n\n")}\n\n${wrappers.join("\n\n")}\n`;

  // TinyCC compiles from a file named after the generated source's hash. Processes started
  // together (the ranks of a data-parallel run) write the same file at once: each writes its own
  // temporary file and renames it into place, so that no compile reads another's half-written one.
  const dir = join(tmpdir(), "gpuffi-shims");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `shim-${createHash("sha256").update(source).digest("hex").slice(0, 16)}.c`);
  const partial = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(partial, source);
  renameSync(partial, file);

  const signature = { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.void };
  const compiled = compileRetrying(() => cc({ source: file, include: [csrcDir], symbols: Object.fromEntries(supported.map(([name]) => [`gpuffi_shim_${name}`, signature])) }));
  for (const [name, d, argsType] of supported) {
    symbols[name] = bindWrapper(name, d, argsType, addresses.get(name)!, compiled.symbols[`gpuffi_shim_${name}`] as never) as never;
  }
  return { symbols, close: () => compiled.close(), source };
}

/**
 * Bun's cc() rewrites TinyCC's own headers (stdbool.h, stddef.h, …) in /tmp/bun-cc-<uid>/ on
 * every call, in place: a Bun process compiling while another rewrites them reads a half-written
 * header ("';' expected (got 'bool')", "string.h:44: error: invalid type"; seen with 4 to 12 Bun
 * processes started at once, as a data-parallel run starts its ranks). The rewrite takes
 * microseconds, so a failed compile is tried again after a short random pause.
 */
function compileRetrying<T>(compile: () => T): T {
  for (let attempt = 1; ; attempt++) {
    try {
      return compile();
    } catch (error) {
      if (attempt >= 8 || !/errors? while compiling/.test(String((error as Error)?.message ?? error))) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5 + Math.random() * 45);
    }
  }
}
