// Reading and writing native memory from JS, out-parameters, and host memory that C can keep
// pointers to. Every entry point checks what JS can check (NULL, negative or fractional sizes,
// out-of-range offsets) before touching native memory.
import { backend } from "./backend.ts";
import { DisposedError, FfiArgumentError } from "./errors.ts";
import { openLibrary } from "./library.ts";
import { NativeResource } from "./resource.ts";
import { decodeStruct, writeStruct } from "./struct-codec.ts";
import { type Pointer, type StructFields, type StructInit, type StructType, type StructValue, defineSymbols } from "./types.ts";

function checkAddress(ptr: Pointer, what: string): void {
  if (typeof ptr !== "number" || !Number.isSafeInteger(ptr) || ptr <= 0) {
    throw new FfiArgumentError(`${what}: expected a non-NULL pointer (a positive integer), got ${String(ptr)}`);
  }
}

function checkLength(byteLength: number, what: string): void {
  if (typeof byteLength !== "number" || !Number.isSafeInteger(byteLength) || byteLength < 0) {
    throw new FfiArgumentError(`${what}: expected a byte length (a non-negative integer), got ${String(byteLength)}`);
  }
}

/**
 * A zero-copy view of native memory (Bun `toArrayBuffer`, Deno `getArrayBuffer`, koffi `view`).
 * The view does not keep the memory alive: it is valid only while the owner has not freed it.
 */
export function nativeView(ptr: Pointer, byteLength: number): ArrayBuffer {
  checkLength(byteLength, "nativeView");
  if (byteLength === 0) return new ArrayBuffer(0);
  checkAddress(ptr, "nativeView");
  return backend.view(ptr, byteLength);
}

/** A copy of `byteLength` bytes of native memory, safe to keep after the memory is freed. */
export function copyFromNative(ptr: Pointer, byteLength: number): Uint8Array {
  return new Uint8Array(nativeView(ptr, byteLength).slice(0));
}

/** Copies `bytes` into native memory at `ptr`. */
export function copyToNative(ptr: Pointer, bytes: ArrayBufferView): void {
  const source = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  new Uint8Array(nativeView(ptr, source.byteLength)).set(source);
}

/** Reads the NUL-terminated UTF-8 string at `ptr`; NULL gives `null`. */
export function readCString(ptr: Pointer): string | null {
  if (ptr === 0) return null;
  checkAddress(ptr, "readCString");
  return backend.readCString(ptr);
}

/** Reads a struct that C laid out at `ptr`. */
export function readStruct<F extends StructFields>(type: StructType<F>, ptr: Pointer): StructValue<F> {
  return decodeStruct(type, new Uint8Array(nativeView(ptr, type.size)));
}

/** Writes a struct (fields left out are zero) into native memory at `ptr`. */
export function writeStructAt<F extends StructFields>(type: StructType<F>, ptr: Pointer, init: StructInit<F>): void {
  writeStruct(new Uint8Array(nativeView(ptr, type.size)), 0, type, init);
}

/** How each kind of out-parameter is stored (one element of a typed array) and read. */
const outKinds = {
  i32: { array: Int32Array, read: (b: Int32Array): number => b[0]! },
  u32: { array: Uint32Array, read: (b: Uint32Array): number => b[0]! },
  i64: { array: BigInt64Array, read: (b: BigInt64Array): bigint => b[0]! },
  u64: { array: BigUint64Array, read: (b: BigUint64Array): bigint => b[0]! },
  f32: { array: Float32Array, read: (b: Float32Array): number => b[0]! },
  f64: { array: Float64Array, read: (b: Float64Array): number => b[0]! },
  bool: { array: Uint8Array, read: (b: Uint8Array): number => b[0]! },
  // void ** and size_t *: numbers, as gpuffi's pointers and sizes are.
  pointer: { array: BigUint64Array, read: (b: BigUint64Array): number => Number(b[0]!) },
  size: { array: BigUint64Array, read: (b: BigUint64Array): number => Number(b[0]!) },
} as const;

/** The kinds of out-parameter: `pointer` is `void **`, `size` is `size_t *`. */
export type OutKind = keyof typeof outKinds;
/** What an out-parameter of that kind reads as. */
export type OutValue<K extends OutKind> = ReturnType<(typeof outKinds)[K]["read"]>;
type OutArray = InstanceType<(typeof outKinds)[OutKind]["array"]>;

/**
 * An out-parameter: pass `.buffer` for a `T *` argument typed `buffer`, read `.value` after the
 * call. `Out.pointer()` is for `void **` and `Out.size()` for `size_t *`. For a call on a hot
 * path, {@link NativeOut} is cheaper to pass.
 */
