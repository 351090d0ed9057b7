// Opening a shared library against a symbol table, and loading one through the locator.
import { backend } from "./backend.ts";
import { dlcloseHandle, dlopenHandle, dlsymAddress } from "./dl.ts";
import { DisposedError, GpuffiError, type LocatorAttempt, LibraryNotFoundError, MissingSymbolError } from "./errors.ts";
import { type LibrarySpec, type LocateOptions, candidatePaths } from "./locator.ts";
import { NativeResource } from "./resource.ts";
import type { AsyncSymbols, NativeSymbols, Pointer, SymbolTable } from "./types.ts";

/** The file could be read but not used: the dynamic linker refused it. */
export class LibraryLoadError extends GpuffiError {
  override name = "LibraryLoadError";
  constructor(
    readonly path: string,
    readonly linkerMessage: string,
  ) {
    super("ERR_LIBRARY_LOAD", `the dynamic linker could not load ${path}: ${linkerMessage}`);
  }
}

/**
 * A shared library bound to a symbol table. Libraries are not closed when garbage-collected
 * (C may still run their code through callbacks or other libraries): dispose one explicitly,
 * and every symbol of it throws from then on instead of jumping into unmapped code.
 */
export class NativeLibrary<T extends SymbolTable> extends NativeResource {
  /** The table's functions, typed from the table. Optional symbols the file lacks are `undefined`. */
  readonly symbols: NativeSymbols<T>;
  /** Promise-returning variants of the `nonblocking` entries (see {@link FfiCapabilities.nonblockingCalls}). */
  readonly async: AsyncSymbols<T>;
  readonly #addresses: ReadonlyMap<string, Pointer>;

  constructor(
    /** A human name for messages, e.g. `libcudart`. */
    readonly name: string,
    /** The file that was opened. */
    readonly path: string,
    table: T,
  ) {
    const opened = dlopenHandle(path);
    if ("error" in opened) throw new LibraryLoadError(path, opened.error);
    const addresses = new Map<string, Pointer>();
    const missing: string[] = [];
    for (const [key, definition] of Object.entries(table)) {
      const address = dlsymAddress(opened.handle, definition.symbol ?? key);
      if (address !== 0) addresses.set(key, address);
      else if (!definition.optional) missing.push(definition.symbol ?? key);
    }
    if (missing.length > 0) {
      dlcloseHandle(opened.handle);
      throw new MissingSymbolError(name, path, missing);
    }
    const present = Object.fromEntries(Object.entries(table).filter(([key]) => addresses.has(key)));
    let lib;
    try {
      lib = backend.open(path, present, addresses);
    } catch (error) {
      dlcloseHandle(opened.handle);
      throw new LibraryLoadError(path, error instanceof Error ? error.message : String(error));
    }
    const symbols = { ...lib.symbols };
    const async = { ...lib.async };
    const handle = opened.handle;
    super(
      `library ${name}`,
      () => {
        const fail = () => {
          throw new DisposedError(`library ${name}`);
        };
        for (const key of Object.keys(symbols)) symbols[key] = fail;
        for (const key of Object.keys(async)) async[key] = fail as never;
        lib.close();
        dlcloseHandle(handle);
      },
      false,
    );
    this.symbols = symbols as NativeSymbols<T>;
    this.async = async as AsyncSymbols<T>;
    this.#addresses = addresses;
  }

  /** Whether the file exports the table entry `key` (optional symbols may be absent). */
  has(key: keyof T & string): boolean {
    return this.#addresses.has(key);
  }

  /** The address of a table entry's symbol, e.g. to hand a C function pointer to another library. */
  address(key: keyof T & string): Pointer {
    this.assertLive();
    const address = this.#addresses.get(key);
    if (address === undefined) throw new MissingSymbolError(this.name, this.path, [key]);
    return address;
  }
}

/** Opens the library at `path` (a file path, or a bare soname for the linker's own search). */
export function openLibrary<T extends SymbolTable>(name: string, path: string, table: T): NativeLibrary<T> {
  return new NativeLibrary(name, path, table);
}

/**
 * Finds a library with the locator and opens the first candidate that loads and has every
 * required symbol. Throws {@link LibraryNotFoundError} listing every candidate and why it was
 * rejected.
 */
export function loadLibrary<T extends SymbolTable>(spec: LibrarySpec, table: T, options: LocateOptions = {}): NativeLibrary<T> {
  const attempts: LocatorAttempt[] = [];
  for (const candidate of candidatePaths(spec, options)) {
    if (candidate.rejected) {
      attempts.push(candidate as LocatorAttempt);
      continue;
    }
    try {
      return new NativeLibrary(spec.name, candidate.path, table);
    } catch (error) {
      if (!(error instanceof LibraryLoadError || error instanceof MissingSymbolError)) throw error;
      const reason = error instanceof LibraryLoadError ? `dlopen failed: ${error.linkerMessage}` : `missing symbols: ${error.symbols.join(", ")}`;
      attempts.push({ path: candidate.path, source: candidate.source, rejected: reason });
      // An explicit choice that fails is final: falling back silently would load a library the user did not ask for.
      if (candidate.explicit) break;
    }
  }
  throw new LibraryNotFoundError(spec.name, attempts, spec.hint);
}
