// The CUDA layer's own logic against a host-memory libcudart (fake-cudart.ts): argument checks
// happen before any C call, use after dispose and double dispose throw, a context frees what it
// owns in order, sticky errors make the device unusable, and copies move the right bytes.
import assert from "node:assert/strict";
import { test } from "../harness.ts";
import { DisposedError } from "../../src/ffi/index.ts";
import { CudaArgumentError, CudaCompatibilityError, CudaContext, CudaError, CudaOutOfMemoryError, CudaStateError } from "../../src/cuda/index.ts";
import { fakeCudart } from "./fake-cudart.ts";
import { randomBytes } from "./random.ts";


function setup(options?: Parameters<typeof fakeCudart>[0]) {
  const fake = fakeCudart(options);
  const context = CudaContext.create({ device: 0, runtime: fake.runtime });
  return { fake, context };
}

test("bad context options throw CudaArgumentError before any C call", () => {
  const fake = fakeCudart();
  for (const device of [-1, 1.5, Number.NaN, "0" as unknown as number]) {
    assert.throws(() => CudaContext.create({ device, runtime: fake.runtime }), CudaArgumentError);
  }
  assert.throws(() => CudaContext.create({ requireRuntime: "twelve", runtime: fake.runtime }), /requireRuntime: expected a CUDA version/);
  assert.throws(() => CudaContext.create({ requireDriver: "12.x", runtime: fake.runtime }), CudaArgumentError);
  assert.deepEqual(fake.calls, []);
});

test("currentDevice reads the device CUDA has current on this thread; a failed cudaGetDevice throws", () => {
  const { fake, context } = setup({ devices: 2 });
  using _context = context;
  assert.equal(fake.runtime.currentDevice(), 0);
  fake.runtime.setCurrent(1);
  assert.equal(fake.runtime.currentDevice(), 1);
  assert.equal(fake.runtime.currentDevice(), 1);
  fake.failNext.set("cudaGetDeviceAt", 700);
  assert.throws(() => fake.runtime.currentDevice(), (error: unknown) => error instanceof CudaError && error.call === "cudaGetDevice" && error.errorName === "cudaErrorIllegalAddress");
});

test("a device past the count is refused with the count in the message", () => {
  const fake = fakeCudart({ devices: 2 });
  assert.throws(() => CudaContext.create({ device: 2, runtime: fake.runtime }), /device 2 does not exist: this process sees 2 devices \(0–1\)/);
  assert.ok(!fake.calls.includes("cudaSetDevice"));
});

test("no device: a CudaError naming cudaErrorNoDevice and what to check", () => {
  const fake = fakeCudart({ devices: 0 });
  assert.throws(() => CudaContext.create({ runtime: fake.runtime }), (e: unknown) => {
    assert.ok(e instanceof CudaError);
    assert.equal(e.errorName, "cudaErrorNoDevice");
    assert.equal(e.call, "cudaGetDeviceCount");
    assert.match(e.message, /No NVIDIA GPU is visible to this process/);
    return true;
  });
});

test("version minimums are checked when the context is created", () => {
  const fake = fakeCudart({ runtimeVersion: 12020, driverVersion: 12040 });
  assert.throws(() => CudaContext.create({ requireRuntime: "12.4", runtime: fake.runtime }), (e: unknown) => {
    assert.ok(e instanceof CudaCompatibilityError);
    assert.match(e.message, /requireRuntime asks for CUDA runtime ≥ 12\.4.*libcudart 12\.2/);
    return true;
  });
  assert.throws(() => CudaContext.create({ requireDriver: "12.6", runtime: fake.runtime }), /requireDriver asks for a driver supporting CUDA ≥ 12\.6/);
  const ok = CudaContext.create({ requireRuntime: "12.2", requireDriver: "12.4", runtime: fake.runtime });
  assert.equal(ok.compatibility.level, "full");
  ok.dispose();
});

test("a 13.x runtime on a 12.x driver is refused; 12.8 on a 12.4 driver runs under minor-version compatibility", () => {
  assert.throws(() => CudaContext.create({ runtime: fakeCudart({ runtimeVersion: 13000, driverVersion: 12090 }).runtime }), /580\.65\.06/);
  const context = CudaContext.create({ runtime: fakeCudart({ runtimeVersion: 12080, driverVersion: 12040 }).runtime });
  assert.equal(context.compatibility.level, "minor");
  assert.match(context.compatibility.warnings[0]!, /minor-version compatibility/);
  context.dispose();
  assert.throws(() => CudaContext.create({ minorVersionCompatibility: false, runtime: fakeCudart({ runtimeVersion: 12080, driverVersion: 12040 }).runtime }), CudaCompatibilityError);
});

