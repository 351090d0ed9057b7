// Generates and compiles (with bun:ffi's built-in TinyCC) the C wrappers that let Bun call
// functions taking or returning structs by value. See csrc/struct_shim.h for the contract.
import { FFIType, cc } from "bun:ffi";
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { mapParameter, mapResult } from "./bun-types.ts";
import { type Converter, withConversions } from "./convert.ts";
import { UnsupportedError } from "./errors.ts";
import { decodeStruct, encodeStruct } from "./struct-codec.ts";
import { type FieldType, type FunctionDefinition, type ParameterType, type Pointer, type ScalarType, type StructType, isArrayField, isStructType, sizeOf } from "./types.ts";

const csrcDir = fileURLToPath(new URL("../../csrc/", import.meta.url));

const cScalars: Record<ScalarType, string> = {
  bool: "bool", i8: "int8_t", u8: "uint8_t", i16: "int16_t", u16: "uint16_t", i32: "int32_t", u32: "uint32_t",
  i64: "int64_t", u64: "uint64_t", isize: "intptr_t", usize: "uintptr_t", f32: "float", f64: "double", ptr: "void *",
};

const cParameterTypes: Record<string, string> = { buffer: "void *", cstring: "const char *", callback: "void *" };

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

  cType(type: ParameterType | "void"): string {
    if (isStructType(type)) return this.name(type);
    if (type === "void") return "void";
    return cScalars[type as ScalarType] ?? cParameterTypes[type]!;
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
function registersOf(type: ParameterType): [number, number] {
  if (type === "f32" || type === "f64") return [0, 1];
  if (!isStructType(type)) return [1, 0];
  const classes = eightbyteClasses(type) ?? [];
  return [classes.filter((c) => c === "int").length, classes.filter((c) => c === "sse").length];
}

function wrapperSource(name: string, definition: FunctionDefinition, typedefs: StructTypedefs): string {
  const params: string[] = ["void *fn"];
  const calleeTypes: string[] = [];
  const args: string[] = [];
  let [generalUsed, sseUsed] = [0, 0];
  definition.parameters.forEach((t, i) => {
    const [general, sse] = registersOf(t);
    if (isStructType(t) && isMixed(t)) {
      // Split into eightbytes only while both fit in registers, as the ABI would place them.
      if (generalUsed + general > 6 || sseUsed + sse > 8) {
        throw new UnsupportedError(`${name}: on Bun, argument ${i} (struct ${t.name}) would be passed on the stack, which the struct shim cannot express`);
      }
      params.push(`const ${typedefs.cType(t)} *a${i}`);
      eightbyteClasses(t)!.forEach((c, e) => {
        calleeTypes.push(c === "int" ? "uint64_t" : "double");
        args.push(`gpuffi_eightbyte_${c}(a${i}, ${t.size}, ${e})`);
      });
    } else if (isStructType(t)) {
      params.push(`const ${typedefs.cType(t)} *a${i}`);
      calleeTypes.push(typedefs.cType(t));
      args.push(`*a${i}`);
    } else {
      params.push(`${typedefs.cType(t)} a${i}`);
      calleeTypes.push(typedefs.cType(t));
      args.push(`a${i}`);
    }
    if (!isStructType(t) || eightbyteClasses(t)) [generalUsed, sseUsed] = [generalUsed + general, sseUsed + sse];
  });
  const callee = (ret: string) => `((${ret} (*)(${calleeTypes.join(", ") || "void"}))fn)(${args.join(", ")})`;
  const result = definition.result;
  if (isStructType(result)) {
    const ret = typedefs.cType(result);
    params.push(`${ret} *ret`);
    const body = isMixed(result)
      ? `  uint64_t rax = ${callee("uint64_t")};\n  uint64_t xmm0;\n  __asm__ volatile("movq %%xmm0, %0" : "=m"(xmm0));\n` +
        `  gpuffi_store_mixed(ret, ${result.size}, ${eightbyteClasses(result)![0] === "int" ? 1 : 0}, rax, xmm0);`
      : `  *ret = ${callee(ret)};`;
    return `void gpuffi_shim_${name}(${params.join(", ")}) {\n${body}\n}`;
  }
  const ret = typedefs.cType(result);
  return `${ret} gpuffi_shim_${name}(${params.join(", ")}) {\n  ${ret === "void" ? "" : "return "}${callee(ret)};\n}`;
}

/** The JS side of one wrapper: encode struct arguments, pass the address, decode a struct result. */
function bindWrapper(name: string, definition: FunctionDefinition, address: Pointer, call: (...args: never[]) => unknown) {
  const structResult = isStructType(definition.result) ? definition.result : undefined;
  const parameterConverters: (Converter | undefined)[] = definition.parameters.map((t, i) =>
    isStructType(t) ? (((v: never) => encodeStruct(t, v, `${name} argument ${i}`)) as Converter) : mapParameter(t as never).convert,
  );
  const resultConverter = structResult ? undefined : mapResult(definition.result as never).convert;
  const convertedCall = withConversions(call, [undefined, ...parameterConverters], resultConverter);
  if (!structResult) return (...args: never[]) => convertedCall(address as never, ...args);
  return (...args: never[]) => {
    const ret = new Uint8Array(structResult.size);
    convertedCall(address as never, ...args, ret as never);
    return decodeStruct(structResult, ret);
  };
}

export function compileStructShim(entries: readonly (readonly [string, FunctionDefinition])[], addresses: ReadonlyMap<string, Pointer>) {
  const typedefs = new StructTypedefs();
  const wrappers: string[] = [];
  const supported: (readonly [string, FunctionDefinition])[] = [];
  const symbols: Record<string, (...args: never[]) => unknown> = {};
  for (const [name, d] of entries) {
    try {
      wrappers.push(wrapperSource(name, d, typedefs));
      supported.push([name, d]);
    } catch (error) {
      if (!(error instanceof UnsupportedError)) throw error;
      symbols[name] = () => {
        throw error;
      };
    }
  }
  const source = `#include "struct_shim.h"\n\n${typedefs.lines.join("\n\n")}\n\n${wrappers.join("\n\n")}\n`;

  // TinyCC compiles from a file: write the generated source once per distinct content.
  const dir = join(tmpdir(), "gpuffi-shims");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `shim-${createHash("sha256").update(source).digest("hex").slice(0, 16)}.c`);
  writeFileSync(file, source);

  const specs = Object.fromEntries(
    supported.map(([name, d]) => {
      const args = [FFIType.ptr, ...d.parameters.map((t) => (isStructType(t) ? FFIType.ptr : mapParameter(t as never).native))];
      if (isStructType(d.result)) args.push(FFIType.ptr);
      const returns = isStructType(d.result) ? FFIType.void : mapResult(d.result as never).native;
      return [`gpuffi_shim_${name}`, { args, returns }];
    }),
  );
  const compiled = cc({ source: file, include: [csrcDir], symbols: specs });
  for (const [name, d] of supported) {
    symbols[name] = bindWrapper(name, d, addresses.get(name)!, compiled.symbols[`gpuffi_shim_${name}`] as never);
  }
  return { symbols, close: () => compiled.close(), source };
}
