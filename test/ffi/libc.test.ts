// The symbol table against the C library every Linux machine has.
import assert from "node:assert/strict";
import fc from "fast-check";
import { test } from "../harness.ts";
import { DisposedError, FfiArgumentError, HostMemory, NativeOut, Out, type OutKind, defineStruct, defineSymbols, openLibrary } from "../../src/ffi/index.ts";

const div_t = defineStruct("div_t", { quot: "i32", rem: "i32" });
const lldiv_t = defineStruct("lldiv_t", { quot: "i64", rem: "i64" });

const libcSymbols = defineSymbols({
  // int abs(int j);
  abs: { parameters: ["i32"], result: "i32" },
  // long long llabs(long long j);
  llabs: { parameters: ["i64"], result: "i64" },
  // div_t div(int numerator, int denominator);
  div: { parameters: ["i32", "i32"], result: div_t },
  // lldiv_t lldiv(long long numerator, long long denominator);
  lldiv: { parameters: ["i64", "i64"], result: lldiv_t },
  // size_t strlen(const char *s);
  strlen: { parameters: ["cstring"], result: "usize" },
  // char *getenv(const char *name);
  getenv: { parameters: ["cstring"], result: "cstring" },
  // int snprintf(char *str, size_t size, const char *format, ...);  (fixed to one int argument)
  snprintf: { parameters: ["buffer", "usize", "cstring", "i32"], result: "i32" },
  // void *memcpy(void *dest, const void *src, size_t n);  — from JS memory into C memory
  memcpyToNative: { symbol: "memcpy", parameters: ["ptr", "buffer", "usize"], result: "ptr" },
  // void *memchr(const void *s, int c, size_t n);
  memchr: { parameters: ["ptr", "i32", "usize"], result: "ptr" },
  // int this_symbol_does_not_exist(void);
  this_symbol_does_not_exist: { parameters: [], result: "i32", optional: true },
});

const libmSymbols = defineSymbols({
  // double cos(double x);
  cos: { parameters: ["f64"], result: "f64" },
  // float sqrtf(float x);
  sqrtf: { parameters: ["f32"], result: "f32" },
});

const libc = openLibrary("libc", "libc.so.6", libcSymbols);
const libm = openLibrary("libm", "libm.so.6", libmSymbols);

test("integers of 32 and 64 bits", () => {
  fc.assert(fc.property(fc.integer({ min: -(2 ** 31) + 1, max: 2 ** 31 - 1 }), (n) => libc.symbols.abs(n) === Math.abs(n)));
  fc.assert(fc.property(fc.bigInt({ min: -(2n ** 63n) + 1n, max: 2n ** 63n - 1n }), (n) => libc.symbols.llabs(n) === (n < 0n ? -n : n)));
  assert.equal(typeof libc.symbols.llabs(-5), "bigint");
});

test("floats of 32 and 64 bits", () => {
  fc.assert(fc.property(fc.double({ min: -1e6, max: 1e6, noNaN: true }), (x) => libm.symbols.cos(x) === Math.cos(x) || Math.abs(libm.symbols.cos(x) - Math.cos(x)) < 1e-15));
  fc.assert(fc.property(fc.float({ min: 0, max: Math.fround(1e30), noNaN: true }), (x) => libm.symbols.sqrtf(x) === Math.fround(Math.sqrt(Math.fround(x)))));
});

test("structs returned by value", () => {
  fc.assert(
    fc.property(fc.integer({ min: -1e9, max: 1e9 }), fc.integer({ min: 1, max: 1e6 }), (a, b) => {
      const r = libc.symbols.div(a, b);
      return r.quot === Math.trunc(a / b) && r.rem === a % b;
    }),
  );
  const big = libc.symbols.lldiv(-(2n ** 62n) - 7n, 1000n);
  assert.deepEqual(big, { quot: (-(2n ** 62n) - 7n) / 1000n, rem: (-(2n ** 62n) - 7n) % 1000n });
});

test("C strings in and out, UTF-8 exact", () => {
  fc.assert(fc.property(fc.string({ unit: "grapheme" }).filter((s) => !s.includes("\0")), (s) => libc.symbols.strlen(s) === new TextEncoder().encode(s).length));
  assert.equal(libc.symbols.getenv("GPUFFI_SURELY_UNSET_VARIABLE"), null);
  const out = new Uint8Array(32);
  const n = libc.symbols.snprintf(out, out.length, "n=%d ü", 42);
  assert.equal(new TextDecoder().decode(out.subarray(0, n)), "n=42 ü");
});

