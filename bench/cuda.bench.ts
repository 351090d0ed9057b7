// The CUDA layer's overhead on a GPU machine, against C measured in the same run:
//  - a trivial runtime call, cudaGetDevice, through CudaRuntime.currentDevice() (the high-level
//    API, with its error check) vs a C loop, and the same call through the runtime's bare FFI;
//  - pinned host↔device copy bandwidth through DeviceBuffer/PinnedHostBuffer.copyFrom vs C
//    cudaMemcpy on the same size.
//   nvcc -O2 -o .cache/bench/cuda_anchor bench/c/cuda_anchor.cu
//   <runtime> bench/cuda.bench.ts [path/to/cuda_anchor]     (or GPUFFI_CUDA_ANCHOR=path)
// Prints a table of figures and ratios, then a `#bench {json}` line for scripts.
import { execFileSync } from "node:child_process";
import process from "node:process";
import { bench, do_not_optimize, run } from "mitata";
import { runtimeVersion } from "../src/ffi/index.ts";
import { CudaContext } from "../src/cuda/index.ts";
import { rawOutParameter, timeOutParameter } from "./raw-ffi.ts";

const anchorPath = process.argv[2] ?? process.env.GPUFFI_CUDA_ANCHOR;
if (!anchorPath) throw new Error("usage: bench/cuda.bench.ts path/to/cuda_anchor (build it: nvcc -O2 -o .cache/bench/cuda_anchor bench/c/cuda_anchor.cu)");
const bytes = 256 * 2 ** 20;
const c = JSON.parse(execFileSync(anchorPath, [String(bytes)], { encoding: "utf8" })) as { getDeviceNs: number; h2dGBps: number; d2hGBps: number };

using context = CudaContext.create({ device: 0 });
const runtime = context.runtime;

bench("CudaRuntime.currentDevice()", () => do_not_optimize(runtime.currentDevice()));
const { benchmarks } = await run({ format: "quiet" });
const mitataNs = benchmarks[0]!.runs[0]!.stats!.p50;

// The C anchor's loop shape, timed by hand (the like-for-like comparison), beside the same call
// through the runtime's own FFI with nothing of gpuffi around it: the out-parameter as a JS typed
// array and as an address in C memory. What the bare call costs above C is this runtime's fixed
// cost, which no library above it can remove.
const loops = timeOutParameter(await rawOutParameter(runtime.path, "cudaGetDevice"), () => runtime.currentDevice());

/** Best of 10 synchronous copies, in GB/s (10^9 bytes per second, as the anchor reports). */
function bandwidth(copy: () => void): number {
  copy();
  let best = Infinity;
  for (let round = 0; round < 10; round++) {
    const start = performance.now();
    copy();
    best = Math.min(best, performance.now() - start);
  }
  return bytes / (best * 1e6);
}

using pinned = context.allocPinned(bytes);
using device = context.alloc(bytes);
pinned.bytes().fill(0x5a);
const figures = {
  runtime: runtimeVersion(),
  device: context.info().name,
  getDevice: { gpuffiMitataNs: mitataNs, gpuffiLoopNs: loops.gpuffi, rawBufferLoopNs: loops.rawBuffer, rawAddressLoopNs: loops.rawAddress, cLoopNs: c.getDeviceNs },
  h2d: { gpuffiGBps: bandwidth(() => device.copyFrom(pinned)), cGBps: c.h2dGBps },
  d2h: { gpuffiGBps: bandwidth(() => pinned.copyFrom(device)), cGBps: c.d2hGBps },
  bytes,
};
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
console.log(`${figures.runtime} on ${figures.device}
getDevice: gpuffi ${figures.getDevice.gpuffiLoopNs.toFixed(1)} ns/call (mitata p50 ${mitataNs.toFixed(1)} ns), C ${c.getDeviceNs.toFixed(1)} ns → ${ratio(figures.getDevice.gpuffiLoopNs, c.getDeviceNs)} of C
getDevice, the runtime's bare FFI: out-parameter as an address ${loops.rawAddress.toFixed(1)} ns (${ratio(loops.rawAddress, c.getDeviceNs)} of C), as a typed array ${loops.rawBuffer.toFixed(1)} ns (${ratio(loops.rawBuffer, c.getDeviceNs)} of C)
pinned H2D ${bytes >> 20} MiB: gpuffi ${figures.h2d.gpuffiGBps.toFixed(2)} GB/s, C ${c.h2dGBps.toFixed(2)} GB/s → ${ratio(figures.h2d.gpuffiGBps, c.h2dGBps)} of C
pinned D2H ${bytes >> 20} MiB: gpuffi ${figures.d2h.gpuffiGBps.toFixed(2)} GB/s, C ${c.d2hGBps.toFixed(2)} GB/s → ${ratio(figures.d2h.gpuffiGBps, c.d2hGBps)} of C`);
console.log(`#bench ${JSON.stringify(figures)}`);
