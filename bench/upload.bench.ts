// Streamed upload of a ≥ 2 GB file to the GPU (src/cuda/upload.ts), staged through pinned buffers,
// from registered windows of the mapped file, and both at once (hybrid), against, in the same run:
//  - pageable cudaMemcpy: DeviceBuffer.write from a JS buffer (CUDA stages it synchronously);
//  - pinned cudaMemcpy: DeviceBuffer.copyFrom a pinned buffer (the PCIe ceiling);
//  - the naive file path: read into a JS buffer, then a pageable write;
//  - reads only: the whole file read with openFileReads into a pinned ring of 16 MiB × 8, 16, 32
//    and 64 slots (and at 16 through the runtime's own node:fs file handles, which Bun's reads
//    are and Deno's and Node's are not), nothing copied to the device: the most staged could do;
//  - and, given the C anchor (bench/c/read_anchor.cu), the same reads from C threads (8, 16, 32
//    and 64 of them, each pread of 16 MiB into its own pinned buffer): what the host itself reads;
//  - and, given the C upload anchor (bench/c/upload_anchor.cu), staged uploads from C threads (8,
//    16 and 32, each reading 8 MiB pieces into two pinned buffers of its own and copying them on
//    its own stream): what this host uploads when every byte crosses the CPU once and the DMA
//    engine once, the ceiling of the staged strategy here.
// The file is written first and read once, so it is in the page cache: the figures are about
// copies, not the disk. Goal (issue #8): streamed ≥ 5× pageable.
//   <runtime> bench/upload.bench.ts [OUT_DIR] [path/to/read_anchor] [path/to/upload_anchor]     GPUFFI_UPLOAD_BYTES=N to change the size
// Staged reads run many at once on every runtime (openFileReads; on Node on gpuffi's reader
// threads, not libuv's pool), so nothing here tunes the runtime: the figures are the library's.
import { execFileSync } from "node:child_process";
import { open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { type FileReadMethod, openFileReads, runtimeName, runtimeVersion } from "../src/ffi/index.ts";
import { CudaContext, PinnedPool, uploadFileRanges, type UploadStats, type UploadStrategy } from "../src/cuda/index.ts";
import { probeGpu } from "../test/cuda/gpu-probe.ts";

const reason = probeGpu().reason;
if (reason !== undefined) {
  console.log(`upload bench skipped: ${reason}`);
  process.exit(0);
}

const outDir = process.argv[2];
const readAnchor = process.argv[3];
const uploadAnchor = process.argv[4];
const size = Number(process.env.GPUFFI_UPLOAD_BYTES ?? 2 ** 31);
const block = 256 * 2 ** 20;
const path = join(tmpdir(), `gpuffi-upload-bench-${process.pid}.bin`);

/** Deterministic, incompressible-looking bytes. */
function fillBlock(bytes: Uint8Array, seed: number): void {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  let x = seed | 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    words[i] = x >>> 0;
  }
}

const scratch = new Uint8Array(block);
{
  const file = await open(path, "w");
  for (let at = 0; at < size; at += block) {
    fillBlock(scratch, at / block + 1);
    await file.write(scratch, 0, Math.min(block, size - at), at);
  }
  await file.close();
}

/** Reads the whole file through `buffer`, calling `each` per block: the page-cache warm-up and the naive path. */
async function readBlocks(each: (bytes: Uint8Array, at: number) => void): Promise<void> {
  const file = await open(path, "r");
  try {
    for (let at = 0; at < size; at += block) {
      const length = Math.min(block, size - at);
      const { bytesRead } = await file.read(scratch, 0, length, at);
      if (bytesRead !== length) throw new Error("short read");
      each(scratch.subarray(0, length), at);
    }
  } finally {
    await file.close();
  }
}

/**
 * The whole file read into a ring of `slots` pinned buffers of `chunkMiB` from `pool`, one read
 * in flight per buffer, as the staged upload reads (openFileReads), with no copies to the device.
 */
async function readIntoRing(pool: PinnedPool, chunkMiB: number, slots: number, method: FileReadMethod = "default"): Promise<void> {
  const chunk = chunkMiB * 2 ** 20;
  const file = await openFileReads(path, slots, method);
  const ring = Array.from({ length: slots }, () => pool.alloc(chunk));
  let next = 0;
  try {
    // Settled, all of them, before the finally frees the ring (a read in flight writes into it).
    const readers = await Promise.allSettled(ring.map(async (buffer) => {
      for (let at = (next += chunk) - chunk; at < size; at = (next += chunk) - chunk) {
        const length = Math.min(chunk, size - at);
        for (let done = 0; done < length;) {
          const bytesRead = await file.read(buffer.address() + done, length - done, at + done);
          if (bytesRead === 0) throw new Error("short read");
          done += bytesRead;
        }
      }
    }));
    for (const reader of readers) if (reader.status === "rejected") throw reader.reason;
  } finally {
    for (const buffer of ring) buffer.dispose();
    await file.close();
  }
}

