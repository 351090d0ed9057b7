// bun:ffi backend. Pointers are already numbers here; structs by value go through the C shim
// that bun-struct-shim.ts generates and TinyCC compiles (bun:ffi has no struct-by-value).
import { type FFIFunction, FFIType, JSCallback, dlopen, linkSymbols, toArrayBuffer } from "bun:ffi";
import type { BackendLibrary, FfiBackend } from "./backend.ts";
import { compileStructShim } from "./bun-struct-shim.ts";
import { mapParameter, mapResult, readCString, scalars } from "./bun-types.ts";
import { withConversions } from "./convert.ts";
import type { CallbackDefinition, FunctionDefinition, ParameterType, ResultType, SymbolTable } from "./types.ts";
import { isStructType } from "./types.ts";

function compile(definition: FunctionDefinition): { spec: FFIFunction; convert: Parameters<typeof withConversions>[1]; result: Parameters<typeof withConversions>[2] } {
  const parameters = definition.parameters.map((t) => mapParameter(t as Exclude<ParameterType, object>));
  const result = mapResult(definition.result as Exclude<ResultType, object>);
  return {
    spec: { args: parameters.map((p) => p.native), returns: result.native },
    convert: parameters.map((p) => p.convert),
    result: result.convert,
  };
}

const usesStructs = (d: FunctionDefinition) => isStructType(d.result) || d.parameters.some(isStructType);

export const bunBackend: FfiBackend = {
  nonblockingCalls: false,

  // The library is already open (library.ts holds the dlopen handle): bind each entry to the
  // address dlsym found, which also lets one C symbol appear under two keys with two signatures.
  // Only the bootstrap binding of dlopen/dlsym itself (dl.ts) comes without addresses.
  open(path, table: SymbolTable, addresses): BackendLibrary {
    const plain = Object.entries(table).filter(([, d]) => !usesStructs(d));
    const compiled = plain.map(([name, d]) => [name, compile(d)] as const);
    const specs = Object.fromEntries(compiled.map(([name, c]) => [name, addresses.size > 0 ? { ...c.spec, ptr: addresses.get(name)! as unknown as FFIFunction["ptr"] } : c.spec]));
    const lib = compiled.length === 0 ? undefined : addresses.size > 0 ? linkSymbols(specs) : dlopen(path, specs);
    const symbols: BackendLibrary["symbols"] = {};
    for (const [name, c] of compiled) {
      symbols[name] = withConversions(lib!.symbols[name] as never, c.convert, c.result);
    }
    const withStructs = Object.entries(table).filter(([, d]) => usesStructs(d));
    const shim = withStructs.length > 0 ? compileStructShim(withStructs, addresses) : undefined;
    Object.assign(symbols, shim?.symbols);
    return {
      symbols,
      async: {},
      close() {
        shim?.close();
        lib?.close();
      },
    };
  },

  view(ptr, byteLength) {
    return toArrayBuffer(ptr as never, 0, byteLength);
  },

  readCString,

  createCallback(definition: CallbackDefinition, fn, threadSafe) {
    const args = definition.parameters.map((t) => (t === "cstring" || t === "ptr" ? FFIType.ptr : scalars[t]));
    const returns = definition.result === "void" ? FFIType.void : scalars[definition.result];
    // Bun hands pointer arguments over as number or null; gpuffi's pointers are numbers, 0 = NULL.
    const adapters = definition.parameters.map((t) =>
      t === "ptr" ? (v: number | null) => v ?? 0 : t === "cstring" ? (v: number | null) => (v ? readCString(v) : null) : undefined,
    );
    const wrapped = withConversions(fn, adapters as never, undefined);
    const callback = new JSCallback(wrapped as never, { args, returns, threadsafe: threadSafe });
    return { ptr: callback.ptr as unknown as number, close: () => callback.close() };
  },
};
