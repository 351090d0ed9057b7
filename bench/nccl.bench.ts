// NCCL all-reduce bus bandwidth through gpuffi, every GPU of the machine in one process
// (ncclCommInitAll, one group call per all-reduce), against PyTorch's torch.distributed.all_reduce
// (NCCL backend, one process per GPU, bench/nccl_torch.py) in the same run:
//  - sizes 8 B … 1 GiB in powers of two, float32 and bfloat16, sum, in place (as torch's);
//  - time per all-reduce as nccl-tests measures it: host clock over `iters` back-to-back
//    all-reduces, every stream synchronized at the end, the median of `repeats`;
//  - algbw = bytes / time, busbw = algbw · 2(n−1)/n (nccl-tests' all-reduce bus bandwidth);
//  - goal: gpuffi's busbw ≥ 0.95 of PyTorch's where the transfer dominates (≥ 32 MiB). Below
//    that the per-call cost shows, and one process issuing for every GPU in turn is not the
//    same design as one process per GPU; those rows are reported, not judged.
// NCCL_NVLS_ENABLE=0 everywhere: gpuffi sets it before it loads libnccl, and passes it to Python.
//   bun bench/nccl.bench.ts RESULTS_DIR [--max-bytes N] [--label NAME]   (also deno run -A …, node --import tsx …)
// Refuses, with exit code 2, on a machine with fewer than two GPUs or without libnccl.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runtimeName, runtimeVersion } from "../src/ffi/index.ts";
import { CudaContext, NcclCommunicator, NcclDataType, cudaRuntime, nccl } from "../src/cuda/index.ts";

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  options: { "max-bytes": { type: "string", default: String(2 ** 30) }, label: { type: "string", default: process.env.GPUFFI_BENCH_LABEL ?? "gpu" } },
  allowPositionals: true,
});
const [resultsDir] = positionals;
const maxBytes = Number(values["max-bytes"]);
if (!resultsDir || !(Number.isInteger(Math.log2(maxBytes)) && maxBytes >= 8)) {
  console.error("usage: bench/nccl.bench.ts RESULTS_DIR [--max-bytes POWER_OF_TWO ≥ 8] [--label NAME]");
  process.exit(2);
}

function refuse(why: string): never {
  console.error(`bench/nccl.bench.ts: ${why}`);
  process.exit(2);
}
let deviceCount = 0;
try {
  deviceCount = cudaRuntime().deviceCount();
} catch (error) {
  refuse(`no usable GPU: ${(error as Error).message.split("\n")[0]}`);
}
if (deviceCount < 2) refuse(`needs 2 or more GPUs; this machine has ${deviceCount}`);
try {
  nccl();
} catch (error) {
  refuse(`libnccl is not available: ${(error as Error).message.split("\n")[0]}`);
}

const dtypes = ["float32", "bfloat16"] as const;
type Dtype = (typeof dtypes)[number];
const sizes = Array.from({ length: Math.log2(maxBytes) - 2 }, (_, i) => 2 ** (i + 3));
const warmup = 5;
const repeats = 5;
const goalFromBytes = 32 * 2 ** 20;
/** Enough all-reduces per timing to span well over the clock's resolution: 1000 at 8 B, 20 from 16 MiB. */
const itersFor = (bytes: number) => Math.max(20, Math.min(1000, Math.floor(2 ** 28 / bytes)));
const cases = dtypes.flatMap((dtype) => sizes.map((bytes) => ({ dtype, bytes, count: bytes / NcclDataType[dtype].bytes, iters: itersFor(bytes) })));
const busFactor = (2 * (deviceCount - 1)) / deviceCount;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

// ----- gpuffi ----------------------------------------------------------------------------------

interface Timing { dtype: Dtype; bytes: number; count: number; iters: number; seconds: number }

function measureGpuffi(): { timings: Timing[]; device: string } {
  const contexts = Array.from({ length: deviceCount }, (_, device) => CudaContext.create({ device }));
  const comms = NcclCommunicator.initAll(contexts);
  const streams = contexts.map((context) => context.createStream({ nonBlocking: true }));
  const buffers = contexts.map((context) => context.alloc(maxBytes));
  try {
    const synchronize = () => streams.forEach((stream) => stream.synchronize());
    buffers.forEach((buffer, i) => buffer.fill(0, { stream: streams[i]! }));
    synchronize();
    const timings = cases.map(({ dtype, bytes, count, iters }) => {
      const allReduce = () => nccl().group(() => comms.forEach((comm, i) => comm.allReduce(buffers[i]!, buffers[i]!, { dtype, count, stream: streams[i]! })));
      for (let i = 0; i < warmup; i++) allReduce();
      synchronize();
      const times: number[] = [];
      for (let r = 0; r < repeats; r++) {
        const start = performance.now();
        for (let i = 0; i < iters; i++) allReduce();
        synchronize();
        times.push((performance.now() - start) / 1000 / iters);
      }
      return { dtype, bytes, count, iters, seconds: median(times) };
    });
    return { timings, device: contexts[0]!.info().name };
  } finally {
    buffers.forEach((buffer) => buffer.dispose());
    NcclCommunicator.disposeAll(comms);
    contexts.forEach((context) => context.dispose());
  }
}

