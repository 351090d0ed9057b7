// Streamed uploads on a real GPU (skipped without one): a file larger than the ring many times
// over arrives byte for byte, with odd chunk sizes, through a pool, and from registered windows
// of the mapped file, and through both at once (hybrid). The ≥ 2 GB bandwidth figures are
// bench/upload.bench.ts's job.
import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { test } from "../harness.ts";
import { CudaContext, PinnedPool, uploadFileRanges, type UploadOptions, uploadStrategies } from "../../src/cuda/index.ts";
import { openGguf } from "../../src/formats/index.ts";
import { capabilities } from "../../src/ffi/index.ts";
import { probeGpu } from "./gpu-probe.ts";
import { tinyModel } from "../llama/fixtures.ts";
import { inTempDir, runCli } from "../lora/tools-fixtures.ts";

const skip = probeGpu().reason;

test("upload (GPU): 96 MiB through staged rings, mapped windows and hybrids of several shapes arrive byte for byte", () => inTempDir(async (dir) => {
  const size = 96 * 2 ** 20 + 123;
  const data = new Uint8Array(size);
  // Every 4-byte word distinct, so a chunk landing at the wrong offset cannot go unnoticed.
  const words = new Uint32Array(data.buffer, 0, Math.floor(size / 4));
  for (let i = 0; i < words.length; i++) words[i] = Math.imul(i, 2654435761) >>> 0;
  const path = join(dir, "data.bin");
  await writeFile(path, data);
  using context = CudaContext.create({ device: 0 });
  using device = context.alloc(size);
  using pool = new PinnedPool(context);
  // Two ranges that meet mid-page: a mapped window then serves both.
  const split = 40 * 2 ** 20 + 5;
  const ranges = [{ offset: 0, byteLength: split, target: device }, { offset: split, byteLength: size - split, target: device, targetOffset: split }];
  const shapes: UploadOptions[] = [
    { chunkBytes: 8 * 2 ** 20 + 5, slots: 2 },
    { chunkBytes: 3 * 2 ** 20, slots: 4, pool },
    { chunkBytes: 64 * 2 ** 20, slots: 8 },
    { chunkBytes: 2 ** 20, slots: 16, reads: 3, pool },
    { strategy: "mapped", chunkBytes: 8 * 2 ** 20 + 5, slots: 2 },
    { strategy: "mapped", chunkBytes: 32 * 2 ** 20, slots: 1 },
    { strategy: "hybrid", chunkBytes: 8 * 2 ** 20 + 5, slots: 4, windowChunks: 2 },
    { strategy: "hybrid", chunkBytes: 3 * 2 ** 20, slots: 8, reads: 2, windowChunks: 8, pool },
  ];
  for (const options of shapes) {
    device.fill(0);
    const stats = await uploadFileRanges(context, path, ranges, options);
    assert.equal(stats.bytes, size);
    assert.ok(Buffer.from(device.read(new Uint8Array(size))).equals(Buffer.from(data)), JSON.stringify({ ...options, pool: options.pool !== undefined }));
  }
}), { skip, timeout: 120_000 });

test("gpuffi upload (GPU): every tensor of a model, every strategy, bytes and rate as JSON", async () => {
  await using file = await openGguf(tinyModel().path);
  const bytes = file.tensors.reduce((n, t) => n + t.byteLength, 0);
  for (const strategy of uploadStrategies) {
    const { code, out, err } = await runCli("upload", tinyModel().path, "--strategy", strategy, "--chunk", "1", "--slots", "2", "--json");
    assert.equal(code, 0, err);
    const report = JSON.parse(out) as { strategy: string; tensors: number; bytes: number; chunkBytes: number; gbps: number };
    assert.deepEqual([report.strategy, report.tensors, report.bytes, report.chunkBytes], [strategy, file.tensors.length, bytes, 2 ** 20]);
    assert.ok(report.gbps > 0);
  }
  // Without options: this runtime's default strategy and its ring.
  const text = await runCli("upload", tinyModel().path);
  const expected = capabilities.parallelFileReads ? `staged, 8 MiB × 32, ${Math.min(32, availableParallelism())} reads at once` : "mapped, 64 MiB × 4";
  assert.match(text.out, new RegExp(`^uploaded ${file.tensors.length} tensors, [\\d.]+ GB in [\\d.]+ s: [\\d.]+ GB/s \\(GPU 0, ${expected}\\)`));
}, { skip });
