// Kernels compiled with NVRTC and launched through gpuffi, against C and PyTorch in the same run:
//  - launch overhead: host ns per Kernel.launch of an empty kernel with no parameters and with
//    three (float *, float, unsigned int), grid 1, block 1, on a non-blocking stream, over bursts
//    of 100 launches with the stream drained between bursts (median burst), so the launch queue
//    never fills and the host cost is what is timed; against cuLaunchKernel from C on the same
//    CUBIN (bench/c/kernel_launch.cu; goal ≤ 1.3× on Bun and Deno, ≤ 2× on Node) in 5 rounds
//    taken in turn with gpuffi's, beside the runtime's bare FFI call of cuLaunchKernel (the
//    runtime's own floor), and against PyTorch's smallest kernels (bench/torch_launch.py: fill_, add_, x + 1), where torch imports;
//  - bandwidth: scale_add (y = a·x + y) on 1 GiB arrays (2^28 floats each), CUDA events around
//    10 launches, best of 5, as GB/s of the 12 bytes per element moved; goal ≥ 0.97× of C's;
//  - compile: NVRTC's time for the benchmark's source, and the same source from the disk cache.
//   nvcc -O2 -o .cache/bench/kernel_launch bench/c/kernel_launch.cu -lcuda
//   bun bench/kernels.bench.ts RESULTS_DIR [path/to/kernel_launch]   (also: deno run -A …, node --import tsx …)
// Prints a table and a `#bench {json}` line; writes kernels-<runtime>.md and .json into RESULTS_DIR.
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { runtimeName, runtimeVersion } from "../src/ffi/index.ts";
import { type CudaStream, CudaContext, type Kernel, KernelModule, clearMemoryCache, compile } from "../src/cuda/index.ts";
import { driverLibrary } from "../src/cuda/device.ts";
import { benchSource } from "../test/cuda/kernels/kernel-sources.ts";
import { rawEmptyLaunch } from "./raw-ffi.ts";

const resultsDir = process.argv[2];
if (!resultsDir) throw new Error("usage: bench/kernels.bench.ts RESULTS_DIR [path/to/kernel_launch] (build it: nvcc -O2 -o .cache/bench/kernel_launch bench/c/kernel_launch.cu -lcuda)");
const anchorPath = process.argv[3] ?? process.env.GPUFFI_KERNEL_ANCHOR;
const bursts = 201;
const calls = 100;
const n = 2 ** 28;

using context = CudaContext.create({ device: 0 });
using stream = context.createStream({ nonBlocking: true });

// Compile time: a fresh compile, then the same source from a fresh disk cache (as a second process would).
const cacheDir = mkdtempSync(join(tmpdir(), "gpuffi-bench-kernels-"));
let t = performance.now();
const compiled = compile(benchSource, { context, cacheDir });
const compileMs = performance.now() - t;
clearMemoryCache();
t = performance.now();
const fromDisk = compile(benchSource, { context, cacheDir });
const diskMs = performance.now() - t;
if (fromDisk.cached !== "disk") throw new Error(`expected a disk cache hit, got ${fromDisk.cached}`);
rmSync(cacheDir, { recursive: true, force: true });

using module = KernelModule.load(context, compiled);
using empty = module.kernel("empty", []);
using emptyArgs = module.kernel("empty_args", ["ptr", "f32", "u32"]);
using scaleAdd = module.kernel("scale_add", ["ptr", "ptr", "f32", "u64"]);
using x = context.alloc(n * 4);
using y = context.alloc(n * 4);
x.fill(0);
y.fill(0);

function median(values: number[]): number {
  return [...values].sort((a, b) => a - b)[values.length >> 1]!;
}

/** Host ns per launch: median over bursts of `calls` launches, the stream drained between bursts. */
function launchNs(launch: () => void, s: CudaStream): number {
  for (let i = 0; i < 1000; i++) launch();
  s.synchronize();
  const times: number[] = [];
  for (let b = 0; b < bursts; b++) {
    const start = performance.now();
    for (let i = 0; i < calls; i++) launch();
    times.push(((performance.now() - start) * 1e6) / calls);
    s.synchronize();
  }
  return median(times);
}

// The image the C anchor loads: the same machine code as gpuffi's.
const image = join(tmpdir(), `gpuffi-bench-${process.pid}.${compiled.kind}`);
writeFileSync(image, compiled.image);
// Removed when the benchmark ends, however it ends.
using _image = { [Symbol.dispose]: () => rmSync(image, { force: true }) };
const anchor = (elements: number) => JSON.parse(execFileSync(anchorPath!, [image, String(elements), String(bursts), String(calls)], { encoding: "utf8" })) as { emptyNs: number; emptyArgsNs: number; scaleAddGBps: number | null };

// Launch cost moves with the machine's state by more than the differences timed here, so the
// sides take turns: a round of gpuffi, the bare FFI call and the C anchor (its own process), each
// side's figure the median of its rounds.
const one = { grid: 1, block: 1, stream };
const rawEmpty = await rawEmptyLaunch(driverLibrary().path, empty.function, stream.handle);
const rounds = 5;
const launches = { gpuffiEmpty: [] as number[], gpuffiEmptyArgs: [] as number[], rawEmpty: [] as number[], cEmpty: [] as number[], cEmptyArgs: [] as number[] };
for (let round = 0; round < rounds; round++) {
  launches.gpuffiEmpty.push(launchNs(() => empty.launch(one), stream));
  launches.rawEmpty.push(launchNs(rawEmpty, stream));
  launches.gpuffiEmptyArgs.push(launchNs(() => emptyArgs.launch(one, x, 2, 1), stream));
  if (anchorPath) {
    const c = anchor(0);
    launches.cEmpty.push(c.emptyNs);
    launches.cEmptyArgs.push(c.emptyArgsNs);
  }
}
const emptyNs = median(launches.gpuffiEmpty);
const emptyArgsNs = median(launches.gpuffiEmptyArgs);
const rawEmptyNs = median(launches.rawEmpty);

