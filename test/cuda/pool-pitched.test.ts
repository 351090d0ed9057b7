// PitchedPool and Pitched2D on the host-memory libcudart (fake-cudart.ts) in deferred mode:
// cudaMallocPitch pitches, cudaMemcpy2DAsync/cudaMemset2DAsync argument order, sub-view offsets,
// and the staging buffers' lifetimes. Stream work runs only when something waits for it, so a
// copy read back before its stream was synchronized, or a staging block reused while a queued
// copy still reads it, shows up as wrong data here as it would on a GPU. The same checks run on
// real memory in pool-gpu.test.ts.
import assert from "node:assert/strict";
import { test } from "../harness.ts";
import { CudaArgumentError, CudaContext, PitchedPool } from "../../src/cuda/index.ts";
import { fakeCudart } from "./fake-cudart.ts";
import { checkPitchedMatrix } from "./pitched-scenario.ts";

/** Deterministic floats (no Math.random: a failure must reproduce). */
function floats(n: number, seed: number): Float32Array {
  let x = seed | 1;
  return new Float32Array(n).map(() => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 31 - 1;
  });
}

function setup() {
  const fake = fakeCudart({ deferred: true });
  const context = CudaContext.create({ runtime: fake.runtime });
  const pool = new PitchedPool(context);
  return { fake, context, pool, [Symbol.dispose]: () => (pool.dispose(), context.dispose()) };
}

test("pitched matrices on the fake: the driver's pitch, 2D round trip, sub-matrix views and memset2D", () => {
  using env = setup();
  const { pool, context } = env;
  for (const [widthBytes, pitch] of [[1000, 1024], [1023, 1024], [1024, 1024], [4097, 4608]] as const) {
    using m = pool.alloc(33, widthBytes, { elementType: "u8" });
    assert.equal(m.pitch, pitch, `pitch for width ${widthBytes}`);
  }
  const rows = 257;
  const cols = 1023;
  using m = pool.alloc(rows, cols, { elementType: "f32" });
  assert.equal(m.pitch, 4096);
  assert.equal(m.ld, 1024);
  checkPitchedMatrix(context, m, rows, cols, floats(rows * cols, 1), floats(100 * 300, 2));
});

test("copies on a stream: queued copies keep their staging blocks until they ran, and reads wait for the stream", () => {
  using env = setup();
  const { fake, pool, context } = env;
  using stream = context.createStream();
  using a = pool.alloc(64, 500, { elementType: "f32", stream });
  using b = pool.alloc(64, 500, { elementType: "f32", stream });
  const first = floats(64 * 500, 3);
  const second = floats(64 * 500, 4);
  // Both copies stay queued: the second must not stage through the first's block.
  a.copyFromHost(first, { stream });
  b.copyFromHost(second, { stream });
  assert.equal(fake.queuedOperations, 2, "copyFromHost with a stream returns before the copy ran");
  first.fill(0);
  assert.deepEqual(b.copyToHost(new Float32Array(64 * 500), { stream }), second);
  assert.deepEqual(a.copyToHost(new Float32Array(64 * 500), { stream }), floats(64 * 500, 3), "the source array was reused before the copy ran");
  // After the stream's work ran, the staging blocks are reused.
  const stagingStats = pool.staging.stats();
  a.copyFromHost(first, { stream });
  fake.runQueued();
  b.copyFromHost(second, { stream });
  assert.equal(pool.staging.stats().misses, stagingStats.misses, "a staging block whose copy ran was not reused");
  assert.deepEqual(a.copyToHost(new Float32Array(64 * 500)), first);
});

test("memset2D and copies on different element types and a one-column view", () => {
  using env = setup();
  const { pool } = env;
  using m = pool.alloc(40, 3, { elementType: "u16" });
  const data = Uint16Array.from({ length: 120 }, (_, i) => i * 7 + 1);
  m.copyFromHost(data);
  m.view(0, 40, 1, 1).memset2D(0xff);
  const back = m.copyToHost(new Uint16Array(120));
  for (let r = 0; r < 40; r++) for (let c = 0; c < 3; c++) assert.equal(back[r * 3 + c], c === 1 ? 0xffff : data[r * 3 + c]);
  assert.deepEqual(m.view(39, 1, 2, 1).copyToHost(new Uint16Array(1)), Uint16Array.of(data[119]!));
});

test("2D arguments are checked in JS: array sizes and element types, view ranges", () => {
  using env = setup();
  const { pool } = env;
  using m = pool.alloc(4, 4, { elementType: "f32" });
  assert.throws(() => m.copyFromHost(new Float32Array(15)), CudaArgumentError);
  assert.throws(() => m.copyFromHost(new Float64Array(8)), CudaArgumentError);
  assert.throws(() => m.view(2, 3, 0, 4), CudaArgumentError);
  assert.throws(() => m.view(0, 4, 1, 4), CudaArgumentError);
  assert.throws(() => m.memset2D(256), CudaArgumentError);
  m.copyFromHost(new Uint8Array(64).fill(9));
  assert.ok(m.copyToHost().every((x) => x === 9));
});