test("sizes, offsets and ranges are checked in JS before any C call", () => {
  const { fake, context } = setup();
  for (const size of [0, -1, 1.5, 2 ** 53, Number.NaN]) assert.throws(() => context.alloc(size), CudaArgumentError);
  const buffer = context.alloc(64);
  const other = context.alloc(16);
  fake.calls.length = 0;
  assert.throws(() => buffer.write(new Uint8Array(65)), /bytes \[0, 65\) are out of range for a buffer of 64 bytes/);
  assert.throws(() => buffer.write(new Uint8Array(8), { offset: 60 }), CudaArgumentError);
  assert.throws(() => buffer.write(new Uint8Array(8), { offset: -1 }), CudaArgumentError);
  assert.throws(() => buffer.write([1, 2] as unknown as Uint8Array), /expected a typed array/);
  assert.throws(() => buffer.read(new Uint8Array(8), { offset: 57 }), CudaArgumentError);
  assert.throws(() => buffer.fill(256), /value must be a byte/);
  assert.throws(() => buffer.fill(1, { offset: 10, byteLength: 55 }), CudaArgumentError);
  assert.throws(() => buffer.copyFrom(other, { srcOffset: 8, byteLength: 9 }), /source/);
  assert.throws(() => other.copyFrom(buffer), /destination/);
  assert.throws(() => buffer.address(64, 1), CudaArgumentError);
  assert.deepEqual(fake.calls, []);
  context.dispose();
});

test("copies move exactly the bytes asked for, at the offsets asked for", () => {
  using context = setup().context;
  const data = randomBytes(1000);
  using a = context.alloc(1000);
  using b = context.alloc(1000);
  a.write(data);
  assert.deepEqual(a.read(), data);
  b.fill(7);
  b.copyFrom(a, { srcOffset: 100, dstOffset: 3, byteLength: 500 });
  const back = b.read();
  assert.deepEqual(back.subarray(3, 503), data.subarray(100, 600));
  assert.equal(back[2], 7);
  assert.equal(back[503], 7);
  const floats = new Float32Array(10).map(() => Math.random());
  a.write(floats, { offset: 8 });
  assert.deepEqual(a.read(new Float32Array(10), { offset: 8 }), floats);
  assert.deepEqual(a.read(undefined, { offset: 990 }), data.subarray(990));
  using pinned = context.allocPinned(16);
  pinned.bytes().set(data.subarray(0, 16));
  b.copyFrom(pinned);
  assert.deepEqual(b.read(new Uint8Array(16)), data.subarray(0, 16));
  using odd = context.allocPinned(6);
  assert.equal(pinned.view(Float64Array).length, 2);
  assert.throws(() => odd.view(Float32Array), /not a whole number of Float32Array elements/);
});

test("use after dispose and double dispose throw DisposedError; nothing reaches C", () => {
  const { fake, context } = setup();
  const buffer = context.alloc(32);
  const stream = context.createStream();
  const event = context.createEvent();
  buffer.dispose();
  event.dispose();
  fake.calls.length = 0;
  assert.throws(() => buffer.write(new Uint8Array(1)), DisposedError);
  assert.throws(() => buffer.read(), DisposedError);
  assert.throws(() => buffer.dispose(), DisposedError);
  assert.throws(() => event.record(stream), DisposedError);
  assert.throws(() => stream.waitEvent(event), DisposedError);
  assert.deepEqual(fake.calls, []);
  context.dispose();
  assert.throws(() => context.alloc(8), DisposedError);
  assert.throws(() => stream.synchronize(), DisposedError);
  assert.throws(() => context.dispose(), DisposedError);
});

test("disposing a context frees what it owns: events, then memory, then streams", () => {
  const { fake, context } = setup();
  const stream = context.createStream();
  const asyncBuffer = context.alloc(8, { stream });
  context.alloc(8);
  context.allocPinned(8);
  context.createEvent();
  fake.calls.length = 0;
  context.dispose();
  const frees = fake.calls.filter((c) => /Destroy|Free/.test(c));
  assert.deepEqual(frees, ["cudaEventDestroy", "cudaFreeAsync", "cudaFree", "cudaFreeHost", "cudaStreamDestroy"]);
  assert.equal(fake.calls[0], "cudaDeviceSynchronize");
  assert.equal(fake.live.size, 0);
  // A buffer the context freed reads as disposed, and disposing it again frees nothing twice.
  assert.equal(asyncBuffer.disposed, true);
  assert.throws(() => asyncBuffer.read(), DisposedError);
  const before = fake.calls.length;
  assert.throws(() => asyncBuffer.dispose(), DisposedError);
  assert.equal(fake.calls.length, before);
});

test("a stream with live stream-ordered buffers refuses to be disposed", () => {
  const { context } = setup();
  const stream = context.createStream();
  const buffer = context.alloc(8, { stream });
  assert.throws(() => stream.dispose(), CudaStateError);
  buffer.dispose();
  stream.dispose();
  context.dispose();
});