export class Out<T extends number | bigint> {
  private constructor(
    /** The memory C writes into. */
    readonly buffer: OutArray,
    private readonly read: (buffer: never) => T,
  ) {}
  get value(): T {
    return this.read(this.buffer as never);
  }
  static #of<K extends OutKind>(kind: K): Out<OutValue<K>> {
    const { array, read } = outKinds[kind];
    return new Out(new array(1), read as unknown as (buffer: never) => OutValue<K>);
  }
  static i32(): Out<number> { return Out.#of("i32"); }
  static u32(): Out<number> { return Out.#of("u32"); }
  static i64(): Out<bigint> { return Out.#of("i64"); }
  static u64(): Out<bigint> { return Out.#of("u64"); }
  static f32(): Out<number> { return Out.#of("f32"); }
  static f64(): Out<number> { return Out.#of("f64"); }
  static bool(): Out<number> { return Out.#of("bool"); }
  static pointer(): Out<Pointer> { return Out.#of("pointer"); }
  static size(): Out<number> { return Out.#of("size"); }
}

/**
 * An out-parameter in C memory, for calls on hot paths: bind the parameter as `ptr` (a second
 * table entry with `symbol:` keeps the `buffer` form too), pass `.ptr`, read `.value`. A call
 * whose arguments are all numbers takes each runtime's fast path, where a typed array does not:
 * koffi's fast call excludes pointer-typed parameters, and Deno's takes a typed array more
 * slowly than an address (a bare one-argument call on the 2-core CI box: Node 31 ns instead of
 * 46, Deno 12 instead of 18, Bun the same; bench/results/hot-paths-cpu.md). Allocate it once and reuse it; dispose frees it.
 */
export class NativeOut<T extends number | bigint> implements Disposable {
  /** The address C writes to. */
  readonly ptr: Pointer;
  readonly #memory: HostMemory;
  readonly #array: OutArray;
  readonly #read: (array: never) => T;

  private constructor(kind: OutKind) {
    const { array, read } = outKinds[kind];
    this.#memory = HostMemory.alloc(8);
    this.ptr = this.#memory.ptr;
    this.#array = new array(nativeView(this.ptr, 8), 0, 1);
    this.#read = read as unknown as (array: never) => T;
  }

  static alloc<K extends OutKind>(kind: K): NativeOut<OutValue<K>> {
    if (!Object.hasOwn(outKinds, kind)) throw new FfiArgumentError(`NativeOut.alloc: unknown kind ${String(kind)}; known: ${Object.keys(outKinds).join(", ")}`);
    return new NativeOut(kind);
  }

  /** What C wrote last. */
  get value(): T {
    if (this.#memory.disposed) throw new DisposedError("NativeOut");
    return this.#read(this.#array as never);
  }

  dispose(): void {
    this.#memory.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

// <stdlib.h>
export const libcMemory = defineSymbols({
  // void *calloc(size_t nmemb, size_t size);
  calloc: { parameters: ["usize", "usize"], result: "ptr" },
  // void free(void *ptr);
  free: { parameters: ["ptr"], result: "void" },
});
let libc: ReturnType<typeof openLibrary<typeof libcMemory>> | undefined;

/**
 * Zeroed memory from the C heap, for data that C keeps a pointer to beyond one call (arrays that
 * a struct points at, strings a library stores). JS typed arrays cannot serve: the garbage
 * collector may move or free them. Freed on dispose, or by the finalizer if leaked.
 */
export class HostMemory extends NativeResource {
  private constructor(
    readonly ptr: Pointer,
    readonly byteLength: number,
  ) {
    super("HostMemory", () => libc!.symbols.free(ptr));
  }

  static alloc(byteLength: number): HostMemory {
    checkLength(byteLength, "HostMemory.alloc");
    libc ??= openLibrary("libc", "libc.so.6", libcMemory);
    const ptr = libc.symbols.calloc(Math.max(byteLength, 1), 1);
    if (ptr === 0) throw new FfiArgumentError(`HostMemory.alloc: calloc could not allocate ${byteLength} bytes`);
    return new HostMemory(ptr, byteLength);
  }

  /** Copies `data` into new host memory (for example a Float32Array that a struct will point at). */
  static from(data: ArrayBufferView): HostMemory {
    const memory = HostMemory.alloc(data.byteLength);
    if (data.byteLength > 0) copyToNative(memory.ptr, data);
    return memory;
  }

  /** A zero-copy byte view; valid until dispose. */
  bytes(): Uint8Array {
    this.assertLive();
    return new Uint8Array(nativeView(this.ptr, this.byteLength));
  }
}
