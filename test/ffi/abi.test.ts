// Every scalar type and every System V struct class, through the runtime's FFI (and on Bun,
// through the TinyCC-compiled struct shim), against a library compiled by the system compiler.
import assert from "node:assert/strict";
import fc from "fast-check";
import { test } from "../harness.ts";
import { FfiArgumentError, capabilities } from "../../src/ffi/index.ts";
import { params, skipFixture as skip, testlib } from "./fixture-library.ts";

const s = () => testlib.symbols;

test("scalars of every width", () => {
  fc.assert(fc.property(fc.integer({ min: -(2 ** 30), max: 2 ** 30 }), fc.integer({ min: -(2 ** 30), max: 2 ** 30 }), (a, b) => s().gt_add_i32(a, b) === a + b));
  fc.assert(fc.property(fc.bigInt({ min: 0n, max: 2n ** 63n }), fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }), (a, b) => s().gt_add_u64(a, b) === a + b));
  fc.assert(fc.property(fc.integer({ min: -127, max: 127 }), (a) => s().gt_neg_i8(a) === -a));
  fc.assert(fc.property(fc.integer({ min: 0, max: 0xffff }), (a) => s().gt_id_u16(a) === a));
  fc.assert(fc.property(fc.float({ noNaN: true, min: Math.fround(-1e18), max: Math.fround(1e18) }), fc.float({ noNaN: true, min: Math.fround(-1e18), max: Math.fround(1e18) }), (a, b) => s().gt_mul_f32(a, b) === Math.fround(a * b)));
  assert.equal(s().gt_mix(-3, 65535, -100000, 2n ** 40n, 0.5, 0.25), -3 + 65535 - 100000 + 2 ** 40 + 0.75);
  assert.equal(s().gt_not(false), true);
  assert.equal(s().gt_not(true), false);
}, { skip });

test("pointers are numbers, NULL is 0", () => {
  assert.equal(s().gt_identity_ptr(0), 0);
  const address = 0x7ffd_dead_beef;
  assert.equal(s().gt_identity_ptr(address), address);
  assert.equal(typeof s().gt_identity_ptr(address), "number");
}, { skip });

test("strings: NULL, ASCII and UTF-8 results; NULL argument", () => {
  assert.equal(s().gt_greeting(0), null);
  assert.equal(s().gt_greeting(1), "hello");
  assert.equal(s().gt_greeting(2), "grüße, 世界");
  // size_t results are numbers: SIZE_MAX comes back as 2^64, rounded like any double past 2^53.
  assert.equal(s().gt_strlen(null), 2 ** 64);
}, { skip });

test("buffers are written in place by C", () => {
  const out = new Uint32Array(1000);
  s().gt_fill_u32(out, out.length, 7);
  assert.deepEqual(Array.from(out.subarray(0, 3)), [7, 8, 9]);
  assert.equal(out[999], 1006);
}, { skip });

test("struct of two ints (INTEGER class) in and out", () => {
  // Below 2^30 in magnitude, so that the C sum stays an int32 (signed overflow is undefined in C).
  const int30 = fc.integer({ min: 1 - 2 ** 30, max: 2 ** 30 - 1 });
  fc.assert(fc.property(int30, int30, (x, y) => {
    const p = s().gt_point_make(x, y);
    return p.x === x && p.y === y && s().gt_point_sum(p) === x + y && s().gt_point_sum({ x }) === x;
  }));
}, { skip });

test("struct of two doubles (SSE class) in and out", () => {
  fc.assert(fc.property(fc.double({ noNaN: true, min: -1e6, max: 1e6 }), fc.double({ noNaN: true, min: -1e6, max: 1e6 }), fc.double({ noNaN: true, min: -1e6, max: 1e6 }), (a, b, c) => {
    const r = s().gt_complex_mul({ re: a, im: b }, { re: c, im: -a });
    return r.re === a * c - b * -a && r.im === a * -a + b * c;
  }));
}, { skip });

test("struct mixing an integer and a float eightbyte", () => {
  const r = s().gt_tagged_scale({ id: 2n ** 60n, weight: 1.5 }, 4);
  assert.deepEqual(r, { id: 2n ** 60n + 1n, weight: 6 });
}, { skip });

test("struct mixing a float and an integer eightbyte, among other arguments", () => {
  fc.assert(fc.property(fc.double({ noNaN: true, min: -1e6, max: 1e6 }), fc.integer({ min: -1e6, max: 1e6 }), (w, n) => {
    const made = s().gt_weighted_make(w, n);
    return made.w === w && made.n === n;
  }));
  assert.equal(s().gt_weighted_dot(1, 0.5, { w: 2, n: 3 }, { id: 4n, weight: 0.25 }, 100), 1 + 0.5 + 6 + 1 + 100);
}, { skip });

test("large struct (MEMORY class): padding, nested struct, array, bool, pointer, u64", () => {
  assert.equal(params.size, s().gt_params_sizeof());
  assert.equal(params.layout.find((f) => f.name === "seed")!.offset, s().gt_params_offsetof_seed());
  const p = s().gt_params_default();
  assert.deepEqual(p, { n_ctx: 512, flag: 7, scale: 0.5, origin: { x: -3, y: 4 }, taps: [-1, 2, -300], enabled: true, user_data: 0x1234, seed: 2n ** 64n - 1n });
  const expected = 512 + 70 + 50 - 3000 + 40000 - 1 + 6 - 2100 + 0.25 + 0x1234 + 0xffff;
  assert.equal(s().gt_params_checksum(p), expected);
  const bumped = s().gt_params_bump(p, 10);
  assert.deepEqual(bumped, { ...p, n_ctx: 522, origin: { x: -3, y: 14 }, taps: [-1, 2, -290], enabled: false });
}, { skip });

test("struct arguments are validated field by field before the call", () => {
  assert.throws(() => s().gt_params_checksum({ n_ctx: 2 ** 31 }), (e: unknown) => e instanceof FfiArgumentError && /n_ctx/.test(e.message));
  assert.throws(() => s().gt_params_checksum({ taps: [1, 2, 3, 4] }), (e: unknown) => e instanceof FfiArgumentError && /taps/.test(e.message));
  assert.throws(() => s().gt_params_checksum({ nope: 1 } as never), (e: unknown) => e instanceof FfiArgumentError && /no field nope/.test(e.message));
  assert.throws(() => s().gt_params_checksum({ origin: 5 } as never), FfiArgumentError);
  // Fields left out are zero, as `gt_params p = {0}` would make them.
  assert.equal(s().gt_params_checksum({ n_ctx: 5 }), 5);
}, { skip });

test("nonblocking variants do not block the event loop (where the runtime has them)", async () => {
  if (!capabilities.nonblockingCalls) {
    assert.equal((testlib.async as Record<string, unknown>).gt_sleep_ms, undefined);
    return;
  }
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const result = await testlib.async.gt_sleep_ms(200);
  clearInterval(timer);
  assert.equal(result, 200);
  assert.ok(ticks >= 10, `the event loop ran ${ticks} times during a 200 ms native call`);
}, { skip });
