// cuBLAS GEMM through gpuffi against PyTorch's torch.matmul on the same GPU in the same run:
//  - throughput for n ∈ {64, 256, 1024, 4096, 8192} × {fp32, tf32, fp16, bf16}: CUDA events
//    around `iters` back-to-back n×n GEMMs on one stream, median of repeats, as TFLOP/s; goal
//    ratio ≥ 0.99 of PyTorch's for n ≥ 1024;
//  - issue time at n = 64: host µs to enqueue one GEMM while the GPU keeps up; goal ≤ half of
//    torch.matmul's. Timed over bursts of 100 calls with the stream drained between bursts: a
//    64³ GEMM runs longer on the GPU than it takes to enqueue, so longer loops fill the launch
//    queue and time the GPU instead (2000-call loops read 13 µs per call). gpuffi's gemmEx, its
//    prepared cuBLASLt GEMM and that GEMM captured into a CUDA graph (each call a graph launch
//    that replays it) take turns burst by burst; the C anchor (bench/c/gemm_issue.cu) times
//    cublasGemmEx, cublasLtMatmul and the launch of a graph that captured it the same way in its
//    own process, in the same run.
// Random operands in [-1, 1), row-major, output in the operand type (as torch.matmul gives).
//   nvcc -O2 -std=c++20 -o .cache/bench/gemm_issue bench/c/gemm_issue.cu -lcublas -lcublasLt
//   bun bench/gemm.bench.ts RESULTS_DIR [path/to/gemm_issue]      (also: deno run -A …, node --import tsx …)
// Prints a table and a `#bench {json}` line; writes gemm-<runtime>.md and .json into RESULTS_DIR.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { runtimeName, runtimeVersion } from "../src/ffi/index.ts";
import { CublasHandle, CudaContext, Matrix, type MatrixDtype } from "../src/cuda/index.ts";

type Mode = "fp32" | "tf32" | "fp16" | "bf16";
const modes: readonly Mode[] = ["fp32", "tf32", "fp16", "bf16"];
const sizes = [64, 256, 1024, 4096, 8192];
const repeats = 7;
const issue = { n: 64, calls: 100, bursts: 51, modes };
const dtypeOf: Record<Mode, MatrixDtype> = { fp32: "f32", tf32: "f32", fp16: "f16", bf16: "bf16" };

/** Enough GEMMs per timing that it spans well over the event resolution (about 100 ms of work at H100 speed, 10–2000 calls). */
function itersFor(mode: Mode, n: number): number {
  const flopsPerSecond = mode === "fp32" ? 50e12 : mode === "tf32" ? 400e12 : 700e12;
  return Math.max(10, Math.min(2000, Math.round((0.1 * flopsPerSecond) / (2 * n ** 3))));
}

const resultsDir = process.argv[2];
if (!resultsDir) throw new Error("usage: bench/gemm.bench.ts RESULTS_DIR [path/to/gemm_issue] (build it: nvcc -O2 -std=c++20 -o .cache/bench/gemm_issue bench/c/gemm_issue.cu -lcublas -lcublasLt)");
const anchorPath = process.argv[3] ?? process.env.GPUFFI_GEMM_ANCHOR;

let seed = (Date.now() ^ 0x5bd1e995) >>> 0 || 1;
function randomValues(count: number): Float32Array {
  const out = new Float32Array(count);
  let x = seed;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x >>> 0) / 2 ** 31 - 1;
  }
  seed = x >>> 0 || 1;
  return out;
}

using context = CudaContext.create();
using stream = context.createStream({ nonBlocking: true });
// NVIDIA's recommended workspace on Hopper; PyTorch gives cuBLAS one of this size too.
using handle = CublasHandle.create(context, { stream, workspace: 32 * 2 ** 20 });
using start = context.createEvent();
using end = context.createEvent();

