// Reading and writing native memory from JS, out-parameters, and host memory that C can keep
// pointers to. Every entry point checks what JS can check (NULL, negative or fractional sizes,
// out-of-range offsets) before touching native memory.
import { backend } from "./backend.ts";
import { FfiArgumentError } from "./errors.ts";
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

/**
 * An out-parameter: pass `.buffer` for a `T *` argument typed `buffer`, read `.value` after the
 * call. `Out.pointer()` is for `void **` and `Out.size()` for `size_t *`.
 */
export class Out<T extends number | bigint> {
  private constructor(
    /** The memory C writes into. */
    readonly buffer: Int32Array | Uint32Array | BigInt64Array | BigUint64Array | Float32Array | Float64Array | Uint8Array,
    private readonly read: (buffer: never) => T,
  ) {}
  get value(): T {
    return this.read(this.buffer as never);
  }
  static i32(): Out<number> { return new Out(new Int32Array(1), (b: Int32Array) => b[0]!); }
  static u32(): Out<number> { return new Out(new Uint32Array(1), (b: Uint32Array) => b[0]!); }
  static i64(): Out<bigint> { return new Out(new BigInt64Array(1), (b: BigInt64Array) => b[0]!); }
  static u64(): Out<bigint> { return new Out(new BigUint64Array(1), (b: BigUint64Array) => b[0]!); }
  static f32(): Out<number> { return new Out(new Float32Array(1), (b: Float32Array) => b[0]!); }
  static f64(): Out<number> { return new Out(new Float64Array(1), (b: Float64Array) => b[0]!); }
  static bool(): Out<number> { return new Out(new Uint8Array(1), (b: Uint8Array) => b[0]!); }
  static pointer(): Out<Pointer> { return new Out(new BigUint64Array(1), (b: BigUint64Array) => Number(b[0]!)); }
  static size(): Out<number> { return new Out(new BigUint64Array(1), (b: BigUint64Array) => Number(b[0]!)); }
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
