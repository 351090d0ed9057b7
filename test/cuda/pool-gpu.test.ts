// The pools on a real GPU (skips elsewhere): the core's properties on device memory with data
// written and verified per block, the cross-stream reuse race, limits and real exhaustion, and
// 100,000 cycles that trim() brings back to the baseline, with and without expandable segments.
import assert from "node:assert/strict";
import fc from "fast-check";
import { test } from "../harness.ts";
import { CudaContext, DevicePool, PitchedPool, PoolOutOfMemoryError, type PooledDeviceBuffer } from "../../src/cuda/index.ts";
import { replay, transformerTrace } from "../../bench/pool-trace.ts";
import { probeGpu } from "./gpu-probe.ts";
import { checkPitchedMatrix } from "./pitched-scenario.ts";
import { firstDifference, randomBytes } from "./random.ts";

const skip = probeGpu().reason;
const MiB = 2 ** 20;
const GiB = 2 ** 30;

function assertSame(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const at = firstDifference(actual, expected);
  assert.equal(at, -1, `${what}: first difference at byte ${at} of ${expected.byteLength}`);
}

for (const expandableSegments of [false, true]) {
  const which = expandableSegments ? " (expandable segments)" : "";
  test(`random alloc/free on two streams: every live block keeps its own random data${which}`, () => {
    using context = CudaContext.create();
    using a = context.createStream({ nonBlocking: true });
    using b = context.createStream({ nonBlocking: true });
    fc.assert(fc.property(fc.array(fc.record({ free: fc.boolean(), bytes: fc.integer({ min: 1, max: 3 * MiB }), stream: fc.boolean(), index: fc.nat() }), { maxLength: 60 }), (ops) => {
      using pool = new DevicePool(context, { expandableSegments });
      const live: { buffer: PooledDeviceBuffer; data: Uint8Array }[] = [];
      for (const op of ops) {
        if (op.free && live.length > 0) {
          live.splice(op.index % live.length, 1)[0]!.buffer.dispose();
          continue;
        }
        const stream = op.stream ? a : b;
        const buffer = pool.alloc(op.bytes, { stream });
        const data = randomBytes(op.bytes);
        buffer.write(data, { stream });
        live.push({ buffer, data });
      }
      context.synchronize();
      for (const { buffer, data } of live) assertSame(buffer.read(), data, `${data.byteLength}-byte block`);
      for (const { buffer } of live) buffer.dispose();
    }), { numRuns: 20 });
  }, { skip, timeout: 300_000 });
}

test("stream race: a block freed behind long work on stream A is not handed to stream B before that work is done", () => {
  using context = CudaContext.create();
  using streamA = context.createStream({ nonBlocking: true });
  using streamB = context.createStream({ nonBlocking: true });
  using pool = new DevicePool(context);
  const size = 256 * MiB;
  const onA = pool.alloc(size, { stream: streamA });
  const firstPtr = onA.ptr;
  // About a second of writes into the block, queued on A.
  for (let i = 0; i < 2000; i++) onA.fill(0x11, { stream: streamA });
  onA.dispose();
  const onB = pool.alloc(size, { stream: streamB });
  const aStillBusy = !streamA.query();
  if (onB.ptr === firstPtr) assert.ok(!aStillBusy, "stream B got the block while stream A was still writing it");
  onB.fill(0x22, { stream: streamB });
  context.synchronize();
  const back = onB.read();
  assert.ok(back.every((x) => x === 0x22), "stream A's writes landed in stream B's buffer");
  onB.dispose();
  // After A's work, the block is B's to take.
  const again = pool.alloc(size, { stream: streamB });
  assert.ok(pool.stats().hits >= 1);
  again.dispose();
}, { skip, timeout: 120_000 });

test("same stream: the block is reused at once with no driver call", () => {
  using context = CudaContext.create();
  using stream = context.createStream();
  using pool = new DevicePool(context);
  const first = pool.alloc(5 * MiB, { stream });
  const ptr = first.ptr;
  first.fill(1, { stream });
  first.dispose();
  using second = pool.alloc(5 * MiB, { stream });
  assert.equal(second.ptr, ptr);
  assert.equal(pool.stats().misses, 1);
}, { skip });

test("a small limit: PoolOutOfMemoryError with stats before the driver is asked", () => {
  using context = CudaContext.create();
  using pool = new DevicePool(context, { limit: 64 * MiB });
  using held = pool.alloc(48 * MiB);
  const free = context.memoryInfo().free;
  assert.throws(() => pool.alloc(32 * MiB), (e: unknown) => e instanceof PoolOutOfMemoryError && e.reason === "limit" && /limit of 64\.0 MiB/.test(e.message));
  assert.equal(context.memoryInfo().free, free, "the driver was asked");
  held.fill(3);
}, { skip });