function scaleAddGBps(kernel: Kernel<readonly ["ptr", "ptr", "f32", "u64"]>): number {
  const config = { grid: n / 256, block: 256, stream };
  for (let i = 0; i < 3; i++) kernel.launch(config, x, y, 2, n);
  let best = Infinity;
  for (let r = 0; r < 5; r++) {
    using start = stream.record();
    for (let i = 0; i < 10; i++) kernel.launch(config, x, y, 2, n);
    using end = stream.record();
    end.synchronize();
    best = Math.min(best, end.elapsedSince(start));
  }
  return (12 * n * 10) / (best * 1e6);
}
const gbps = scaleAddGBps(scaleAdd);

const c = anchorPath ? { emptyNs: median(launches.cEmpty), emptyArgsNs: median(launches.cEmptyArgs), scaleAddGBps: anchor(n).scaleAddGBps! } : undefined;

const torchScript = fileURLToPath(new URL("./torch_launch.py", import.meta.url));
const torchRun = spawnSync(process.env.PYTHON ?? "python3", [torchScript, JSON.stringify({ bursts, calls })], { encoding: "utf8" });
const torch = torchRun.status === 0 ? JSON.parse(torchRun.stdout.trim().split("\n").at(-1)!) as { torch: string; fillUs: number; addUs: number; addOutOfPlaceUs: number } : undefined;
const torchReason = torch ? undefined : (torchRun.error?.message ?? torchRun.stderr.trim().split("\n").at(-1) ?? "python3 failed");

const figures = {
  runtime: runtimeVersion(),
  device: context.info().name,
  nvrtc: compiled.nvrtcVersion,
  arch: compiled.arch,
  kind: compiled.kind,
  compileMs,
  diskCacheMs: diskMs,
  launch: { bursts, calls, rounds, gpuffiEmptyNs: emptyNs, gpuffiEmptyArgsNs: emptyArgsNs, rawEmptyNs, cEmptyNs: c?.emptyNs, cEmptyArgsNs: c?.emptyArgsNs, everyRound: launches },
  bandwidth: { bytesPerArray: n * 4, gpuffiGBps: gbps, cGBps: c?.scaleAddGBps },
  torch: torch ?? { skipped: torchReason },
};
const ratio = (a: number, b: number | undefined) => (b === undefined ? "—" : `${(a / b).toFixed(2)}×`);
const us1 = (ns: number) => (ns / 1000).toFixed(2);
const us = (ns: number | undefined) => (ns === undefined ? "—" : `${(ns / 1000).toFixed(2)} µs`);
const table = `## Kernels through gpuffi — ${figures.runtime} on ${figures.device}

NVRTC ${figures.nvrtc}, ${figures.kind.toUpperCase()} for ${figures.arch}: compile ${compileMs.toFixed(0)} ms, from the disk cache ${diskMs.toFixed(1)} ms.

| launch (host time per launch: median of ${rounds} interleaved rounds, each the median of ${bursts} bursts of ${calls}) | gpuffi | C cuLaunchKernel | gpuffi / C |
|---|---|---|---|
| empty kernel, no parameters | ${us(emptyNs)} | ${us(c?.emptyNs)} | ${ratio(emptyNs, c?.emptyNs)} |
| the same through ${runtimeName}'s bare FFI (handles as integers, made once) | ${us(rawEmptyNs)} | | ${ratio(rawEmptyNs, c?.emptyNs)} |
| empty kernel, (float *, float, unsigned) | ${us(emptyArgsNs)} | ${us(c?.emptyArgsNs)} | ${ratio(emptyArgsNs, c?.emptyArgsNs)} |
${torch ? `| PyTorch ${torch.torch}: x.fill_(1) / x.add_(1) / x + 1 on one element | | | ${torch.fillUs.toFixed(2)} / ${torch.addUs.toFixed(2)} / ${torch.addOutOfPlaceUs.toFixed(2)} µs |` : `| PyTorch | skipped: ${torchReason} | | |`}

Every round, µs — gpuffi empty: ${launches.gpuffiEmpty.map(us1).join(", ")}; bare FFI: ${launches.rawEmpty.map(us1).join(", ")}; C empty: ${launches.cEmpty.map(us1).join(", ") || "—"}

| bandwidth | gpuffi | C | gpuffi / C |
|---|---|---|---|
| scale_add y = a·x + y, 2 × 1 GiB in, 1 GiB out | ${gbps.toFixed(0)} GB/s | ${c ? `${c.scaleAddGBps.toFixed(0)} GB/s` : "—"} | ${ratio(gbps, c?.scaleAddGBps)} |
`;
console.log(table);
console.log(`#bench ${JSON.stringify(figures)}`);
mkdirSync(resultsDir, { recursive: true });
writeFileSync(join(resultsDir, `kernels-${runtimeName}.md`), table);
writeFileSync(join(resultsDir, `kernels-${runtimeName}.json`), `${JSON.stringify(figures, null, 2)}\n`);