function operands(mode: Mode, n: number): [Matrix, Matrix, Matrix] {
  const dtype = dtypeOf[mode];
  handle.setMathMode(mode === "tf32" ? "tf32" : "default");
  const make = (random: boolean) => {
    const matrix = Matrix.alloc(context, n, n, { dtype });
    if (random) matrix.upload(randomValues(n * n));
    return matrix;
  };
  return [make(true), make(true), make(false)];
}

function gemmCall(mode: Mode, a: Matrix, b: Matrix, c: Matrix): () => void {
  return mode === "fp32" || mode === "tf32" ? () => handle.gemm(a, b, c) : () => handle.gemmEx(a, b, c);
}

const median = (values: number[]) => [...values].sort((x, y) => x - y)[values.length >> 1]!;

/** Median over `repeats` of the GPU ms per GEMM, CUDA events around `iters` back-to-back calls. */
function gpuMs(call: () => void, iters: number): number {
  for (let i = 0; i < 3; i++) call();
  stream.synchronize();
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) {
    start.record(stream);
    for (let i = 0; i < iters; i++) call();
    end.record(stream);
    end.synchronize();
    times.push(end.elapsedSince(start) / iters);
  }
  return median(times);
}

function throughput(mode: Mode, n: number, iters: number) {
  const [a, b, c] = operands(mode, n);
  try {
    using prepared = handle.prepareGemm(a, b, c);
    const tflops = (ms: number) => (2 * n ** 3) / (ms * 1e-3) / 1e12;
    const ms = gpuMs(gemmCall(mode, a, b, c), iters);
    const preparedMs = gpuMs(() => prepared.run(), iters);
    return { mode, n, iters, ms, tflops: tflops(ms), preparedMs, preparedTflops: tflops(preparedMs) };
  } finally {
    for (const m of [a, b, c]) m.dispose();
  }
}

/** Median host µs per call of each of `calls`, over bursts that take turns, the stream drained after each. */
function issueTimes(calls: readonly (() => void)[]): number[] {
  for (const call of calls) call();
  stream.synchronize();
  const times = calls.map((): number[] => []);
  for (let r = 0; r < issue.bursts; r++) {
    calls.forEach((call, which) => {
      const t0 = performance.now();
      for (let i = 0; i < issue.calls; i++) call();
      times[which]!.push(((performance.now() - t0) * 1000) / issue.calls);
      stream.synchronize();
    });
  }
  return times.map(median);
}

function issueTime(mode: Mode) {
  const [a, b, c] = operands(mode, issue.n);
  try {
    using prepared = handle.prepareGemm(a, b, c);
    using captured = prepared.capture();
    const [gemmExUs, preparedUs, capturedUs] = issueTimes([() => handle.gemmEx(a, b, c), () => prepared.run(), () => captured.launch()]);
    return { mode, n: issue.n, calls: issue.calls, gemmExUs: gemmExUs!, preparedUs: preparedUs!, capturedUs: capturedUs! };
  } finally {
    for (const m of [a, b, c]) m.dispose();
  }
}

interface AnchorResult {
  cublas: string;
  modes: { mode: Mode; gemmExUs: number; ltUs: number; graphUs: number }[];
}

interface TorchResult {
  torch: string;
  cuda: string;
  device: string;
  cases: { mode: Mode; n: number; ms: number; tflops: number }[];
  issue: { mode: Mode; matmulUs: number; matmulOutUs: number }[];
}

const cases = modes.flatMap((mode) => sizes.map((n) => ({ mode, n, iters: itersFor(mode, n) })));
const ours = cases.map(({ mode, n, iters }) => throughput(mode, n, iters));
const oursIssue = modes.map(issueTime);

