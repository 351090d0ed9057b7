// The GPU suite: runs for real on a machine with an NVIDIA GPU and skips elsewhere with the reason.
//   node_modules/.bin/bun test/run.ts cuda   (and the deno / node variants, see docs/cuda.md)
import assert from "node:assert/strict";
import { test } from "../harness.ts";
import { CudaContext, CudaOutOfMemoryError } from "../../src/cuda/index.ts";
import { probeGpu } from "./gpu-probe.ts";
import { checkCaptureRefusesSync, checkGraphReplay } from "./graph-scenarios.ts";
import { firstDifference, randomBytes } from "./random.ts";

const gpu = probeGpu();
const skip = gpu.reason;
const GiB = 2 ** 30;
const MiB = 2 ** 20;

function withContext<T>(fn: (context: CudaContext) => T, device = 0): T {
  using context = CudaContext.create({ device });
  return fn(context);
}

/** The async variant: the context lives until the test's promise settles. */
async function withContextAsync<T>(fn: (context: CudaContext) => Promise<T>): Promise<T> {
  using context = CudaContext.create({ device: 0 });
  return await fn(context);
}

function assertSame(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const at = firstDifference(actual, expected);
  assert.equal(at, -1, `${what}: first difference at byte ${at} of ${expected.byteLength}`);
}

