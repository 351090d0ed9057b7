// DevicePool's buffers on the host-memory libcudart (fake-cudart.ts): dispose returns the block,
// use after return and double return throw, a pool refuses disposal while buffers are out, and
// a leaked buffer is reclaimed by the finalizer with a warning.
import assert from "node:assert/strict";
import { test } from "../harness.ts";
import { DisposedError, setLeakReporter } from "../../src/ffi/index.ts";
import { CudaArgumentError, CudaContext, CudaStateError, DevicePool } from "../../src/cuda/index.ts";
import { GpuffiError } from "../../src/ffi/index.ts";
import { cuMemAccessDesc, cuMemAllocationProp } from "../../src/cuda/driver-library.ts";
import { fakeCudart } from "./fake-cudart.ts";
import { probeGpu } from "./gpu-probe.ts";

const collectGarbage = (globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } }).Bun
  ? () => (globalThis as unknown as { Bun: { gc(force: boolean): void } }).Bun.gc(true)
  : (globalThis as { gc?: () => void }).gc;

test("dispose returns the block; use after return and double return throw; data round-trips", () => {
  const fake = fakeCudart();
  using context = CudaContext.create({ runtime: fake.runtime });
  using pool = new DevicePool(context);
  const buffer = pool.alloc(1000);
  buffer.write(new Uint8Array(1000).fill(7));
  assert.equal(buffer.read()[999], 7);
  const ptr = buffer.ptr;
  buffer.dispose();
  assert.throws(() => buffer.read(), DisposedError);
  assert.throws(() => buffer.dispose(), DisposedError);
  using again = pool.alloc(900);
  assert.equal(again.ptr, ptr);
  assert.equal(fake.calls.filter((c) => c === "cudaMalloc").length, 1);
  assert.equal(pool.stats().hits, 1);
});

test("a pool with live buffers refuses disposal; context disposal frees everything", () => {
  const fake = fakeCudart();
  const context = CudaContext.create({ runtime: fake.runtime });
  const pool = new DevicePool(context);
  const buffer = pool.alloc(4 * 2 ** 20);
  assert.throws(() => pool.dispose(), CudaStateError);
  context.dispose();
  assert.ok(buffer.disposed);
  assert.throws(() => buffer.read(), DisposedError);
  assert.throws(() => pool.alloc(16), DisposedError);
  assert.equal(fake.live.size, 0);
});

test("a buffer keeps its pool alive: a dropped pool is not collected (its memory freed) while one of its buffers is in use", async () => {
  const fake = fakeCudart();
  using context = CudaContext.create({ runtime: fake.runtime });
  using buffer = new DevicePool(context).alloc(4096);
  for (let round = 0; round < 5; round++) {
    collectGarbage!();
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(fake.live.size, 1, "the pool's segment was freed under a live buffer");
  buffer.write(new Uint8Array(4096).fill(3));
  assert.equal(buffer.read()[4095], 3);
  assert.ok(buffer.pool.stats().inUseBytes >= 4096);
}, { skip: collectGarbage ? undefined : "this runtime exposes no gc() (node needs --expose-gc, deno --v8-flags=--expose-gc)" });

test("leaked pool buffers go back to the pool through the finalizer", async () => {
  const reports: string[] = [];
  const previous = setLeakReporter((kind) => reports.push(kind));
  try {
    const fake = fakeCudart();
    using context = CudaContext.create({ runtime: fake.runtime });
    using pool = new DevicePool(context);
    (() => {
      for (let i = 0; i < 10; i++) pool.alloc(4096);
    })();
    for (let round = 0; round < 200 && pool.stats().frees < 10; round++) {
      collectGarbage!();
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(pool.stats().frees, 10);
    assert.ok(reports.includes("PooledDeviceBuffer"));
  } finally {
    setLeakReporter(previous);
  }
}, { skip: collectGarbage ? undefined : "this runtime exposes no gc() (node needs --expose-gc, deno --v8-flags=--expose-gc)" });

test("expandable segments: the option is checked, a missing driver is a typed error, and the VMM structs have cuda.h's layout", () => {
  const fake = fakeCudart();
  using context = CudaContext.create({ runtime: fake.runtime });
  assert.throws(() => new DevicePool(context, { expandableSegments: "yes" as unknown as boolean }), CudaArgumentError);
  // Without a GPU there is no usable libcuda (the fake stands in for libcudart only).
  if (probeGpu().reason) assert.throws(() => new DevicePool(context, { expandableSegments: true }).dispose(), (e: unknown) => e instanceof GpuffiError);
  assert.equal(cuMemAllocationProp.size, 32);
  assert.deepEqual(cuMemAllocationProp.layout.map((f) => [f.name, f.offset]), [["type", 0], ["requestedHandleTypes", 4], ["location", 8], ["win32HandleMetaData", 16], ["allocFlags", 24]]);
  assert.equal(cuMemAccessDesc.size, 12);
  assert.equal(fake.live.size, 0);
});