// The C anchor and PyTorch run in processes of their own on the same GPU, after gpuffi's matrices are freed.
let anchor: AnchorResult | undefined;
let anchorError: string | undefined = anchorPath ? undefined : "no anchor given (bench/gemm.bench.ts RESULTS_DIR path/to/gemm_issue)";
if (anchorPath) {
  try {
    anchor = JSON.parse(execFileSync(anchorPath, [String(issue.n), String(issue.calls), String(issue.bursts)], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] })) as AnchorResult;
  } catch (error) {
    anchorError = (error as Error).message.split("\n")[0];
  }
}
let torch: TorchResult | undefined;
let torchError: string | undefined;
try {
  const script = fileURLToPath(new URL("./torch_matmul.py", import.meta.url));
  const output = execFileSync("python3", [script, JSON.stringify({ cases, repeats, issue })], { encoding: "utf8", maxBuffer: 1 << 24, stdio: ["ignore", "pipe", "inherit"] });
  torch = JSON.parse(output.trim().split("\n").at(-1)!) as TorchResult;
} catch (error) {
  torchError = (error as Error).message.split("\n")[0];
}

const rows = ours.map((o, i) => {
  const t = torch?.cases[i];
  return { ...o, torchTflops: t?.tflops, ratio: t ? o.tflops / t.tflops : undefined, preparedRatio: t ? o.preparedTflops / t.tflops : undefined, goal: o.n >= 1024 ? 0.99 : undefined };
});
const issueRows = oursIssue.map((o) => {
  const t = torch?.issue.find((row) => row.mode === o.mode);
  const c = anchor?.modes.find((row) => row.mode === o.mode);
  return {
    ...o,
    cGemmExUs: c?.gemmExUs,
    cLtUs: c?.ltUs,
    cGraphUs: c?.graphUs,
    torchMatmulUs: t?.matmulUs,
    torchMatmulOutUs: t?.matmulOutUs,
    ratio: t ? o.preparedUs / t.matmulUs : undefined,
    capturedRatio: t ? o.capturedUs / t.matmulUs : undefined,
    gemmExRatio: t ? o.gemmExUs / t.matmulUs : undefined,
    cLtRatio: t && c ? c.ltUs / t.matmulUs : undefined,
    overC: c ? o.preparedUs / c.ltUs : undefined,
    capturedOverC: c ? o.capturedUs / c.graphUs : undefined,
    goal: 0.5,
  };
});
const info = context.info();
const figures = {
  date: new Date().toISOString(),
  runtime: runtimeVersion(),
  device: info.name,
  cudaRuntime: `${context.runtimeVersion.major}.${context.runtimeVersion.minor}`,
  cublas: `${handle.version.major}.${handle.version.minor}.${handle.version.patch}`,
  cublasPath: handle.api.path,
  anchor: anchor ? { cublas: anchor.cublas, path: anchorPath } : { error: anchorError },
  torch: torch ? { version: torch.torch, cuda: torch.cuda, device: torch.device } : { error: torchError },
  command: `${runtimeName} bench/gemm.bench.ts ${resultsDir}${anchorPath ? ` ${anchorPath}` : ""}`,
  method: `CUDA events around back-to-back n×n GEMMs on one stream, median of ${repeats}; torch.matmul(a, b, out=c) timed the same way`,
  throughput: rows,
  issue: issueRows,
};

const f = (x: number | undefined, digits = 1) => (x === undefined ? "–" : x.toFixed(digits));
const cLtRatios = issueRows.flatMap((r) => (r.cLtRatio === undefined ? [] : [r.cLtRatio]));
const cLtRange = cLtRatios.length === 0 ? undefined : `${f(Math.min(...cLtRatios), 2)}–${f(Math.max(...cLtRatios), 2)}×`;
const cLtAboveGoal = cLtRatios.length > 0 && Math.min(...cLtRatios) > 0.5;
const verdict = (ratio: number | undefined, goal: number | undefined, atLeast: boolean) =>
  ratio === undefined || goal === undefined ? "" : (atLeast ? ratio >= goal : ratio <= goal) ? " ✓" : " ✗";