/** A variant's shape: `16 MiB × 64 slots, 16 reads`, and ` + 64 MiB windows` for a hybrid. */
const shape = (s: { chunkMiB: number; slots: number; reads?: number; windowMiB?: number }) =>
  `${String(s.chunkMiB).padStart(4)} MiB × ${String(s.slots).padEnd(3)} slots${s.reads === undefined ? "" : `, ${String(s.reads).padEnd(2)} reads`}${s.windowMiB === undefined ? "" : ` + ${s.windowMiB} MiB windows`}`;

/** Best of `rounds` runs, in GB/s (10^9 bytes per second). */
async function gbps(run: () => Promise<void> | void, rounds = 3): Promise<number> {
  let best = Infinity;
  for (let i = 0; i < rounds; i++) {
    const start = performance.now();
    await run();
    best = Math.min(best, performance.now() - start);
  }
  return size / (best * 1e6);
}

try {
  await readBlocks(() => {});
  using context = CudaContext.create({ device: 0 });
  using device = context.alloc(size);
  using pinned = context.allocPinned(block);
  fillBlock(pinned.bytes(), 99);
  fillBlock(scratch, 98);
  const everyBlock = (copy: (at: number, length: number) => void) => () => {
    for (let at = 0; at < size; at += block) copy(at, Math.min(block, size - at));
  };
  const pageable = await gbps(everyBlock((at, length) => device.write(scratch.subarray(0, length), { offset: at })));
  const pinnedCopy = await gbps(everyBlock((at, length) => device.copyFrom(pinned, { dstOffset: at, byteLength: length })));
  const naive = await gbps(() => readBlocks((bytes, at) => device.write(bytes, { offset: at })));

  using pool = new PinnedPool(context);
  // At the C anchor's thread counts: how the runtime's reads scale with the reads in flight.
  const readsOnly: { slots: number; method: FileReadMethod; gbps: number }[] = [];
  for (const slots of [8, 16, 32, 64]) readsOnly.push({ slots, method: "default", gbps: await gbps(() => readIntoRing(pool, 16, slots)) });
  // The runtime's own node:fs file handles, for comparison (Bun's default; on Deno and Node, not).
  readsOnly.push({ slots: 16, method: "handles", gbps: await gbps(() => readIntoRing(pool, 16, 16, "handles")) });
  const cReads = readAnchor === undefined ? [] : execFileSync(readAnchor, [path, String(16 * 2 ** 20), "8", "16", "32", "64"], { encoding: "utf8" })
    .trim().split("\n").map((line) => JSON.parse(line) as { threads: number; pinned: boolean; gbps: number });
  // The C upload anchor allocates its own device copy of the file: run it before gpuffi's variants hold the GPU's.
  const cUploads = uploadAnchor === undefined ? [] : execFileSync(uploadAnchor, [path, String(8 * 2 ** 20), "8", "16", "32"], { encoding: "utf8" })
    .trim().split("\n").map((line) => JSON.parse(line) as { threads: number; gbps: number });
  const streamed: { strategy: UploadStrategy; chunkMiB: number; slots: number; reads?: number; windowMiB?: number; mappedShare?: number; gbps: number }[] = [];
  // Staged: reads dominate (page cache → pinned memory runs at a few GB/s per thread), so
  // throughput grows with the reads in flight: on the H100 host (Bun) 18 GB/s with 32 MiB × 4
  // slots, 23 with 8, 35 with 16 MiB × 16, 37 with 16 MiB × 32. Mapped: no reads; registering
  // (pinning the page-cache pages) a window overlaps the copy of the one before, and it peaked
  // at 25 GB/s (64 MiB × 4, 256 MiB × 2): pinning costs more per byte than reading. Hybrid: a
  // staged ring (chunk MiB × slots) and mapped windows (the 4th number, MiB) at once, sharing the
  // chunks; on the H200 host staged peaked at 32.6 GB/s and mapped at 19–22: do they add up?
  // Reads in flight: the default (the slots, at most the cores), and as many as the slots.
  const variants: [UploadStrategy, number, number, ("slots" | undefined)?, number?][] = [
    ["staged", 32, 8], ["staged", 16, 16], ["staged", 16, 32], ["staged", 16, 32, "slots"], ["staged", 8, 32], ["staged", 8, 32, "slots"],
    ["staged", 8, 64], ["staged", 16, 64], ["staged", 16, 64, "slots"], ["staged", 4, 64], ["staged", 4, 128],
    ["mapped", 64, 4], ["mapped", 256, 2],
    ["hybrid", 16, 64, undefined, 64], ["hybrid", 16, 32, undefined, 64], ["hybrid", 16, 64, undefined, 256],
  ];
  const upload = (strategy: UploadStrategy, chunkMiB: number, slots: number, reads?: "slots", windowMiB?: number) =>
    uploadFileRanges(context, path, [{ offset: 0, byteLength: size, target: device }], {
      strategy,
      chunkBytes: chunkMiB * 2 ** 20,
      slots,
      ...(strategy === "mapped" ? {} : { pool }),
      ...(reads === undefined ? {} : { reads: slots }),
      ...(windowMiB === undefined ? {} : { windowChunks: windowMiB / chunkMiB }),
    });
  for (const [strategy, chunkMiB, slots, reads, windowMiB] of variants) {
    const figure = await gbps(async () => void await upload(strategy, chunkMiB, slots, reads, windowMiB));
    // Each variant must deliver the file: one more run into a cleared buffer, then every block
    // compared (a hybrid's two sides meet anywhere).
    device.fill(0);
    const stats: UploadStats = await upload(strategy, chunkMiB, slots, reads, windowMiB);
    streamed.push({ strategy, chunkMiB, slots, ...(stats.reads === undefined ? {} : { reads: stats.reads }), ...(windowMiB === undefined ? {} : { windowMiB, mappedShare: stats.mappedBytes! / size }), gbps: figure });
    for (let at = 0; at < size; at += block) {
      const length = Math.min(block, size - at);
      fillBlock(scratch, at / block + 1);
      const got = device.read(new Uint8Array(length), { offset: at });
      if (!Buffer.from(got).equals(Buffer.from(scratch.subarray(0, length)))) throw new Error(`${strategy} ${shape({ chunkMiB, slots, windowMiB })}: device data differs from the file at block ${at / block}`);
    }
  }

  const best = streamed.reduce((a, b) => (b.gbps > a.gbps ? b : a));
  const figures = {
    runtime: `${runtimeName} ${runtimeVersion()}`,
    device: context.info().name,
    bytes: size,
    pageableGBps: pageable,
    pinnedGBps: pinnedCopy,
    naiveFileGBps: naive,
    readsOnlyGBps: Math.max(...readsOnly.map((r) => r.gbps)),
    readsOnly,
    cReads,
    cUploads,
    streamed,
    bestStreamedGBps: best.gbps,
    speedupVsPageable: best.gbps / pageable,
    goalMet: best.gbps >= 5 * pageable,
    bestCUploadGBps: cUploads.length === 0 ? undefined : Math.max(...cUploads.map((r) => r.gbps)),
  };
  const lines = [
    `upload bench: ${(size / 1e9).toFixed(2)} GB file (page cache), ${figures.device}, ${figures.runtime}`,
    `  pageable cudaMemcpy (DeviceBuffer.write)      ${pageable.toFixed(2)} GB/s`,
    `  pinned cudaMemcpy (copyFrom pinned)           ${pinnedCopy.toFixed(2)} GB/s`,
    `  naive file → JS buffer → pageable write       ${naive.toFixed(2)} GB/s`,
    ...readsOnly.map((r) => `  reads only (openFileReads${r.method === "handles" ? " through node:fs handles" : ""} → pinned, 16 MiB × ${r.slots}, no copies) ${r.gbps.toFixed(2)} GB/s (${(r.gbps / pageable).toFixed(1)}× pageable)`),
    ...cReads.map((r) => `  reads only from C, ${r.threads} threads × 16 MiB preads → ${r.pinned ? "pinned" : "plain"} memory  ${r.gbps.toFixed(2)} GB/s (${(r.gbps / pageable).toFixed(1)}× pageable)`),
    ...cUploads.map((r) => `  staged upload from C, ${r.threads} threads × 2 × 8 MiB pinned, a stream each  ${r.gbps.toFixed(2)} GB/s (${(r.gbps / pageable).toFixed(1)}× pageable)`),
    ...streamed.map((s) => `  ${s.strategy} upload ${shape(s)}     ${s.gbps.toFixed(2)} GB/s (${(s.gbps / pageable).toFixed(1)}× pageable${s.mappedShare === undefined ? "" : `, ${(100 * s.mappedShare).toFixed(0)}% mapped`})`),
    `  goal ≥ 5× pageable: ${figures.goalMet ? "met" : "NOT met"} (best ${figures.speedupVsPageable.toFixed(1)}×: ${best.strategy} ${shape(best)})` +
      (figures.bestCUploadGBps === undefined ? "" : `; C's best staged upload ${(figures.bestCUploadGBps / pageable).toFixed(1)}× pageable, gpuffi's best ${(best.gbps / figures.bestCUploadGBps).toFixed(2)}× of it`),
  ];
  console.log(lines.join("\n"));
  console.log(`#bench ${JSON.stringify(figures)}`);
  if (outDir !== undefined) await writeFile(join(outDir, `upload-${process.env.GPUFFI_BENCH_LABEL ?? "gpu"}-${runtimeName}.json`), JSON.stringify(figures, null, 2)); // label: see scripts/gpu-run.sh
} finally {
  await rm(path, { force: true });
}
