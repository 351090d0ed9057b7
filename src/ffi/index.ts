// gpuffi's FFI layer: describe a C library once, load it on Bun, Deno or Node.
import { backend } from "./backend.ts";
import { type RuntimeName, runtimeName, runtimeVersion, scriptCommand } from "./runtime.ts";

export * from "./types.ts";
export * from "./errors.ts";
export { NativeResource, setLeakReporter, leakStatistics, type LeakReporter } from "./resource.ts";
export { NativeLibrary, LibraryLoadError, openLibrary, loadLibrary } from "./library.ts";
export { environmentValue, libcEnvironment, setEnvironment } from "./environment.ts";
export { libraryPathOf } from "./dl.ts";
export { type LibrarySpec, type LocateOptions, type SearchDir, type Environment, type Candidate, candidatePaths, versionedDirs, nodeModulesDirs } from "./locator.ts";
export { nativeView, copyFromNative, copyToNative, readCString, readStruct, writeStructAt, Out, NativeOut, type OutKind, type OutValue, HostMemory } from "./memory.ts";
export { MappedFile, pageSize } from "./mapped-file.ts";
export { type FileReadMethod, type FileReads, openFileReads } from "./file-reads.ts";
export { encodeStruct, decodeStruct, writeStruct } from "./struct-codec.ts";
export { NativeCallback, createCallback, type CallbackOptions } from "./callback.ts";
export { runtimeName, runtimeVersion, scriptCommand, type RuntimeName };

/** What the runtime's FFI can do; code above src/ffi/ asks this instead of the runtime's name. */
export interface FfiCapabilities {
  readonly runtime: RuntimeName;
  /** `library.async` calls run off the JS thread (Deno, Node); on Bun they are absent. */
  readonly nonblockingCalls: boolean;
  /** Structs by value go through a TinyCC-compiled shim (Bun) rather than natively. */
  readonly structShim: boolean;
  /**
   * Many file reads into native memory run at once through {@link openFileReads}: on Bun's own
   * pool, on Deno's blocking threads with a file handle per read (Deno runs one read at a time
   * per handle), and on reader threads of gpuffi's own on Node (whose libuv pool has 4 threads).
   * Before that, streamed uploads from the page cache on the H100 host went 38–40 GB/s on Bun,
   * 16 on Node and 4.7 on Deno.
   */
  readonly parallelFileReads: boolean;
}

export const capabilities: FfiCapabilities = Object.freeze({
  runtime: runtimeName,
  nonblockingCalls: backend.nonblockingCalls,
  structShim: runtimeName === "bun",
  parallelFileReads: true,
});
