// The runtime's own FFI, bound by hand with no gpuffi layer: the second anchor of the FFI
// benchmark. (Benchmarks may name runtimes; library code outside src/ffi/ may not.)
import { createRequire } from "node:module";
import { runtimeName } from "../src/ffi/index.ts";

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
