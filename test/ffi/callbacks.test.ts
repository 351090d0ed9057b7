// C → JS callbacks: synchronous, with strings and user data, from another thread, and errors.
import assert from "node:assert/strict";
import fc from "fast-check";
import { test } from "../harness.ts";
import { DisposedError, createCallback } from "../../src/ffi/index.ts";
import { binop, notify, skipFixture as skip, testlib, visit } from "./fixture-library.ts";

test("a callback called synchronously by C", () => {
  using add = createCallback(binop, (a, b) => a * 10 + b);
  fc.assert(fc.property(fc.integer({ min: -1000, max: 1000 }), fc.integer({ min: -1000, max: 1000 }), (a, b) => testlib.symbols.gt_apply(add, a, b) === a * 10 + b));
  // A raw function pointer works too.
  assert.equal(testlib.symbols.gt_apply(add.ptr, 4, 2), 42);
}, { skip });

test("callback arguments: C strings, doubles and a user pointer", () => {
  const seen: [string | null, number, number][] = [];
  using each = createCallback(visit, (name, value, user) => void seen.push([name, value, user]));
  testlib.symbols.gt_each(each, 0xabcdef);
  assert.deepEqual(seen, [["alpha", 1.5, 0xabcdef], ["beta", -2, 0xabcdef], ["gamma", 3.25, 0xabcdef]]);
}, { skip });

test("an exception in a callback goes to onError and C receives 0", () => {
  const errors: unknown[] = [];
  using failing = createCallback(binop, () => {
    throw new Error("boom");
  }, { onError: (e) => errors.push(e) });
  assert.equal(testlib.symbols.gt_apply(failing, 1, 2), 0);
  assert.equal((errors[0] as Error).message, "boom");
}, { skip });

test("a disposed callback cannot be handed to C again", () => {
  const cb = createCallback(binop, (a, b) => a + b);
  cb.dispose();
  assert.throws(() => testlib.symbols.gt_apply(cb, 1, 2), DisposedError);
  assert.throws(() => cb.dispose(), DisposedError);
}, { skip });

test("a thread-safe callback called from a thread that C started", async () => {
  let resolve!: (value: number) => void;
  const called = new Promise<number>((r) => (resolve = r));
  using cb = createCallback(notify, (value) => resolve(value), { threadSafe: true });
  assert.equal(testlib.symbols.gt_notify_from_thread(cb, 1234), 0);
  // The JS thread keeps its event loop turning while the native thread waits for the call.
  assert.equal(await called, 1234);
  // Joining is a blocking call: run it off the JS thread where the runtime can.
  assert.equal(testlib.async.gt_join_thread ? await testlib.async.gt_join_thread() : testlib.symbols.gt_join_thread(), 0);
}, { skip });
