// Streamed uploads on the host-memory libcudart (test/cuda/fake-cudart.ts) in its deferred mode:
// queued copies run only when the "GPU" catches up (a timer here), and read their staging
// buffer then, so refilling a slot before its copy ran would corrupt the result.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import fc from "fast-check";
import { test } from "../harness.ts";
import { CudaContext, CudaError, PinnedPool } from "../../src/cuda/index.ts";
import { encodeSafetensors, openGguf } from "../../src/formats/index.ts";
import { uploadFileRanges, uploadTensors } from "../../src/lora/index.ts";
import { fakeCudart } from "../cuda/fake-cudart.ts";
import { tinyModel } from "./fixtures.ts";
import { inTempDir } from "./tools-fixtures.ts";

/** A fake GPU that runs its queued work every millisecond while `body` runs. */
async function withSlowGpu<T>(body: (context: CudaContext, fake: ReturnType<typeof fakeCudart>) => Promise<T>): Promise<T> {
  const fake = fakeCudart({ deferred: true });
  const timer = setInterval(() => fake.runQueued(), 1);
  const context = CudaContext.create({ runtime: fake.runtime });
  try {
    return await body(context, fake);
  } finally {
    clearInterval(timer);
    context.dispose();
  }
}

const pattern = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed * 7 + (i >> 8)) & 0xff);

test("upload: every tensor of a GGUF arrives intact through a small ring (chunks ≪ tensors, slots refilled many times)", () => withSlowGpu(async (context, fake) => {
  const progress: number[] = [];
  const buffers = await uploadTensors(context, tinyModel().path, { chunkBytes: 4000, slots: 2, onProgress: (done) => progress.push(done) });
  // Asynchronous: copies went to a stream, and nothing blocked on it (events and the stream were polled).
  const calls = [...fake.calls];
  await using file = await openGguf(tinyModel().path);
  assert.equal(buffers.size, file.tensors.length);
  for (const t of file.tensors) assert.deepEqual(buffers.get(t.name)!.read().subarray(0, t.byteLength), await file.readTensor(t.name), t.name);
  assert.equal(progress.at(-1), file.tensors.reduce((n, t) => n + t.byteLength, 0));
  assert.ok(calls.filter((c) => c === "cudaMemcpyAsync").length > 2 * file.tensors.length);
  assert.equal(calls.filter((c) => c === "cudaStreamSynchronize").length, 0);
  for (const buffer of buffers.values()) buffer.dispose();
  assert.equal(fake.live.size, 0, "staging buffers and device buffers are all freed");
}));

test("upload: any ranges, chunk sizes and ring sizes land at their targets (property)", () => inTempDir(async (dir) => {
  const path = join(dir, "data.bin");
  const data = pattern(50_000, 3);
  await writeFile(path, data);
  await fc.assert(fc.asyncProperty(
    fc.array(fc.tuple(fc.nat({ max: 49_999 }), fc.nat({ max: 9_000 })), { minLength: 1, maxLength: 6 }),
    fc.integer({ min: 1_000, max: 5_000 }),
    fc.integer({ min: 1, max: 5 }),
    (spans, chunkBytes, slots) => withSlowGpu(async (context) => {
      const ranges = spans.map(([offset, length]) => ({ offset, byteLength: Math.min(length, data.length - offset) }));
      const targets = ranges.map((r) => context.alloc(r.byteLength + 16));
      const stats = await uploadFileRanges(context, path, ranges.map((r, i) => ({ ...r, target: targets[i]!, targetOffset: 16 })), { chunkBytes, slots });
      assert.equal(stats.bytes, ranges.reduce((n, r) => n + r.byteLength, 0));
      ranges.forEach((r, i) => assert.deepEqual(targets[i]!.read(undefined, { offset: 16 }), data.subarray(r.offset, r.offset + r.byteLength)));
    }),
  ), { numRuns: 15 });
}));

test("upload: safetensors files, named tensors, and staging from a PinnedPool", () => inTempDir(async (dir) => {
  const path = join(dir, "w.safetensors");
  const tensors = [{ name: "a", dtype: "U8" as const, shape: [3000], data: pattern(3000, 1) }, { name: "b", dtype: "U8" as const, shape: [0], data: new Uint8Array(0) }, { name: "c", dtype: "U8" as const, shape: [777], data: pattern(777, 2) }];
  await writeFile(path, encodeSafetensors({ tensors }));
  await withSlowGpu(async (context) => {
    using pool = new PinnedPool(context);
    const buffers = await uploadTensors(context, path, { names: ["c", "a", "b"], pool, chunkBytes: 512, slots: 3 });
    assert.deepEqual([...buffers.keys()], ["c", "a", "b"]);
    assert.deepEqual(buffers.get("a")!.read(), tensors[0]!.data);
    assert.deepEqual(buffers.get("c")!.read(), tensors[2]!.data);
    assert.ok(pool.stats().allocations >= 1);
    for (const buffer of buffers.values()) buffer.dispose();
    await assert.rejects(uploadTensors(context, path, { names: ["missing"] }), /no tensor named "missing"/);
  });
}));

test("upload: a failing copy frees every staging and device buffer and reports the CUDA error", () => withSlowGpu(async (context, fake) => {
  fake.failNext.set("cudaMemcpyAsync", 1);
  await assert.rejects(uploadTensors(context, tinyModel().path, { chunkBytes: 4096, slots: 3 }), (e) => e instanceof CudaError && /cudaMemcpyAsync/.test(e.message));
  assert.equal(fake.live.size, 0);
}));
