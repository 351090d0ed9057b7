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
import { decodeStruct, encodeStruct } from "./struct-codec.ts";
import { type FieldType, type FunctionDefinition, type ParameterType, type Pointer, type ScalarType, type StructType, isArrayField, isStructType } from "./types.ts";

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

function wrapperSource(name: string, definition: FunctionDefinition, typedefs: StructTypedefs): string {
  const params = definition.parameters.map((t, i) => (isStructType(t) ? `const ${typedefs.cType(t)} *a${i}` : `${typedefs.cType(t)} a${i}`));
  const args = definition.parameters.map((t, i) => (isStructType(t) ? `*a${i}` : `a${i}`));
  const fnType = `${typedefs.cType(definition.result)} (*)(${definition.parameters.map((t) => typedefs.cType(t)).join(", ") || "void"})`;
  const call = `((${fnType})fn)(${args.join(", ")})`;
  if (isStructType(definition.result)) {
    const ret = typedefs.cType(definition.result);
    return `void gpuffi_shim_${name}(${["void *fn", ...params, `${ret} *ret`].join(", ")}) {\n  *ret = ${call};\n}`;
  }
  const ret = typedefs.cType(definition.result);
  return `${ret} gpuffi_shim_${name}(${["void *fn", ...params].join(", ")}) {\n  ${ret === "void" ? "" : "return "}${call};\n}`;
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
  const wrappers = entries.map(([name, d]) => wrapperSource(name, d, typedefs));
  const source = `#include "struct_shim.h"\n\n${typedefs.lines.join("\n\n")}\n\n${wrappers.join("\n\n")}\n`;

  // TinyCC compiles from a file: write the generated source once per distinct content.
  const dir = join(tmpdir(), "gpuffi-shims");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `shim-${createHash("sha256").update(source).digest("hex").slice(0, 16)}.c`);
  writeFileSync(file, source);

  const specs = Object.fromEntries(
    entries.map(([name, d]) => {
      const args = [FFIType.ptr, ...d.parameters.map((t) => (isStructType(t) ? FFIType.ptr : mapParameter(t as never).native))];
      if (isStructType(d.result)) args.push(FFIType.ptr);
      const returns = isStructType(d.result) ? FFIType.void : mapResult(d.result as never).native;
      return [`gpuffi_shim_${name}`, { args, returns }];
    }),
  );
  const compiled = cc({ source: file, include: [csrcDir], symbols: specs });
  const symbols: Record<string, (...args: never[]) => unknown> = {};
  for (const [name, d] of entries) {
    symbols[name] = bindWrapper(name, d, addresses.get(name)!, compiled.symbols[`gpuffi_shim_${name}`] as never);
  }
  return { symbols, close: () => compiled.close(), source };
}