for (const expandableSegments of [false, true]) {
  const which = expandableSegments ? " (expandable segments)" : "";
  test(`real exhaustion: the driver's OOM becomes a PoolOutOfMemoryError, and the pool recovers${which}`, () => {
    using context = CudaContext.create();
    using pool = new DevicePool(context, { expandableSegments });
    const baseline = context.memoryInfo().free;
    const cap = Math.floor(baseline * 0.95);
    const held: PooledDeviceBuffer[] = [];
    let reserved = 0;
    while (reserved + 4 * GiB <= cap) {
      held.push(pool.alloc(4 * GiB));
      reserved += 4 * GiB;
    }
    held[held.length - 1]!.fill(7);
    assert.throws(() => pool.alloc(context.memoryInfo().free + GiB), (e: unknown) => {
      assert.ok(e instanceof PoolOutOfMemoryError, String(e));
      assert.equal(e.reason, "driver");
      assert.match(e.message, /even after the pool gave its cached blocks back/);
      return true;
    });
    for (const buffer of held.splice(0, Math.ceil(held.length / 2))) buffer.dispose();
    // Disposed by hand below, before trim(): `using` here would dispose it a second time at the end.
    const again = pool.alloc(2 * GiB);
    again.fill(9);
    assert.equal(again.read(new Uint8Array(1), { offset: 2 * GiB - 1 })[0], 9);
    for (const buffer of held) buffer.dispose();
    again.dispose();
    pool.trim();
    assert.ok(Math.abs(context.memoryInfo().free - baseline) <= 4 * MiB, "free memory back to the baseline after trim()");
  }, { skip, timeout: 120_000 });

  test(`100,000 alloc/free cycles, then trim(): cudaMemGetInfo is back to its baseline${which}`, () => {
    using context = CudaContext.create();
    using stream = context.createStream();
    const baseline = context.memoryInfo().free;
    using pool = new DevicePool(context, { expandableSegments });
    for (let i = 0; i < 100_000; i++) {
      using buffer = pool.alloc(256 + ((i * 7919) % (3 * MiB)), i % 3 === 0 ? { stream } : {});
      if (i % 10_000 === 0) buffer.fill(i & 0xff, { stream });
    }
    const stats = pool.stats();
    assert.equal(stats.inUseBytes, 0);
    assert.ok(stats.hits > 99_000, pool.toString());
    pool.trim();
    assert.equal(pool.stats().reservedBytes, 0);
    assert.ok(Math.abs(context.memoryInfo().free - baseline) <= 4 * MiB, `free ${baseline} before, ${context.memoryInfo().free} after`);
  }, { skip, timeout: 300_000 });
}

test("expandable segments on the device: the transformer trace reserves ≤ 1.15× its peak live bytes, every block keeps its data, trim() gives it all back", () => {
  using context = CudaContext.create();
  using stream = context.createStream();
  const baseline = context.memoryInfo().free;
  using pool = new DevicePool(context, { expandableSegments: true });
  let n = 0;
  const { peakLiveBytes } = replay(transformerTrace({ passes: 12 }), (bytes) => {
    const buffer = pool.alloc(bytes, { stream });
    const tag = n++ & 0xff;
    buffer.fill(tag, { stream });
    return { buffer, tag };
  }, ({ buffer, tag }) => {
    // Spot-check the last byte: a block that overlapped another would have been overwritten.
    assert.equal(buffer.read(new Uint8Array(1), { offset: buffer.byteLength - 1, stream })[0], tag);
    buffer.dispose();
  });
  const ratio = pool.stats().peakReservedBytes / peakLiveBytes;
  assert.ok(ratio <= 1.15, `peak reserved / peak live ${ratio.toFixed(3)}: ${pool}`);
  pool.trim();
  assert.equal(pool.stats().reservedBytes, 0);
  assert.ok(Math.abs(context.memoryInfo().free - baseline) <= 4 * MiB, "free memory back to the baseline after trim()");
}, { skip, timeout: 300_000 });

test("pitched matrices: the driver's pitch, 2D copies, sub-matrix views and memset2D", () => {
  using context = CudaContext.create();
  using pool = new PitchedPool(context);
  const alignment = context.attribute("texturePitchAlignment");
  for (const widthBytes of [1000, 1023, 1024, 4097]) {
    using m = pool.alloc(33, widthBytes, { elementType: "u8" });
    assert.ok(m.pitch >= widthBytes && m.pitch % alignment === 0, `pitch ${m.pitch} for width ${widthBytes}`);
  }
  const rows = 257;
  const cols = 1023;
  using m = pool.alloc(rows, cols, { elementType: "f32" });
  assert.equal(m.ld, m.pitch / 4);
  const random = (n: number) => new Float32Array(n).map(() => Math.random() * 2 - 1);
  checkPitchedMatrix(context, m, rows, cols, random(rows * cols), random(100 * 300));
}, { skip, timeout: 60_000 });
