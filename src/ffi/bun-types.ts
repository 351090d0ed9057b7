// How gpuffi's types travel through bun:ffi; shared by the backend and the struct shim.
import { CString, FFIType } from "bun:ffi";
import { type Converter, type Mapped, callbackPointer, encodeCString, toNumber } from "./convert.ts";
import type { ParameterType, ResultType, ScalarType } from "./types.ts";

export const scalars: Record<ScalarType, FFIType> = {
  bool: FFIType.bool, i8: FFIType.i8, u8: FFIType.u8, i16: FFIType.i16, u16: FFIType.u16,
  i32: FFIType.i32, u32: FFIType.u32, f32: FFIType.f32, f64: FFIType.f64,
  i64: FFIType.i64, u64: FFIType.u64,
  // The *_fast types return a number whenever it fits 53 bits: sizes and addresses always do.
  isize: FFIType.i64_fast, usize: FFIType.u64_fast, ptr: FFIType.ptr,
};

export const readCString = (ptr: number): string => new CString(ptr).toString();

export function mapParameter(type: Exclude<ParameterType, object>): Mapped<FFIType> {
  switch (type) {
    case "buffer": return { native: FFIType.ptr };
    case "cstring": return { native: FFIType.ptr, convert: encodeCString as never };
    case "callback": return { native: FFIType.ptr, convert: callbackPointer as never };
    default: return { native: scalars[type] };
  }
}

export function mapResult(type: Exclude<ResultType, object>): Mapped<FFIType> {
  switch (type) {
    case "void": return { native: FFIType.void };
    // A pointer result as u64_fast is a plain number, 0 for NULL (FFIType.ptr would give null).
    case "ptr": return { native: FFIType.u64_fast };
    // Past 2^53 u64_fast gives a bigint: sizes are numbers in gpuffi, so make one (as Deno and koffi do).
    case "isize": case "usize": return { native: scalars[type], convert: toNumber as Converter };
    case "cstring": return { native: FFIType.u64_fast, convert: ((p: number) => (p === 0 ? null : readCString(p))) as never };
    default: return { native: scalars[type] };
  }
}