test("streams and events are tied to their device", () => {
  const fake = fakeCudart({ devices: 2 });
  const zero = CudaContext.create({ device: 0, runtime: fake.runtime });
  const one = CudaContext.create({ device: 1, runtime: fake.runtime });
  const stream1 = one.createStream();
  assert.throws(() => zero.alloc(8, { stream: stream1 }), /the stream belongs to device 1, but the operation is on device 0/);
  const buffer0 = zero.alloc(8);
  assert.throws(() => buffer0.fill(0, { stream: stream1 }), CudaArgumentError);
  const start = zero.createEvent();
  const end = one.createEvent();
  assert.throws(() => end.elapsedSince(start), /never recorded|devices 0 and 1/);
  const untimed = zero.createEvent({ timing: false });
  untimed.record();
  assert.throws(() => untimed.elapsedSince(untimed), /timing: false/);
  one.dispose();
  zero.dispose();
});

test("the current device is set only when it changes", () => {
  const fake = fakeCudart({ devices: 2 });
  const zero = CudaContext.create({ device: 0, runtime: fake.runtime });
  const one = CudaContext.create({ device: 1, runtime: fake.runtime });
  fake.calls.length = 0;
  const a = one.alloc(8);
  a.fill(1);
  a.fill(2);
  const b = zero.alloc(8);
  b.copyFrom(a);
  // Device 1 was current already; only the switch to device 0 calls cudaSetDevice.
  assert.equal(fake.calls.filter((c) => c === "cudaSetDevice").length, 1);
  fake.runtime.invalidateCurrentDevice();
  b.fill(3);
  assert.equal(fake.calls.filter((c) => c === "cudaSetDevice").length, 2);
  zero.dispose();
  one.dispose();
});

test("a sticky error makes the device unusable with a message that says so", () => {
  const { fake, context } = setup();
  const buffer = context.alloc(8);
  fake.failNext.set("cudaMemsetAsync", 700);
  assert.throws(() => buffer.fill(1), (e: unknown) => {
    assert.ok(e instanceof CudaError && e.sticky);
    assert.match(e.message, /cudaErrorIllegalAddress \(700\).*sticky/);
    return true;
  });
  assert.throws(() => buffer.fill(1), (e: unknown) => e instanceof CudaStateError && /device 0 is unusable: cudaMemsetAsync hit the sticky error cudaErrorIllegalAddress/.test(e.message));
  assert.throws(() => CudaContext.create({ device: 0, runtime: fake.runtime }), CudaStateError);
  fake.calls.length = 0;
  // Disposal still works and frees nothing on the broken device.
  buffer.dispose();
  context.dispose();
  assert.deepEqual(fake.calls, []);
});

test("a failed allocation becomes CudaOutOfMemoryError with the device's free memory", () => {
  const { fake, context } = setup();
  fake.failNext.set("cudaMalloc", 2);
  assert.throws(() => context.alloc(2 ** 20), (e: unknown) => {
    assert.ok(e instanceof CudaOutOfMemoryError);
    assert.equal(e.requestedBytes, 2 ** 20);
    assert.match(e.message, /cudaMalloc could not allocate 1\.0 MiB on device 0 \(the device has 1\.00 GiB free of 2\.00 GiB\)/);
    return true;
  });
  context.dispose();
});

test("managed memory larger than the device's free memory is refused before cudaMallocManaged", () => {
  const { fake, context } = setup({ freeMemory: 4096 });
  using _context = context;
  assert.throws(() => context.allocManaged(4097), CudaOutOfMemoryError);
  assert.ok(!fake.calls.includes("cudaMallocManaged"));
  using managed = context.allocManaged(4096);
  managed.view(Float32Array).fill(1.5);
  managed.prefetch("device");
  managed.advise("setReadMostly");
  assert.throws(() => managed.prefetch("gpu" as "device"), CudaArgumentError);
  assert.throws(() => managed.advise("sometimes" as "setReadMostly"), /unknown advice/);
  assert.deepEqual(managed.read(new Float32Array(2)), new Float32Array([1.5, 1.5]));
});

test("awaitable synchronization resolves, polling or not", async () => {
  using context = setup().context;
  using stream = context.createStream();
  await stream.synchronized();
  await stream.synchronized({ poll: true });
  using event = stream.record();
  await event.synchronized({ poll: true });
  assert.equal(event.query(), true);
});

test("launchBlocking waits for the stream after each stream-ordered operation", () => {
  const fake = fakeCudart();
  using context = CudaContext.create({ runtime: fake.runtime, launchBlocking: true });
  using stream = context.createStream();
  using buffer = context.alloc(8);
  fake.calls.length = 0;
  buffer.fill(1, { stream });
  assert.deepEqual(fake.calls, ["cudaMemsetAsync", "cudaStreamSynchronize"]);
});
