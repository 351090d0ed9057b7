// The contract each runtime's FFI backend fulfils, and the one place that picks the backend.
// Everything above src/ffi/ talks to this interface and never to bun:ffi, Deno.dlopen or koffi.
import { runtimeName } from "./runtime.ts";
import type { CallbackDefinition, Pointer, SymbolTable } from "./types.ts";

/** A library opened by a backend: callable symbols, nonblocking variants, and close. */
export interface BackendLibrary {
  readonly symbols: Record<string, (...args: never[]) => unknown>;
  readonly async: Record<string, (...args: never[]) => Promise<unknown>>;
  close(): void;
}

/** A C function pointer that calls into JS. */
export interface BackendCallback {
  readonly ptr: Pointer;
  close(): void;
}

export interface FfiBackend {
  /**
   * Opens `path` and compiles every entry of `table` (all of which the library is known to
   * export). `addresses` gives each symbol's address, which backends without struct-by-value
   * support call through a shim.
   */
  open(path: string, table: SymbolTable, addresses: ReadonlyMap<string, Pointer>): BackendLibrary;
  /** A zero-copy view of `byteLength` bytes of native memory at `ptr` (non-null, length > 0). */
  view(ptr: Pointer, byteLength: number): ArrayBuffer;
  /** Reads the NUL-terminated UTF-8 string at `ptr` (non-null). */
  readCString(ptr: Pointer): string;
  /** Makes a C function pointer that calls `fn`; `threadSafe` allows calls from other threads. */
  createCallback(definition: CallbackDefinition, fn: (...args: never[]) => unknown, threadSafe: boolean): BackendCallback;
  /** Whether `nonblocking` symbols really run off the JS thread. */
  readonly nonblockingCalls: boolean;
}

// The Bun backend is imported through a variable: `bun:ffi` exists only in Bun, and a literal
// specifier would make Deno's publisher (JSR) and Node bundlers try to resolve it.
const bunBackendModule = "./bun-backend.ts";

async function loadBackend(): Promise<FfiBackend> {
  switch (runtimeName) {
    case "bun":
      return ((await import(bunBackendModule)) as typeof import("./bun-backend.ts")).bunBackend;
    case "deno":
      return (await import("./deno-backend.ts")).denoBackend;
    case "node":
      return (await import("./node-backend.ts")).nodeBackend;
  }
}

/** The backend of the runtime executing this code. */
export const backend: FfiBackend = await loadBackend();