const markdown = `# cuBLAS GEMM through gpuffi vs torch.matmul

${figures.date} · ${figures.runtime} · ${figures.device} · CUDA ${figures.cudaRuntime} · cuBLAS ${figures.cublas} · PyTorch ${torch ? `${torch.torch} (CUDA ${torch.cuda})` : `not measured: ${torchError}`}
Command: \`${figures.command}\`. ${figures.method}.

gpuffi: \`gemm\` (fp32, tf32) or \`gemmEx\` (fp16, bf16); prepared: \`prepareGemm\` once, then \`run()\` (cublasLtMatmul).

| mode | n | iters | gpuffi TFLOP/s | gpuffi prepared TFLOP/s | PyTorch TFLOP/s | ratio (goal ≥ 0.99 for n ≥ 1024) | prepared ratio |
|---|---:|---:|---:|---:|---:|---:|---:|
${rows.map((r) => `| ${r.mode} | ${r.n} | ${r.iters} | ${f(r.tflops)} | ${f(r.preparedTflops)} | ${f(r.torchTflops)} | ${f(r.ratio, 3)}${verdict(r.ratio, r.goal, true)} | ${f(r.preparedRatio, 3)}${verdict(r.preparedRatio, r.goal, true)} |`).join("\n")}

Issue time, n = ${issue.n} (host µs per enqueued GEMM, median of ${issue.bursts} bursts of ${issue.calls}, the stream drained between bursts). gpuffi gemmEx: \`handle.gemmEx(a, b, c)\`; gpuffi prepared: \`handle.prepareGemm(a, b, c)\` once, then \`run()\`: one eager cublasLtMatmul per call, cuBLAS's host path included. **gpuffi captured replays a CUDA graph**: \`prepared.capture()\` once, then \`graph.launch()\`, one cudaGraphLaunch per call of a graph that captured that cublasLtMatmul, so cuBLAS's host path ran once, at the capture; torch.matmul is eager. C: ${anchor ? `bench/c/gemm_issue.cu (cuBLAS ${anchor.cublas}) in its own process: cublasGemmEx, cublasLtMatmul with its algorithm chosen once, and cudaGraphLaunch of a graph that captured that cublasLtMatmul` : `not measured (${anchorError})`}. The goal (≤ 0.5 of torch.matmul(a, b)) is judged for both gpuffi paths${cLtRange ? `: C's own eager cublasLtMatmul takes ${cLtRange} of torch.matmul's time here${cLtAboveGoal ? ", so no eager cuBLAS call, from any language, reaches 0.5" : ""}` : ""}.

| mode | gpuffi gemmEx | gpuffi prepared | gpuffi captured (graph launch) | C cublasGemmEx | C cublasLtMatmul | C graph launch | torch.matmul(a, b) | torch.matmul(a, b, out=c) | gemmEx / torch.matmul | prepared / torch.matmul (goal ≤ 0.5) | captured / torch.matmul (goal ≤ 0.5) | C cublasLtMatmul / torch.matmul | prepared / C cublasLtMatmul | captured / C graph launch |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${issueRows.map((r) => `| ${r.mode} | ${f(r.gemmExUs, 2)} | ${f(r.preparedUs, 2)} | ${f(r.capturedUs, 2)} | ${f(r.cGemmExUs, 2)} | ${f(r.cLtUs, 2)} | ${f(r.cGraphUs, 2)} | ${f(r.torchMatmulUs, 2)} | ${f(r.torchMatmulOutUs, 2)} | ${f(r.gemmExRatio, 3)} | ${f(r.ratio, 3)}${verdict(r.ratio, r.goal, false)} | ${f(r.capturedRatio, 3)}${verdict(r.capturedRatio, r.goal, false)} | ${f(r.cLtRatio, 3)} | ${f(r.overC, 3)} | ${f(r.capturedOverC, 3)} |`).join("\n")}
`;
console.log(markdown);
console.log(`#bench ${JSON.stringify(figures)}`);
mkdirSync(resultsDir, { recursive: true });
// Named after the machine: scripts/gpu-run.sh sets GPUFFI_BENCH_LABEL (e.g. h200).
const label = process.env.GPUFFI_BENCH_LABEL ?? "gpu";
writeFileSync(join(resultsDir, `gemm-${label}-${runtimeName}.md`), markdown);
writeFileSync(join(resultsDir, `gemm-${label}-${runtimeName}.json`), `${JSON.stringify(figures, null, 2)}\n`);
