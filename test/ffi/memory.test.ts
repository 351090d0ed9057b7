// Native memory from JS: views, copies, strings, structs in memory, host allocations.
import assert from "node:assert/strict";
import fc from "fast-check";
import { test } from "../harness.ts";
import {
  DisposedError,
  FfiArgumentError,
  HostMemory,
  copyFromNative,
  copyToNative,
  nativeView,
  readCString,
  readStruct,
  writeStructAt,
} from "../../src/ffi/index.ts";
import { params, skipFixture, testlib } from "./fixture-library.ts";

test("host memory round-trips random bytes through a zero-copy view", () => {
  fc.assert(fc.property(fc.uint8Array({ minLength: 1, maxLength: 4096 }), (data) => {
    using memory = HostMemory.from(data);
    const view = new Uint8Array(nativeView(memory.ptr, memory.byteLength));
    assert.deepEqual(view, data);
    view[0] = (view[0]! + 1) & 0xff; // writes through the view land in native memory
    assert.equal(copyFromNative(memory.ptr, 1)[0], (data[0]! + 1) & 0xff);
    return true;
  }), { numRuns: 50 });
});

test("a zero-copy view sees what is written through the native pointer", () => {
  using memory = HostMemory.alloc(4 * 256);
  const words = new Uint32Array(nativeView(memory.ptr, memory.byteLength));
  copyToNative(memory.ptr, Uint32Array.from({ length: 256 }, (_, i) => i * 3));
  assert.equal(words[255], 765);
  // A native view is a real buffer C can fill: pass it where the table says `buffer`.
  testlib.symbols.gt_fill_u32(words, 256, 5);
  assert.equal(new Uint32Array(copyFromNative(memory.ptr + 4 * 255, 4).buffer)[0], 5 + 255);
}, { skip: skipFixture });

test("strings and structs in native memory", () => {
  using text = HostMemory.from(new TextEncoder().encode("grüße\0"));
  assert.equal(readCString(text.ptr), "grüße");
  assert.equal(readCString(0), null);
  using block = HostMemory.alloc(params.size);
  const value = { n_ctx: 4096, flag: 1, scale: -2.5, origin: { x: 1, y: 2 }, taps: [3, 4, 5], enabled: true, user_data: 0x10, seed: 99n };
  writeStructAt(params, block.ptr, value);
  assert.deepEqual(readStruct(params, block.ptr), value);
});

test("bad pointers and lengths are refused before touching memory", () => {
  assert.throws(() => nativeView(0, 8), FfiArgumentError);
  assert.throws(() => nativeView(-8, 8), FfiArgumentError);
  assert.throws(() => nativeView(4096.5, 8), FfiArgumentError);
  assert.throws(() => nativeView(4096, -1), FfiArgumentError);
  assert.throws(() => nativeView(4096, 1.5), FfiArgumentError);
  assert.throws(() => readCString(Number.NaN), FfiArgumentError);
  assert.equal(nativeView(0, 0).byteLength, 0);
  assert.throws(() => HostMemory.alloc(-1), FfiArgumentError);
});

test("disposed host memory throws on use and on a second dispose", () => {
  const memory = HostMemory.alloc(16);
  assert.equal(memory.disposed, false);
  memory.dispose();
  assert.equal(memory.disposed, true);
  assert.throws(() => memory.bytes(), DisposedError);
  assert.throws(() => memory.dispose(), DisposedError);
});