const ours = measureGpuffi();

// ----- PyTorch, after gpuffi's memory and communicators are gone --------------------------------

interface TorchResult { torch: string; cuda: string; nccl: string; ranks: number; timings: Timing[] }
let torch: TorchResult | undefined;
let torchError: string | undefined;
try {
  const script = fileURLToPath(new URL("./nccl_torch.py", import.meta.url));
  const output = execFileSync("python3", [script, JSON.stringify({ ranks: deviceCount, cases, warmup, repeats })], {
    encoding: "utf8",
    maxBuffer: 1 << 24,
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, NCCL_NVLS_ENABLE: "0" },
  });
  const line = output.split("\n").find((l) => l.startsWith("#torch "));
  if (!line) throw new Error("bench/nccl_torch.py printed no #torch line");
  torch = JSON.parse(line.slice(7)) as TorchResult;
} catch (error) {
  torchError = (error as Error).message.split("\n")[0];
}

// ----- report ----------------------------------------------------------------------------------

const gbps = (bytes: number, seconds: number) => bytes / seconds / 1e9;
const rows = ours.timings.map((o) => {
  const t = torch?.timings.find((x) => x.dtype === o.dtype && x.bytes === o.bytes);
  const busbw = gbps(o.bytes, o.seconds) * busFactor;
  const torchBusbw = t ? gbps(t.bytes, t.seconds) * busFactor : undefined;
  return {
    ...o,
    us: o.seconds * 1e6,
    algbw: gbps(o.bytes, o.seconds),
    busbw,
    torchUs: t && t.seconds * 1e6,
    torchBusbw,
    ratio: torchBusbw === undefined ? undefined : busbw / torchBusbw,
    goal: o.bytes >= goalFromBytes ? 0.95 : undefined,
  };
});
const figures = {
  date: new Date().toISOString(),
  runtime: runtimeVersion(),
  device: `${deviceCount} × ${ours.device}`,
  nccl: `${nccl().version.major}.${nccl().version.minor}.${nccl().version.patch}`,
  ncclPath: nccl().path,
  torch: torch ? { version: torch.torch, cuda: torch.cuda, nccl: torch.nccl, ranks: torch.ranks } : { error: torchError },
  command: `${runtimeName} bench/nccl.bench.ts ${process.argv.slice(2).join(" ")}`,
  method: `in-place sum all-reduce over ${deviceCount} GPUs; host clock over iters back-to-back all-reduces, all streams synchronized, median of ${repeats} after ${warmup} warm-ups; busbw = bytes/time · 2(n−1)/n; gpuffi: one process, one NCCL group call per all-reduce; PyTorch: one process per GPU, the slowest rank's time`,
  rows,
};

const f = (x: number | undefined, digits = 1) => (x === undefined ? "–" : x.toFixed(digits));
const size = (bytes: number) => (bytes >= 2 ** 30 ? `${bytes / 2 ** 30} GiB` : bytes >= 2 ** 20 ? `${bytes / 2 ** 20} MiB` : bytes >= 1024 ? `${bytes / 1024} KiB` : `${bytes} B`);
const verdict = (r: (typeof rows)[number]) => (r.ratio === undefined || r.goal === undefined ? "" : r.ratio >= r.goal ? " ✓" : " ✗");
const table = (dtype: Dtype) => `### ${dtype}

| size | count | iters | gpuffi µs | algbw GB/s | busbw GB/s | PyTorch µs | PyTorch busbw GB/s | ratio (goal ≥ 0.95 from ${size(goalFromBytes)}) |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${rows.filter((r) => r.dtype === dtype).map((r) => `| ${size(r.bytes)} | ${r.count} | ${r.iters} | ${f(r.us)} | ${f(r.algbw, 2)} | ${f(r.busbw, 2)} | ${f(r.torchUs)} | ${f(r.torchBusbw, 2)} | ${f(r.ratio, 3)}${verdict(r)} |`).join("\n")}
`;
const markdown = `# NCCL all-reduce bus bandwidth: gpuffi vs torch.distributed.all_reduce

${figures.date} · ${figures.runtime} · ${figures.device} · NCCL ${figures.nccl} · PyTorch ${torch ? `${torch.torch} (CUDA ${torch.cuda}, NCCL ${torch.nccl})` : `not measured: ${torchError}`} · NCCL_NVLS_ENABLE=0
Command: \`${figures.command}\`. Method: ${figures.method}.

${dtypes.map(table).join("\n")}`;
console.log(markdown);
console.log(`#bench ${JSON.stringify(figures)}`);
mkdirSync(resultsDir, { recursive: true });
writeFileSync(join(resultsDir, `nccl-${values.label}-${runtimeName}.md`), markdown);
writeFileSync(join(resultsDir, `nccl-${values.label}-${runtimeName}.json`), `${JSON.stringify(figures, null, 2)}\n`);