test("devices report name, UUID, PCI bus id, compute capability, memory and SMs", () => {
  for (let device = 0; device < gpu.deviceCount; device++) {
    withContext((context) => {
      const info = context.info();
      assert.ok(info.name.length > 0);
      assert.match(info.uuid, /^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      assert.match(info.pciBusId, /^[0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-9A-Fa-f]$/);
      assert.ok(info.computeCapability.major >= 5);
      assert.ok(info.multiProcessorCount > 0);
      const memory = context.memoryInfo();
      assert.ok(memory.free > 0 && memory.free <= memory.total);
      assert.ok(Math.abs(memory.total - info.totalMemory) <= 64 * MiB, `cudaMemGetInfo total ${memory.total} vs cuDeviceTotalMem ${info.totalMemory}`);
      assert.equal(context.attribute("warpSize"), 32);
      assert.equal(context.compatibility.ok, true);
    }, device);
  }
}, { skip });

test("random bytes round-trip bit-exact through device memory, 1 B to 1 GiB, odd sizes", () => {
  withContext((context) => {
    for (const size of [1, 3, 4095, 65_537, MiB + 13, 64 * MiB + 7, GiB]) {
      const data = randomBytes(size);
      using a = context.alloc(size);
      using b = context.alloc(size);
      a.write(data);
      b.copyFrom(a);
      assertSame(b.read(), data, `${size} bytes`);
    }
  });
}, { skip, timeout: 180_000 });

test("offsets and typed arrays: partial writes and reads land where asked", () => {
  withContext((context) => {
    using buffer = context.alloc(4096 + 3);
    const data = randomBytes(4096 + 3);
    buffer.write(data);
    const floats = new Float32Array(100).map(() => Math.random() * 1e6);
    buffer.write(floats, { offset: 1001 });
    assert.deepEqual(buffer.read(new Float32Array(100), { offset: 1001 }), floats);
    const back = buffer.read();
    assertSame(back.subarray(0, 1001), data.subarray(0, 1001), "before");
    assertSame(back.subarray(1401), data.subarray(1401), "after");
    buffer.fill(0xab, { offset: 10, byteLength: 5 });
    assert.deepEqual(Array.from(buffer.read(new Uint8Array(7), { offset: 9 })), [data[9], 0xab, 0xab, 0xab, 0xab, 0xab, data[15]]);
  });
}, { skip });

test("async copies through pinned memory on two streams ordered by an event", async () => {
  await withContextAsync(async (context) => {
    const size = 256 * MiB + 1;
    const data = randomBytes(size);
    using upload = context.createStream({ nonBlocking: true });
    using download = context.createStream({ nonBlocking: true });
    using source = context.allocPinned(size);
    using target = context.allocPinned(size);
    using device = context.alloc(size);
    using copy = context.alloc(size, { stream: download });
    source.bytes().set(data);
    const start = upload.record();
    device.copyFrom(source, { stream: upload });
    const uploaded = upload.record();
    download.waitEvent(uploaded);
    copy.copyFrom(device, { stream: download });
    target.copyFrom(copy, { stream: download });
    await download.synchronized();
    assertSame(target.bytes(), data, "pinned → device → device → pinned");
    assert.ok(uploaded.elapsedSince(start) > 0);
    start.dispose();
    uploaded.dispose();
  });
}, { skip, timeout: 60_000 });

test("CUDA graphs: a captured fill and copy run only when launched, in order, on any stream; a synchronize inside the capture is refused and named", () => {
  withContext((context) => {
    checkGraphReplay(context, 4 * MiB);
    checkCaptureRefusesSync(context);
  });
}, { skip });

test("managed memory: host view, prefetch to the device and back, advice", () => {
  withContext((context) => {
    const size = 64 * MiB + 3;
    const data = randomBytes(size);
    using managed = context.allocManaged(size);
    managed.bytes().set(data);
    managed.advise("setReadMostly");
    using stream = context.createStream();
    managed.prefetch("device", { stream });
    stream.synchronize();
    using device = context.alloc(size);
    device.copyFrom(managed);
    assertSame(device.read(), data, "managed → device");
    device.fill(0x5a, { byteLength: 1000 });
    managed.copyFrom(device, { byteLength: 1000 });
    managed.prefetch("host");
    const view = managed.bytes();
    assert.ok(view.subarray(0, 1000).every((b) => b === 0x5a));
    assertSame(view.subarray(1000), data.subarray(1000), "managed tail");
  });
}, { skip });

test("managed memory beyond the device's free memory is refused before the driver is asked", () => {
  withContext((context) => {
    assert.throws(() => context.allocManaged(context.memoryInfo().free + GiB), CudaOutOfMemoryError);
  });
}, { skip });

test("an impossible allocation is a CudaOutOfMemoryError naming the free memory", () => {
  withContext((context) => {
    assert.throws(() => context.alloc(2 ** 50), (e: unknown) => e instanceof CudaOutOfMemoryError && /cudaMalloc could not allocate .* free of/.test(e.message));
    using ok = context.alloc(16);
    ok.fill(1);
  });
}, { skip });

test("two contexts in one thread: same device twice, and two devices where present", () => {
  using a = CudaContext.create({ device: 0 });
  using b = CudaContext.create({ device: gpu.deviceCount > 1 ? 1 : 0 });
  const data = randomBytes(MiB + 1);
  using onA = a.alloc(data.byteLength);
  using onB = b.alloc(data.byteLength);
  onA.write(data);
  onB.copyFrom(onA);
  onA.fill(0);
  assertSame(onB.read(), data, `device ${a.device} → device ${b.device}`);
  assert.equal(onB.device, b.device);
}, { skip });

test("the awaitable synchronization leaves the event loop running while the GPU works", async () => {
  await withContextAsync(async (context) => {
    using stream = context.createStream();
    using buffer = context.alloc(GiB);
    for (const poll of [false, true]) {
      for (let i = 0; i < 400; i++) buffer.fill(i & 0xff, { stream });
      let ticks = 0;
      const timer = setInterval(() => ticks++, 1);
      const pending = stream.synchronized({ poll });
      const busy = !stream.query();
      await pending;
      clearInterval(timer);
      assert.ok(stream.query());
      if (busy) assert.ok(ticks > 0, `poll=${poll}: the event loop did not run while waiting`);
      assert.equal(buffer.read(new Uint8Array(1), { offset: GiB - 1 })[0], 399 & 0xff);
    }
  });
}, { skip, timeout: 60_000 });

test("10,000 alloc/free cycles return cudaMemGetInfo to its baseline", () => {
  withContext((context) => {
    for (let i = 0; i < 100; i++) context.alloc(MiB).dispose();
    const baseline = context.memoryInfo().free;
    for (let i = 0; i < 10_000; i++) {
      using buffer = context.alloc(MiB + (i % 7) * 4099);
      if (i % 1000 === 0) buffer.fill(1);
    }
    const after = context.memoryInfo().free;
    assert.ok(Math.abs(after - baseline) <= 2 * MiB, `free memory ${baseline} before, ${after} after`);
  });
}, { skip, timeout: 120_000 });
