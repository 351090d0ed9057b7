// The typed errors of the FFI layer. Every error gpuffi throws extends GpuffiError, so callers
// can tell ours from anything else with one instanceof.

/** Base class of every error gpuffi throws. `code` is stable and meant for programs. */
export class GpuffiError extends Error {
  override name = "GpuffiError";
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A native resource was used after it was disposed. */
export class DisposedError extends GpuffiError {
  override name = "DisposedError";
  constructor(what: string) {
    super("ERR_DISPOSED", `${what} was already disposed and cannot be used`);
  }
}

/** An argument JS can check failed the check, before any native call. */
export class FfiArgumentError extends GpuffiError {
  override name = "FfiArgumentError";
  constructor(message: string) {
    super("ERR_FFI_ARGUMENT", message);
  }
}

/** The runtime gpuffi runs on cannot do what was asked; the message says what and why. */
export class UnsupportedError extends GpuffiError {
  override name = "UnsupportedError";
  constructor(message: string) {
    super("ERR_UNSUPPORTED", message);
  }
}

/** One place the locator looked, and why it did not take it. */
export interface LocatorAttempt {
  readonly path: string;
  readonly source: string;
  readonly rejected: string;
}

/** No usable file was found for a shared library; the message lists every place tried. */
export class LibraryNotFoundError extends GpuffiError {
  override name = "LibraryNotFoundError";
  constructor(
    readonly library: string,
    readonly attempts: readonly LocatorAttempt[],
    readonly hint: string,
  ) {
    const tried = attempts.length === 0
      ? "  (no candidate paths: nothing was configured and no well-known place exists on this machine)"
      : attempts.map((a) => `  - ${a.path}  [${a.source}]: ${a.rejected}`).join("\n");
    super("ERR_LIBRARY_NOT_FOUND", `could not load ${library}. Tried:\n${tried}\nHow to fix: ${hint}`);
  }
}

/** A library was found and opened but lacks symbols the table requires. */
export class MissingSymbolError extends GpuffiError {
  override name = "MissingSymbolError";
  constructor(
    readonly library: string,
    readonly path: string,
    readonly symbols: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(
      "ERR_MISSING_SYMBOL",
      `${library} at ${path} lacks required symbol(s): ${symbols.join(", ")}. It is probably a different version than gpuffi expects.`,
      options,
    );
  }
}

/** A C library call that reports failure through errno (open, mmap, ...) failed. */
export class SystemCallError extends GpuffiError {
  override name = "SystemCallError";
  constructor(
    /** The C function, e.g. `mmap`. */
    readonly call: string,
    /** The errno value. */
    readonly errno: number,
    /** What the call was about, e.g. the file's path. */
    readonly subject: string,
    description: string,
  ) {
    super("ERR_SYSTEM_CALL", `${call} failed for ${subject}: ${description} (errno ${errno})`);
  }
}
