// Conversions shared by the three backends, and the one function that wraps a raw native
// function with them. A symbol whose types need no conversion on a runtime is exposed raw, so
// the common case (numbers and pointers in, a status code out) pays nothing above the FFI call.
import { FfiArgumentError } from "./errors.ts";
import type { CallbackHandle, Pointer } from "./types.ts";

export type Converter = (value: never) => unknown;

/** How a backend passes one of our types: its own type descriptor plus an optional conversion. */
export interface Mapped<Native> {
  readonly native: Native;
  readonly convert?: Converter;
}

const encoder = new TextEncoder();

/** Checks that a value can be a C string: a string without NUL, or `null`. */
export function checkCString(value: string | null): string | null {
  if (value === null) return null;
  if (typeof value !== "string") throw new FfiArgumentError(`expected a string or null for a C string, got ${typeof value}`);
  if (value.includes("\0")) throw new FfiArgumentError(`a C string cannot contain NUL characters: ${JSON.stringify(value.slice(0, 60))}`);
  return value;
}

/** A JS string as a NUL-terminated UTF-8 buffer; `null` stays NULL. */
export function encodeCString(value: string | null): Uint8Array | null {
  const text = checkCString(value);
  if (text === null) return null;
  const bytes = new Uint8Array(text.length * 3 + 1);
  const { written } = encoder.encodeInto(text, bytes);
  return bytes.subarray(0, written + 1);
}

/** The function pointer behind a callback argument. */
export function callbackPointer(value: CallbackHandle | Pointer | null): Pointer {
  if (value === null || value === undefined) return 0;
  if (typeof value === "number") return value;
  if (typeof value === "object" && typeof value.ptr === "number") return value.ptr;
  throw new FfiArgumentError(`expected a callback handle, a function pointer or null, got ${typeof value}`);
}

/** Pointer-sized and size_t results, which some runtimes return as bigint. */
export function toNumber(value: bigint | number | null): Pointer {
  return value === null ? 0 : Number(value);
}

/** Exact 64-bit results that some runtimes return as number when they fit. */
export function toBigInt(value: bigint | number): bigint {
  return BigInt(value);
}

/**
 * Wraps `raw` so that arguments and result pass through their converters; returns `raw`
 * itself when there is nothing to convert.
 *
 * Each wrapper is compiled for its symbol (`new Function`) with the symbol's own arity. A shared
 * `(...args) => raw(...args)` closure would cost every converted call its engine's fast path:
 * the spread call is generic, and closures made from one function literal share their type
 * feedback, so the call to `raw` inside is polymorphic across symbols and cannot be inlined. On
 * Deno that sent a one-pointer call from 13 ns to 103 ns (V8 makes a fast call only to a target it
 * knows when it compiles the caller). Where strings cannot be compiled, the shared closure serves.
 */
export function withConversions(
  raw: (...args: never[]) => unknown,
  parameters: readonly (Converter | undefined)[],
  result: Converter | undefined,
): (...args: never[]) => unknown {
  if (parameters.every((convert) => convert === undefined) && result === undefined) return raw;
  const names = parameters.map((_, i) => `a${i}`);
  const call = `raw(${parameters.map((convert, i) => (convert ? `c${i}(a${i})` : `a${i}`)).join(", ")})`;
  try {
    const make = new Function("raw", "r", ...parameters.map((_, i) => `c${i}`), `return function (${names.join(", ")}) { return ${result ? `r(${call})` : call}; };`);
    return make(raw, result, ...parameters) as (...args: never[]) => unknown;
  } catch {
    return spreadConversions(raw, parameters, result);
  }
}

function spreadConversions(
  raw: (...args: never[]) => unknown,
  parameters: readonly (Converter | undefined)[],
  result: Converter | undefined,
): (...args: never[]) => unknown {
  const converted = parameters.flatMap((convert, index) => (convert ? [[index, convert] as const] : []));
  const convertResult = result ?? ((value: never) => value);
  return (...args: never[]) => {
    for (const [index, convert] of converted) args[index] = convert(args[index]!) as never;
    return convertResult(raw(...args) as never);
  };
}
