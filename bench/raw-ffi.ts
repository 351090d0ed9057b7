// The runtime's own FFI, bound by hand with no gpuffi layer: the second anchor of the FFI
// benchmarks. (Benchmarks may name runtimes; library code outside src/ffi/ may not.)
import { createRequire } from "node:module";
import { HostMemory, runtimeName } from "../src/ffi/index.ts";
import { interleaved } from "./timing.ts";

type Add = (a: number, b: number) => number;

export async function rawAdd(path: string): Promise<Add> {
  if (runtimeName === "bun") {
    const { dlopen, FFIType } = await import("bun:ffi");
    return dlopen(path, { gb_add: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 } }).symbols.gb_add as Add;
  }
  if (runtimeName === "deno") {
    return Deno.dlopen(path, { gb_add: { parameters: ["i32", "i32"], result: "i32" } }).symbols.gb_add as Add;
  }
  const koffi = createRequire(import.meta.url)("koffi") as typeof import("koffi");
  return koffi.load(path).func("gb_add", "int32_t", ["int32_t", "int32_t"]) as Add;
}

/**
 * `int f(int *out)` (cudaGetDevice's shape) bound twice by the runtime's FFI: with the
 * out-parameter as a JS typed array, and as an address in C memory. `address` turns a pointer
 * into the argument the second form takes at its fastest (a bigint on Deno, whose fast calls
 * take 64-bit integers as bigints), once, outside the loop.
 */
export interface RawOutParameter {
  viaBuffer(out: Int32Array): number;
  viaAddress(address: never): number;
  address(ptr: number): never;
}

export async function rawOutParameter(path: string, symbol: string): Promise<RawOutParameter> {
  if (runtimeName === "bun") {
    const { dlopen, FFIType } = await import("bun:ffi");
    const fn = dlopen(path, { [symbol]: { args: [FFIType.ptr], returns: FFIType.i32 } }).symbols[symbol] as (out: Int32Array | number) => number;
    return { viaBuffer: fn, viaAddress: fn as never, address: (ptr) => ptr as never };
  }
  if (runtimeName === "deno") {
    const { symbols } = Deno.dlopen(path, {
      viaBuffer: { name: symbol, parameters: ["buffer"], result: "i32" },
      viaAddress: { name: symbol, parameters: ["usize"], result: "i32" },
    });
    return { viaBuffer: symbols.viaBuffer as never, viaAddress: symbols.viaAddress as never, address: (ptr) => BigInt(ptr) as never };
  }
  const lib = createRequire(import.meta.url)("koffi").load(path) as import("koffi").LibraryHandle;
  return { viaBuffer: lib.func(symbol, "int32_t", ["void *"]) as never, viaAddress: lib.func(symbol, "int32_t", ["uintptr_t"]) as never, address: (ptr) => ptr as never };
}

/**
 * ns per call of `gpuffi` (a high-level call of the same C function) and of the bare call with
 * its out-parameter as a typed array and as an address, interleaved in one process.
 */
export function timeOutParameter(raw: RawOutParameter, gpuffi: () => number): { gpuffi: number; rawBuffer: number; rawAddress: number } {
  const out = new Int32Array(1);
  using slot = HostMemory.alloc(8);
  const view = new Int32Array(slot.bytes().buffer, 0, 1);
  const address = raw.address(slot.ptr);
  const ns = interleaved({
    gpuffi,
    rawBuffer: () => (raw.viaBuffer(out), out[0]!),
    rawAddress: () => (raw.viaAddress(address), view[0]!),
  }, 1_000_000, 25);
  return { gpuffi: ns.gpuffi!, rawBuffer: ns.rawBuffer!, rawAddress: ns.rawAddress! };
}

/**
 * `cuLaunchKernel` bound by the runtime's FFI with every handle as an integer: the bare launch
 * of a kernel without parameters (grid 1, block 1) on `stream`, the floor under Kernel.launch.
 */
export async function rawEmptyLaunch(path: string, fn: number, stream: number): Promise<() => number> {
  const types = ["usize", "u32", "u32", "u32", "u32", "u32", "u32", "u32", "usize", "usize", "usize"] as const;
  if (runtimeName === "bun") {
    const { dlopen } = await import("bun:ffi");
    const launch = dlopen(path, { cuLaunchKernel: { args: types.map((t) => (t === "usize" ? "ptr" : t)) as never, returns: "i32" } }).symbols.cuLaunchKernel as unknown as (...a: number[]) => number;
    return () => launch(fn, 1, 1, 1, 1, 1, 1, 0, stream, 0, 0);
  }
  if (runtimeName === "deno") {
    const launch = Deno.dlopen(path, { cuLaunchKernel: { parameters: [...types], result: "i32" } }).symbols.cuLaunchKernel as (...a: (number | bigint)[]) => number;
    // Deno's fast calls take 64-bit integers as bigints: made once, outside the loop.
    const [f, s] = [BigInt(fn), BigInt(stream)];
    return () => launch(f, 1, 1, 1, 1, 1, 1, 0, s, 0n, 0n);
  }
  const lib = createRequire(import.meta.url)("koffi").load(path) as import("koffi").LibraryHandle;
  const launch = lib.func("cuLaunchKernel", "int", ["uintptr_t", "uint32_t", "uint32_t", "uint32_t", "uint32_t", "uint32_t", "uint32_t", "uint32_t", "uintptr_t", "uintptr_t", "uintptr_t"]) as (...a: number[]) => number;
  return () => launch(fn, 1, 1, 1, 1, 1, 1, 0, stream, 0, 0);
}
