// Deno.dlopen backend. Deno passes structs by value natively (as bytes) and runs `nonblocking`
// symbols on a thread of its own; pointers travel as `usize` so that gpuffi's numbers need no
// pointer objects, and 64-bit results (bigint here) become numbers where gpuffi promises one.
import type { BackendLibrary, FfiBackend } from "./backend.ts";
import { type Converter, type Mapped, callbackPointer, encodeCString, toNumber, withConversions } from "./convert.ts";
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

type NativeType = Deno.NativeType;
type NativeResult = Deno.NativeResultType;

const scalars: Record<ScalarType, Deno.NativeType> = {
  bool: "bool", i8: "i8", u8: "u8", i16: "i16", u16: "u16", i32: "i32", u32: "u32",
  i64: "i64", u64: "u64", isize: "isize", usize: "usize", f32: "f32", f64: "f64", ptr: "usize",
};

const pointerObject = (ptr: number) => Deno.UnsafePointer.create(BigInt(ptr));
const readCString = (ptr: number): string => Deno.UnsafePointerView.getCString(pointerObject(ptr)!);

/** Deno describes a struct by its flattened field types; arrays count as repeated fields. */
function structFields(type: StructType): NativeType[] {
  return type.layout.flatMap((f) => fieldTypes(f.type));
}
function fieldTypes(type: FieldType): NativeType[] {
  if (isStructType(type)) return [{ struct: structFields(type) }];
  if (isArrayField(type)) return Array.from({ length: type.length }, () => scalars[type.array]);
  return [scalars[type]];
}

/**
 * Deno's fast call takes a 64-bit integer argument as a bigint: a number there sends the whole
 * call down its slow path (100–270 ns instead of 17 for a one-pointer call on the 2-core CI box;
 * bench/results/hot-paths-cpu-before-after.md). Pointers are numbers in gpuffi, so each 64-bit
 * parameter converts, remembering its last value: a loop passing the same context or scratch
 * pointer pays a comparison, not a BigInt allocation. Values that are not safe integers pass
 * unchanged, for Deno's own error.
 */
function toBigIntArgument(): Converter {
  let lastNumber = 0;
  let lastBigInt = 0n;
  return ((value: number | bigint) => {
    if (value === lastNumber) return lastBigInt;
    if (typeof value !== "number" || !Number.isSafeInteger(value)) return value;
    lastBigInt = BigInt(value);
    lastNumber = value;
    return lastBigInt;
  }) as Converter;
}

const wide = new Set<ScalarType>(["i64", "u64", "isize", "usize", "ptr"]);

function mapParameter(type: ParameterType, where: string): Mapped<NativeType> {
  if (isStructType(type)) return { native: { struct: structFields(type) }, convert: ((v: never) => encodeStruct(type, v, where)) as Converter };
  switch (type) {
    case "buffer": return { native: "buffer" };
    case "cstring": return { native: "buffer", convert: encodeCString as Converter };
    case "callback": {
      const toBigInt = toBigIntArgument();
      return { native: "usize", convert: ((v: never) => toBigInt(callbackPointer(v) as never)) as Converter };
    }
    default: return { native: scalars[type], convert: wide.has(type) ? toBigIntArgument() : undefined };
  }
}

function mapResult(type: ResultType): Mapped<NativeResult> {
  if (isStructType(type)) return { native: { struct: structFields(type) }, convert: ((bytes: Uint8Array) => decodeStruct(type, bytes)) as Converter };
  switch (type) {
    case "void": return { native: "void" };
    case "cstring": return { native: "pointer", convert: ((p: Deno.PointerValue) => (p === null ? null : Deno.UnsafePointerView.getCString(p))) as Converter };
    case "ptr": case "isize": case "usize": return { native: scalars[type], convert: toNumber as Converter };
    default: return { native: scalars[type] };
  }
}

function compile(name: string, definition: FunctionDefinition) {
  const parameters = definition.parameters.map((t, i) => mapParameter(t, `${name} argument ${i}`));
  const result = mapResult(definition.result);
  const spec = { name: definition.symbol ?? name, parameters: parameters.map((p) => p.native), result: result.native };
  return { spec, convert: parameters.map((p) => p.convert), result: result.convert };
}

export const denoBackend: FfiBackend = {
  nonblockingCalls: true,

  open(path, table: SymbolTable): BackendLibrary {
    const compiled = Object.entries(table).map(([name, d]) => [name, d, compile(name, d)] as const);
    const specs: Record<string, Deno.ForeignFunction> = {};
    for (const [name, d, c] of compiled) {
      specs[name] = c.spec;
      // Deno makes a symbol either blocking or not: the async variant is a second binding.
      if (d.nonblocking) specs[`${name}$async`] = { ...c.spec, nonblocking: true };
    }
    const lib = Deno.dlopen(path, specs);
    const raw = lib.symbols as Record<string, (...args: never[]) => unknown>;
    const symbols: BackendLibrary["symbols"] = {};
    const async: BackendLibrary["async"] = {};
    for (const [name, d, c] of compiled) {
      symbols[name] = withConversions(raw[name]!, c.convert, c.result);
      if (d.nonblocking) {
        const then = c.result;
        async[name] = withConversions(raw[`${name}$async`]!, c.convert, then && (((p: Promise<never>) => p.then(then)) as Converter)) as never;
      }
    }
    return { symbols, async, close: () => lib.close() };
  },

  view(ptr, byteLength) {
    return Deno.UnsafePointerView.getArrayBuffer(pointerObject(ptr)!, byteLength);
  },

  readCString,

  createCallback(definition: CallbackDefinition, fn, threadSafe) {
    const parameters = definition.parameters.map((t) => (t === "cstring" ? "pointer" : scalars[t]));
    const result = definition.result === "void" ? "void" : scalars[definition.result];
    const adapters = definition.parameters.map((t) =>
      t === "cstring"
        ? (((p: Deno.PointerValue) => (p === null ? null : Deno.UnsafePointerView.getCString(p))) as Converter)
        : t === "ptr" || t === "isize" || t === "usize"
          ? (toNumber as Converter)
          : undefined,
    );
    const wrapped = withConversions(fn, adapters, undefined) as never;
    const def = { parameters, result } as Deno.UnsafeCallbackDefinition;
    const callback = threadSafe ? Deno.UnsafeCallback.threadSafe(def, wrapped) : new Deno.UnsafeCallback(def, wrapped);
    // A thread-safe callback keeps Deno's event loop alive until it is closed, so that calls
    // arriving from other threads are delivered: dispose it when the native side is done.
    return { ptr: toNumber(Deno.UnsafePointer.value(callback.pointer)), close: () => callback.close() };
  },
};
