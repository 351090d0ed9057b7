// koffi backend for Node. koffi passes structs by value natively (as objects) and runs `.async`
// calls on its worker threads. Pointers travel as `uintptr_t` so gpuffi's numbers pass as they
// are; i64/u64 results come back as number when small and are made bigint as gpuffi promises.
import { createRequire } from "node:module";
import type { BackendLibrary, FfiBackend } from "./backend.ts";
import { type Converter, type Mapped, callbackPointer, checkCString, toBigInt, toNumber, withConversions } from "./convert.ts";
import { decodeStruct, encodeStruct } from "./struct-codec.ts";
import {
  type CallbackDefinition,
  type FieldType,
  type FunctionDefinition,
  type ParameterType,
  type ResultType,
  type ScalarType,
  type StructType,
  type SymbolTable,
  isArrayField,
  isStructType,
} from "./types.ts";
import type * as Koffi from "koffi";

// koffi is CommonJS; createRequire keeps this module loadable as ESM in Node without a bundler.
const koffi = createRequire(import.meta.url)("koffi") as typeof Koffi;
type KoffiType = Koffi.TypeObject | string;

const scalars: Record<ScalarType, string> = {
  bool: "bool", i8: "int8_t", u8: "uint8_t", i16: "int16_t", u16: "uint16_t", i32: "int32_t", u32: "uint32_t",
  i64: "int64_t", u64: "uint64_t", isize: "int64_t", usize: "uint64_t", f32: "float", f64: "double", ptr: "uintptr_t",
};

const koffiStructs = new Map<StructType, Koffi.TypeObject>();
function koffiStruct(type: StructType): Koffi.TypeObject {
  let made = koffiStructs.get(type);
  if (!made) {
    made = koffi.struct(Object.fromEntries(type.layout.map((f) => [f.name, koffiField(f.type)])));
    koffiStructs.set(type, made);
  }
  return made;
}
function koffiField(type: FieldType): KoffiType {
  if (isStructType(type)) return koffiStruct(type);
  if (isArrayField(type)) return koffi.array(scalars[type.array], type.length, "Array");
  return scalars[type];
}

// Struct values go through gpuffi's codec on the way in and out, so that they are validated,
// zero-filled and typed (bigint, pointers as numbers) exactly as on Bun and Deno.
function structToKoffi(type: StructType, where: string): Converter {
  const koffiType = koffiStruct(type);
  return ((value: never) => koffi.decode(encodeStruct(type, value, where), koffiType)) as Converter;
}
function structFromKoffi(type: StructType): Converter {
  const koffiType = koffiStruct(type);
  return ((value: object) => {
    const bytes = new Uint8Array(type.size);
    koffi.encode(bytes, koffiType, value);
    return decodeStruct(type, bytes);
  }) as Converter;
}

const bigIntResult = (type: ScalarType): Converter | undefined => (type === "i64" || type === "u64" ? (toBigInt as Converter) : undefined);

function mapParameter(type: ParameterType, where: string): Mapped<KoffiType> {
  if (isStructType(type)) return { native: koffiStruct(type), convert: structToKoffi(type, where) };
  switch (type) {
    case "buffer": return { native: "void *" };
    case "cstring": return { native: "const char *", convert: checkCString as Converter };
    case "callback": return { native: "uintptr_t", convert: callbackPointer as Converter };
    default: return { native: scalars[type] };
  }
}

function mapResult(type: ResultType): Mapped<KoffiType> {
  if (isStructType(type)) return { native: koffiStruct(type), convert: structFromKoffi(type) };
  switch (type) {
    case "void": return { native: "void" };
    case "cstring": return { native: "const char *" };
    case "isize": case "usize": case "ptr": return { native: scalars[type], convert: toNumber as Converter };
    default: return { native: scalars[type], convert: bigIntResult(type) };
  }
}

export const nodeBackend: FfiBackend = {
  nonblockingCalls: true,

  open(path, table: SymbolTable): BackendLibrary {
    const lib = koffi.load(path);
    const symbols: BackendLibrary["symbols"] = {};
    const async: BackendLibrary["async"] = {};
    for (const [name, d] of Object.entries(table) as [string, FunctionDefinition][]) {
      const parameters = d.parameters.map((t, i) => mapParameter(t, `${name} argument ${i}`));
      const result = mapResult(d.result);
      const fn = lib.func(d.symbol ?? name, result.native, parameters.map((p) => p.native));
      const convert = parameters.map((p) => p.convert);
      symbols[name] = withConversions(fn as never, convert, result.convert);
      if (d.nonblocking) {
        const callAsync = (...args: unknown[]) =>
          new Promise((resolve, reject) => fn.async(...args, (error: unknown, value: unknown) => (error ? reject(error) : resolve(value))));
        const then = result.convert;
        async[name] = withConversions(callAsync as never, convert, then && (((p: Promise<never>) => p.then(then)) as Converter)) as never;
      }
    }
    return { symbols, async, close: () => lib.unload() };
  },

  view(ptr, byteLength) {
    return koffi.view(ptr, byteLength);
  },

  readCString(ptr) {
    return koffi.decode.string(ptr);
  },

  createCallback(definition: CallbackDefinition, fn) {
    // koffi relays calls from other threads to the JS thread by itself: every callback is thread-safe.
    const proto = koffi.proto(
      definition.result === "void" ? "void" : scalars[definition.result],
      definition.parameters.map((t) => (t === "cstring" ? "const char *" : scalars[t])),
    );
    const adapters = definition.parameters.map((t) => (t === "ptr" || t === "isize" || t === "usize" ? (toNumber as Converter) : t === "i64" || t === "u64" ? (toBigInt as Converter) : undefined));
    const handle = koffi.register(withConversions(fn, adapters, undefined), koffi.pointer(proto));
    return { ptr: Number(handle), close: () => koffi.unregister(handle) };
  },
};
