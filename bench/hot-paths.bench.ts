// The hot paths of issue 18 measured on the CPU, on a machine without a GPU, each next to an
// anchor in the same process (or the same run):
//  - out-param: CudaRuntime.currentDevice(), with libcudart's cudaRuntimeGetVersion bound in
//    place of cudaGetDevice (the same `cudaError_t f(int *)`, which answers without a device),
//    against the runtime's raw FFI (out-parameter as a typed array and as an address) and a C
//    loop (`ffi_anchor --out-param`, bench/c/ffi_anchor.c, built by scripts/hot-paths.mjs);
//  - pool-hit: DevicePool alloc + dispose of 4 KiB on one stream, on the host-memory libcudart of
//    the tests (a hit makes no CUDA call: this is the whole JS side of bench/pool.bench.ts's loop);
//  - generate: tokens/s through LlamaContext.generate() (greedy; and with sampleOnDevice: true,
//    which on the CPU backend samples in the decode's graph) against a bare loop of llama_decode +
//    llama_sampler_sample through the raw bindings, and one of llama_decode + llama_synchronize
//    (what llama-bench's tg does), on a tiny model with a 32,000-token vocabulary on
//    node-llama-cpp's CPU libraries;
//  - upload: a file in the page cache read into native memory with 32 reads in flight, through
//    one node:fs handle (what staged uploads did) and through openFileReads (what they do now),
//    one read at a time for scale, and a staged upload on the host-memory libcudart (its "device"
//    copies are memcpy on the JS thread): whether the runtime overlaps the reads. On 2 cores
//    (shared) two reads at once is the most this box can show.
//   <runtime> bench/hot-paths.bench.ts [out-param|pool-hit|generate|upload ...] [--anchor PATH]
// Prints one `#bench {json}` line per section.
import { execFileSync } from "node:child_process";
import { open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import * as ffi from "../src/ffi/index.ts";
import { HostMemory, type SymbolTable, nativeView, openLibrary, runtimeVersion } from "../src/ffi/index.ts";
import { CudaContext, CudaRuntime, DevicePool, PinnedPool, loadCudart, uploadFileRanges } from "../src/cuda/index.ts";
import { cudartSymbols } from "../src/cuda/cudart-library.ts";
import { encodeGguf, makeTinyModel } from "../src/formats/index.ts";
import { Batch, Llama, LlamaContext, LlamaModel, LlamaSampler, LlamaThreadpool } from "../src/llama/index.ts";
import { fakeCudart } from "../test/cuda/fake-cudart.ts";
import { rawOutParameter, timeOutParameter } from "./raw-ffi.ts";
import { interleaved } from "./timing.ts";

const { values, positionals } = parseArgs({ args: process.argv.slice(2), options: { anchor: { type: "string" } }, allowPositionals: true });
const sections = positionals.length > 0 ? positionals : ["out-param", "pool-hit", "generate", "upload"];

function report(section: string, figures: object): void {
  console.log(`#bench ${JSON.stringify({ section, runtime: runtimeVersion(), ...figures })}`);
}

// ----- out-param --------------------------------------------------------------------------------

async function outParam(): Promise<void> {
  const api = loadCudart();
  // Every entry bound to cudaGetDevice (whatever its parameter form) calls cudaRuntimeGetVersion.
  const entries = Object.entries(cudartSymbols as SymbolTable);
  const table = Object.fromEntries(entries.map(([key, d]) => [key, (d.symbol ?? key) === "cudaGetDevice" ? { ...d, symbol: "cudaRuntimeGetVersion" } : d]));
  const lib = openLibrary("libcudart", api.path, table);
  const runtime = new CudaRuntime({ ...api, symbols: lib.symbols as never });
  const ns = timeOutParameter(await rawOutParameter(api.path, "cudaRuntimeGetVersion"), () => runtime.currentDevice());
  const c = values.anchor ? (JSON.parse(execFileSync(values.anchor, ["--out-param", api.path, "cudaRuntimeGetVersion"], { encoding: "utf8" })) as { nsPerCall: number }).nsPerCall : undefined;
  report("out-param", { call: "cudaRuntimeGetVersion(int *) as cudaGetDevice", gpuffiNs: ns.gpuffi, rawBufferNs: ns.rawBuffer, rawAddressNs: ns.rawAddress, cNs: c });
}

// ----- pool-hit ---------------------------------------------------------------------------------

function poolHit(): void {
  const fake = fakeCudart();
  using context = CudaContext.create({ runtime: fake.runtime });
  using stream = context.createStream();
  using pool = new DevicePool(context);
  pool.alloc(4096, { stream }).dispose();
  const callsBefore = fake.calls.length;
  // bench/pool.bench.ts's loop: 200,000 hits a round, best of the rounds.
  const ns = interleaved({ hit: () => (pool.alloc(4096, { stream }).dispose(), 1) }, 200_000, 15);
  report("pool-hit", { bytes: 4096, hitUs: ns.hit! / 1000, cudaCallsDuringHits: fake.calls.length - callsBefore, goalUs: 0.25 });
}

// ----- generate ---------------------------------------------------------------------------------

async function generate(): Promise<void> {
  const llama = Llama.shared();
  const path = join(tmpdir(), `gpuffi-hot-paths-${process.pid}.gguf`);
  await writeFile(path, encodeGguf(makeTinyModel({ seed: 3, vocab: 32000, ctx: 512 })));
  const model = await LlamaModel.load(path, { llama });
  // One thread: ggml's workers spin while they wait, and this box has two cores for everything.
  const threadpool = LlamaThreadpool.create({ llama, threads: 1 });
  // A context per variant: a greedy generate() leaves its sampler attached to the sequence (on
  // the device), which the bare loops must not decode through.
  const newContext = () => LlamaContext.create(model, { contextSize: 256, threads: 1, threadpool });
  const [bareContext, deviceContext, cpuContext] = [newContext(), newContext(), newContext()];
  const s = llama.lib.symbols;
  const batch = new Batch(llama, 8);
  const sampler = LlamaSampler.create(model, { temperature: 0 });
  const bos = model.specialTokens.bos;
  const tokens = 128;
  // Each variant is timed in wall time and in this process's CPU time (user + system): with one
  // thread, all of the work is this process's, and CPU time is what other processes on a shared
  // machine disturb least.
  const timed = async (run: () => Promise<number> | number) => {
    const cpu = process.cpuUsage();
    const start = performance.now();
    const produced = await run();
    const { user, system } = process.cpuUsage(cpu);
    return { wallUs: ((performance.now() - start) * 1000) / produced, cpuUs: (user + system) / produced };
  };
  // The bare loops: what any caller of llama.cpp does per token, with nothing of gpuffi's around it.
  const bare = (sample: boolean) => () => {
    bareContext.clearMemory();
    let token = bos;
    for (let i = 0; i < tokens; i++) {
      batch.clear();
      batch.add(token, i, 0, true);
      s.llama_decode(bareContext.ptr, { ...batch.struct, n_tokens: batch.count });
      if (sample) token = s.llama_sampler_sample(sampler.ptr, bareContext.ptr, -1);
      else s.llama_synchronize(bareContext.ptr);
    }
    return tokens;
  };
  const viaGenerate = (context: LlamaContext, sampleOnDevice?: boolean) => async () => {
    context.clearMemory();
    return (await context.generateText([bos], { maxTokens: tokens, temperature: 0, stopAtEndOfGeneration: false, sampleOnDevice })).tokens.length;
  };
  const variants = { decode: bare(false), decodeSample: bare(true), generate: viaGenerate(cpuContext), generateSampledOnDevice: viaGenerate(deviceContext, true) };
  type Variant = keyof typeof variants;
  const samples = Object.fromEntries(Object.keys(variants).map((key) => [key, { wallUs: [] as number[], cpuUs: [] as number[] }])) as Record<Variant, { wallUs: number[]; cpuUs: number[] }>;
  for (let rep = -2; rep < 40; rep++) {
    for (const [key, run] of Object.entries(variants) as [Variant, () => Promise<number> | number][]) {
      const figure = await timed(run);
      if (rep >= 0) {
        samples[key].wallUs.push(figure.wallUs);
        samples[key].cpuUs.push(figure.cpuUs);
      }
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
  const wall = Object.fromEntries(Object.entries(samples).map(([key, x]) => [key, median(x.wallUs)])) as Record<Variant, number>;
  const cpu = Object.fromEntries(Object.entries(samples).map(([key, x]) => [key, median(x.cpuUs)])) as Record<Variant, number>;
  report("generate", {
    model: "tiny llama, 2 layers, n_embd 64, vocab 32000, f32; 1 thread",
    tokens,
    // µs per token, medians of 40 repetitions taken in turns.
    wallUsPerToken: wall,
    cpuUsPerToken: cpu,
    generateVsDecodeSample: { wall: wall.decodeSample / wall.generate, cpu: cpu.decodeSample / cpu.generate },
    // What generate() adds per token to the bare loop that samples the same way, what sampling on
    // the CPU adds to a decode, and what sampling on the device (the CPU backend here) adds: the
    // figures to set against a GPU's time per token (1.47 ms on the H100 at tg128).
    generateOverDecodeSampleUs: { wall: wall.generate - wall.decodeSample, cpu: cpu.generate - cpu.decodeSample },
    cpuSamplingUs: { wall: wall.decodeSample - wall.decode, cpu: cpu.decodeSample - cpu.decode },
    sampledOnDeviceOverDecodeUs: { wall: wall.generateSampledOnDevice - wall.decode, cpu: cpu.generateSampledOnDevice - cpu.decode },
  });
  sampler.dispose();
  batch.dispose();
  for (const context of [bareContext, deviceContext, cpuContext]) context.dispose();
  threadpool.dispose();
  model.dispose();
  await rm(path, { force: true });
}

// ----- upload -----------------------------------------------------------------------------------

async function upload(): Promise<void> {
  const size = 512 * 2 ** 20;
  const path = join(tmpdir(), `gpuffi-hot-paths-${process.pid}.bin`);
  const block = new Uint8Array(64 * 2 ** 20);
  const words = new Uint32Array(block.buffer);
  for (let i = 0; i < words.length; i++) words[i] = Math.imul(i, 2654435761) >>> 0;
  const file = await open(path, "w");
  for (let at = 0; at < size; at += block.length) await file.write(block, 0, block.length, at);
  await file.close();
  const fake = fakeCudart();
  const context = CudaContext.create({ runtime: fake.runtime });
  // Touched once before timing, and the staging ring from a pool, as bench/upload.bench.ts has
  // it: a page's first touch costs far more than its copy here (0.3 GB/s on this VM).
  const device = context.alloc(size);
  device.fill(0);
  const pool = new PinnedPool(context);
  const gbps = async (run: () => Promise<unknown>) => {
    let best = Infinity;
    for (let round = 0; round < 5; round++) {
      const start = performance.now();
      await run();
      best = Math.min(best, performance.now() - start);
    }
    return size / (best * 1e6);
  };
  const chunk = 8 * 2 ** 20;
  const slots = 32;
  using ring = HostMemory.alloc(slots * chunk);
  ring.bytes().fill(1);
  // The file read into native memory, 32 reads in flight: through one node:fs file handle (what
  // staged uploads did), through openFileReads, and one read at a time for scale.
  const inFlight = async (read: (into: number, at: number) => Promise<unknown>, lanes: number) => {
    let next = 0;
    await Promise.all(Array.from({ length: lanes }, async (_, lane) => {
      for (let at; (at = next) < size; ) {
        next += chunk;
        await read(ring.ptr + lane * chunk, at);
      }
    }));
  };
  const view = (ptr: number) => new Uint8Array(nativeView(ptr, chunk));
  const oneHandle = (lanes: number) => async () => {
    const handle = await open(path, "r");
    await inFlight((into, at) => handle.read(view(into), 0, chunk, at), lanes);
    await handle.close();
  };
  const sequential = await gbps(oneHandle(1));
  const oneHandleInFlight = await gbps(oneHandle(slots));
  // (Through the namespace: run against a tree from before openFileReads, the figure is left out.)
  const fileReads = ffi.openFileReads === undefined ? undefined : await gbps(async () => {
    await using reads = await ffi.openFileReads(path, slots);
    await inFlight((into, at) => reads.read(into, chunk, at), slots);
  });
  const staged = await gbps(() => uploadFileRanges(context, path, [{ offset: 0, byteLength: size, target: device }], { strategy: "staged", chunkBytes: chunk, slots, pool }));
  pool.dispose();
  device.dispose();
  context.dispose();
  await rm(path, { force: true });
  report("upload", { bytes: size, chunkBytes: chunk, slots, sequentialReadGBps: sequential, oneHandleReadsGBps: oneHandleInFlight, openFileReadsGBps: fileReads, stagedFakeDeviceGBps: staged });
}

const run: Record<string, () => Promise<void> | void> = { "out-param": outParam, "pool-hit": poolHit, generate, upload };
for (const section of sections) {
  if (!run[section]) throw new Error(`unknown section ${section}: ${Object.keys(run).join(", ")}`);
  await run[section]!();
}
