// DevicePool on a GPU machine, against C measured in the same run:
//  - a pool hit (alloc + dispose of a 4 KiB PooledDeviceBuffer on one stream) vs C
//    cudaMallocAsync+cudaFreeAsync and cudaMalloc+cudaFree pairs;
//  - a transformer-like allocation trace (bench/pool-trace.ts) on real memory: peak reserved /
//    peak live requested bytes, with a segment per size and with expandable segments.
//   nvcc -O2 -o .cache/bench/pool_anchor bench/c/pool_anchor.cu
//   <runtime> bench/pool.bench.ts path/to/pool_anchor     (or GPUFFI_POOL_ANCHOR=path)
// Prints a table, then a `#bench {json}` line for scripts.
import { execFileSync } from "node:child_process";
import process from "node:process";
import { bench, do_not_optimize, run } from "mitata";
import { runtimeVersion } from "../src/ffi/index.ts";
import { CudaContext, DevicePool } from "../src/cuda/index.ts";
import { replay, transformerTrace } from "./pool-trace.ts";

const anchorPath = process.argv[2] ?? process.env.GPUFFI_POOL_ANCHOR;
if (!anchorPath) throw new Error("usage: bench/pool.bench.ts path/to/pool_anchor (build it: nvcc -O2 -o .cache/bench/pool_anchor bench/c/pool_anchor.cu)");
const bytes = 4096;
const c = JSON.parse(execFileSync(anchorPath, [String(bytes)], { encoding: "utf8" })) as { mallocAsyncFreeAsyncUs: number; mallocFreeUs: number };

using context = CudaContext.create({ device: 0 });
using stream = context.createStream();
using pool = new DevicePool(context);
pool.alloc(bytes, { stream }).dispose();

bench("DevicePool hit: alloc + dispose", () => {
  const buffer = pool.alloc(bytes, { stream });
  do_not_optimize(buffer.ptr);
  buffer.dispose();
});
const { benchmarks } = await run({ format: "quiet" });
const mitataUs = benchmarks[0]!.runs[0]!.stats!.p50 / 1000;

/** The C anchor's loop shape, timed by hand: the like-for-like comparison. */
function loopUs(n = 200_000): number {
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const start = performance.now();
    for (let i = 0; i < n; i++) pool.alloc(bytes, { stream }).dispose();
    best = Math.min(best, ((performance.now() - start) * 1000) / n);
  }
  return best;
}
const hitUs = loopUs();

/**
 * The runtime's own floor on this host, in the same loop shape: an object with as many fields
 * as a pooled buffer (an address among them) made and dropped per iteration: its allocation
 * and its share of the young generation's collections, which a pool hit cannot go below.
 */
function floorUs(n = 200_000): number {
  const sink: object[] = [{}, {}];
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      sink[i & 1] = { kind: "PooledDeviceBuffer", release: loopUs, registered: false, context, state: undefined, owner: pool, ptr: 0x7f00_0000_0000 + i * 256, byteLength: bytes, pool, block: stream };
    }
    best = Math.min(best, ((performance.now() - start) * 1000) / n);
  }
  return best;
}
const floor = floorUs();

/** The trace replayed on a fresh pool: peak reserved / peak live, and how long the replay took. */
function trace(expandableSegments: boolean) {
  using tracePool = new DevicePool(context, { expandableSegments });
  const start = performance.now();
  const { peakLiveBytes } = replay(transformerTrace(), (n) => tracePool.alloc(n, { stream }), (buffer) => buffer.dispose());
  const ms = performance.now() - start;
  const stats = tracePool.stats();
  const figures = { expandableSegments, peakLiveBytes, peakReservedBytes: stats.peakReservedBytes, ratio: stats.peakReservedBytes / peakLiveBytes, goal: 1.15, hits: stats.hits, misses: stats.misses, ms };
  const summary = tracePool.toString();
  tracePool.trim();
  return { figures, summary };
}
const traces = [trace(false), trace(true)];
const figures = {
  runtime: runtimeVersion(),
  device: context.info().name,
  hit: { gpuffiLoopUs: hitUs, gpuffiMitataUs: mitataUs, runtimeFloorUs: floor, cMallocAsyncFreeAsyncUs: c.mallocAsyncFreeAsyncUs, cMallocFreeUs: c.mallocFreeUs, goalUs: 0.25 },
  traces: traces.map((t) => t.figures),
  bytes,
};
const f = (x: number) => x.toFixed(3);
console.log(`${figures.runtime} on ${figures.device}
| what (${bytes} B) | µs per alloc+free |
|---|---|
| DevicePool hit (loop; mitata p50) | ${f(hitUs)}; ${f(mitataUs)} (goal ≤ 0.25) |
| the runtime's floor: an object of a buffer's 10 fields made and dropped (loop) | ${f(floor)} |
| C cudaMallocAsync + cudaFreeAsync | ${f(c.mallocAsyncFreeAsyncUs)} (${(c.mallocAsyncFreeAsyncUs / hitUs).toFixed(1)}× the pool hit) |
| C cudaMalloc + cudaFree | ${c.mallocFreeUs.toFixed(1)} (${(c.mallocFreeUs / hitUs).toFixed(0)}× the pool hit) |
${traces.map(({ figures: t, summary }) => `transformer trace, ${t.expandableSegments ? "expandable segments" : "a segment per size"}: peak reserved ${(t.peakReservedBytes / 2 ** 20).toFixed(0)} MiB / peak live ${(t.peakLiveBytes / 2 ** 20).toFixed(0)} MiB = ${f(t.ratio)} (goal ≤ 1.15); ${t.hits} hits, ${t.misses} misses; replay ${t.ms.toFixed(0)} ms\n  ${summary}`).join("\n")}`);
console.log(`#bench ${JSON.stringify(figures)}`);