test("a C string with a NUL inside is refused before the call", () => {
  assert.throws(() => libc.symbols.strlen("ab\0cd"), FfiArgumentError);
});

test("optional symbols that the library lacks are undefined", () => {
  assert.equal(libc.symbols.this_symbol_does_not_exist, undefined);
  assert.equal(libc.has("this_symbol_does_not_exist"), false);
  assert.ok(libc.address("strlen") > 0);
});

test("out-parameters", () => {
  const n = Out.i32();
  assert.equal(n.value, 0);
  n.buffer[0] = 7;
  assert.equal(n.value, 7);
  const p = Out.pointer();
  (p.buffer as BigUint64Array)[0] = 0x7fff_1234_5678n;
  assert.equal(p.value, 0x7fff_1234_5678);
});

test("a table of struct-by-value functions only", () => {
  using structsOnly = openLibrary("libc", "libc.so.6", defineSymbols({ div: { parameters: ["i32", "i32"], result: div_t } }));
  assert.deepEqual(structsOnly.symbols.div(-7, 2), { quot: -3, rem: -1 });
});

test("one C symbol under two keys with two signatures", () => {
  using aliased = openLibrary("libc", "libc.so.6", defineSymbols({
    // void *memchr(const void *s, int c, size_t n);  — once over JS memory, once over a native pointer
    memchrBuffer: { symbol: "memchr", parameters: ["buffer", "i32", "usize"], result: "ptr" },
    memchrPointer: { symbol: "memchr", parameters: ["ptr", "i32", "usize"], result: "ptr" },
  }));
  const found = aliased.symbols.memchrBuffer(new Uint8Array([1, 2, 3]), 3, 3);
  assert.ok(found > 0);
  assert.equal(aliased.symbols.memchrPointer(found, 3, 1), found);
  assert.equal(aliased.address("memchrBuffer"), aliased.address("memchrPointer"));
});

test("64-bit arguments given as numbers or bigints, the same one repeated or not (Deno converts numbers, remembering the last)", () => {
  const { llabs } = libc.symbols;
  for (const n of [-5, -5, 5n, -5, -7, -(2 ** 53) + 1, -7n, -7, 0, 0n, 0]) assert.equal(llabs(n), BigInt(Math.abs(Number(n))));
  using memory = HostMemory.from(new Uint8Array([9, 8, 7, 6, 5]));
  const { memchr } = libc.symbols;
  for (const [byte, at] of [[7, 2], [7, 2], [5, 4], [9, 0], [1, -1]] as const) assert.equal(memchr(memory.ptr, byte, 5), at < 0 ? 0 : memory.ptr + at);
  for (let offset = 0; offset < 4; offset++) assert.equal(memchr(memory.ptr + offset, 6, 5 - offset), memory.ptr + 3);
});

test("native out-parameters: C writes at .ptr, .value reads it as its kind; disposed, it throws", () => {
  const cases: [OutKind, ArrayBufferView, number | bigint][] = [
    ["i32", new Int32Array([-7]), -7],
    ["u32", new Uint32Array([4_000_000_000]), 4_000_000_000],
    ["i64", new BigInt64Array([-(2n ** 60n)]), -(2n ** 60n)],
    ["u64", new BigUint64Array([2n ** 63n + 1n]), 2n ** 63n + 1n],
    ["f32", new Float32Array([1.5]), 1.5],
    ["f64", new Float64Array([Math.PI]), Math.PI],
    ["bool", new Uint8Array([1]), 1],
    ["pointer", new BigUint64Array([0x7fff_1234_5678n]), 0x7fff_1234_5678],
    ["size", new BigUint64Array([2n ** 40n]), 2 ** 40],
  ];
  for (const [kind, bytes, expected] of cases) {
    const out = NativeOut.alloc(kind);
    assert.equal(out.value, kind === "i64" || kind === "u64" ? 0n : 0, kind);
    libc.symbols.memcpyToNative(out.ptr, bytes, bytes.byteLength);
    assert.equal(out.value, expected, kind);
    out.dispose();
    assert.throws(() => out.value, DisposedError);
  }
  assert.throws(() => NativeOut.alloc("i16" as OutKind), FfiArgumentError);
});
