// What the ABI check needs to know about one C library: the headers that declare it, the gpuffi
// symbol tables and struct layouts that bind it, and the constants the bindings hard-code.
// scripts/abi/tables.ts lists every library in these terms; scripts/abi/checker.ts checks any
// such description against the headers with the C compiler.
import type { StructType, SymbolTable } from "../../src/ffi/types.ts";

/** One `defineSymbols` table. */
export interface AbiTable {
  /** How the report names it, e.g. `llamaSymbols`. */
  readonly name: string;
  readonly symbols: SymbolTable;
  /** A preprocessor condition: the table applies only to headers where it holds (`CUDART_VERSION >= 13000`). */
  readonly guard?: string;
}

/** One `defineStruct` layout and the C type it describes. */
export interface AbiStruct {
  readonly type: StructType;
  /** The C spelling of the type: `struct llama_batch`, `CUmemLocation`. */
  readonly c: string;
  readonly guard?: string;
}

/** A value the bindings hard-code, and the C expression (an enumerator, a macro) it must equal. */
export interface AbiConstant {
  /** Where it lives in JS, e.g. `SplitMode.row`. */
  readonly js: string;
  readonly value: number;
  readonly c: string;
}

/**
 * A deliberate difference of class (not of size) between a table entry and its declaration,
 * e.g. libc's `void *mmap(...)` bound as `isize` so that MAP_FAILED reads -1.
 */
export interface AbiException {
  /** The table key. */
  readonly symbol: string;
  /** `result`, or a parameter's position counted from 1. */
  readonly position: "result" | number;
  readonly reason: string;
}

/** Include directories for a library's headers, or the one-line reason they are not here. */
export type IncludeDirs = { readonly dirs: readonly string[]; readonly label: string } | { readonly skip: string };

export interface AbiLibrary {
  /** How the report names it: `libllama`, `libcudart`. */
  readonly name: string;
  /** Macros defined before the headers, e.g. `_GNU_SOURCE`. */
  readonly defines?: readonly string[];
  /** `#include` operands: `llama.h` (searched in the include dirs) or `<dlfcn.h>` (the system's). */
  readonly headers: readonly string[];
  /** Finds (or fetches) the headers; called once per run. */
  readonly includeDirs: () => IncludeDirs;
  /** An integer C expression reported beside the counts, e.g. `CUDART_VERSION`. */
  readonly version?: string;
  readonly tables: readonly AbiTable[];
  readonly structs?: readonly AbiStruct[];
  readonly constants?: readonly AbiConstant[];
  /**
   * Integer typedefs that hold addresses and that the tables bind as `ptr` (CUDA's `CUdeviceptr`
   * is an `unsigned long long`): an 8-byte unsigned integer of one of these names matches `ptr`.
   */
  readonly addressTypes?: readonly string[];
  readonly exceptions?: readonly AbiException[];
}

/**
 * The constants of one JS enum object, each paired with its C name; the names object must have
 * exactly the keys of the values object, so a value added in JS without its C name fails tsc.
 */
export function constantsOf<const T extends Readonly<Record<string, number>>>(
  where: string,
  values: T,
  names: { readonly [K in keyof T]: string },
): AbiConstant[] {
  return Object.keys(values).map((key) => ({ js: where ? `${where}.${key}` : key, value: values[key]!, c: names[key]! }));
}
