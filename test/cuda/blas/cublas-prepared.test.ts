// Prepared GEMMs (cuBLASLt) without a GPU: the fake libcublasLt of cublas-fake.ts checks every
// descriptor, attribute size, layout against the transposes, workspace and alignment the chosen
// algorithm needs, and computes the reference GEMM. Checks the struct layouts of cublasLt.h, the
// numerics of every mode, layout and transpose, that a run is one cublasLtMatmul on the handle's
// stream and workspace, reuse on other matrices, every validation error, and disposal; and
// prepared GEMMs captured into CUDA graphs (the fake computes a GEMM as work of its stream).
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { DisposedError } from "../../../src/ffi/index.ts";
import {
  CublasError,
  CublasHandle,
  CudaArgumentError,
  CudaCompatibilityError,
  CudaContext,
  CudaStateError,
  Matrix,
  cublasLtMatmulAlgo,
  cublasLtMatmulHeuristicResult,
  cublasLtSpecFor,
} from "../../../src/cuda/index.ts";
import { fakeCublas, fakeCublasSetup as setup } from "./cublas-fake.ts";
import { checkCapturedGemm, checkGemm, checkPreparedReuse, modes } from "./cublas-scenarios.ts";

const offsets = (type: { layout: readonly { name: string; offset: number }[] }) => Object.fromEntries(type.layout.map((f) => [f.name, f.offset]));

test("cublasLt.h structs: cublasLtMatmulAlgo_t is 64 bytes; cublasLtMatmulHeuristicResult_t 96, fields at 0, 64, 72, 76, 80", () => {
  assert.deepEqual([cublasLtMatmulAlgo.size, cublasLtMatmulAlgo.alignment, offsets(cublasLtMatmulAlgo)], [64, 8, { data: 0 }]);
  assert.deepEqual([cublasLtMatmulHeuristicResult.size, cublasLtMatmulHeuristicResult.alignment], [96, 8]);
  assert.deepEqual(offsets(cublasLtMatmulHeuristicResult), { algo: 0, workspaceSize: 64, state: 72, wavesCount: 76, reserved: 80 });
});

test("prepared GEMMs on the reference fake: every mode, layout, transpose and padded ld, alpha/beta, size 1", () => {
  using env = setup();
  using handle = CublasHandle.create(env.context, { api: env.cublas.api, ltApi: env.cublas.ltApi, workspace: 1 << 16 });
  for (const mode of modes) {
    for (const [transA, transB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
      for (const layoutC of ["row", "col"] as const) {
        checkGemm(env.context, handle, { m: 17, n: 9, k: 5, mode, transA, transB, layoutA: transB ? "col" : "row", layoutB: "row", layoutC, pad: 3, via: "prepared" });
      }
    }
    checkGemm(env.context, handle, { m: 1, n: 1, k: 1, mode, via: "prepared" });
    checkGemm(env.context, handle, { m: 6, n: 4, k: 33, mode, alpha: 0.5, beta: -2, layoutC: "col", via: "prepared" });
    checkPreparedReuse(env.context, handle, mode, 7, 5, 3);
  }
  const creates = env.cublas.calls.filter((c) => c.name === "cublasLtMatmulDescCreate");
  assert.ok(creates.some((c) => c.args[1] === 77) && creates.some((c) => c.args[1] === 68), "tf32 prepares CUBLAS_COMPUTE_32F_FAST_TF32, the others CUBLAS_COMPUTE_32F");
  assert.equal(env.cublas.calls.filter((c) => c.name === "cublasLtCreate").length, 1, "one cuBLASLt handle per cuBLAS handle");
  assert.equal(env.cublas.lt.descriptors.size, 0, "every descriptor destroyed");
});

/** Two streams, a handle on the first with a 1 MiB workspace, a 4×4 A holding 0…15 and a 4×4 C; disposing it disposes the context, which frees them all. */
function squareSetup() {
  const env = setup();
  const stream = env.context.createStream();
  const other = env.context.createStream();
  const handle = CublasHandle.create(env.context, { api: env.cublas.api, ltApi: env.cublas.ltApi, stream, workspace: 1 << 20 });
  const a = Matrix.alloc(env.context, 4, 4);
  const c = Matrix.alloc(env.context, 4, 4);
  a.upload(Float32Array.from({ length: 16 }, (_, i) => i));
  return { ...env, stream, other, handle, a, c };
}

test("run() is one cublasLtMatmul on the handle's current stream and workspace, and nothing else", () => {
  using env = squareSetup();
  const { stream, other, handle, a, c } = env;
  using gemm = handle.prepareGemm(a, a, c, { alpha: 2 });
  assert.equal(gemm.workspaceBytes, 4096, "the fake's algorithm asks for 4096 bytes of the 1 MiB allowed");
  const log = env.cuda.calls;
  const before = log.length;
  for (let i = 0; i < 3; i++) gemm.run();
  assert.deepEqual(log.slice(before), ["cublasLtMatmul", "cublasLtMatmul", "cublasLtMatmul"]);
  const args = () => env.cublas.calls.at(-1)!.args;
  const workspace = handle.workspace!;
  assert.deepEqual(args().slice(13), [workspace.ptr, workspace.byteLength, stream.handle]);
  handle.setStream(other);
  gemm.run();
  assert.equal(args()[15], other.handle, "the stream set after preparing");
  handle.setStream(undefined);
  gemm.run();
  assert.equal(args()[15], 0, "the legacy default stream");
  const square = (m: Float32Array) => Float32Array.from(m, (_, i) => Array.from({ length: 4 }, (_, p) => m[Math.floor(i / 4) * 4 + p]! * m[p * 4 + (i % 4)]!).reduce((x, y) => x + y));
  const expected = square(a.download());
  assert.deepEqual(c.download(), expected.map((v) => 2 * v));
  gemm.alpha = 1;
  gemm.beta = 1;
  gemm.run();
  assert.deepEqual(c.download(), expected.map((v) => 3 * v), "alpha and beta take effect on the next run");
  assert.deepEqual([gemm.alpha, gemm.beta], [1, 1]);
  assert.throws(() => (gemm.beta = "1" as never), /beta must be a number, got string/);
});

test("run(a, b, c) on other matrices: same description and device, aligned as prepared; checked before any call", () => {
  using env = setup();
  using handle = CublasHandle.create(env.context, { api: env.cublas.api, ltApi: env.cublas.ltApi });
  const buffer = env.context.alloc(1 << 16);
  const at = (byteOffset: number, options: { ld?: number; dtype?: "f16" } = {}) => Matrix.on(buffer, { rows: 4, cols: 4, byteOffset, ...options });
  using gemm = handle.prepareGemm(at(0), at(1024), at(2048));
  const matmuls = () => env.cublas.calls.filter((c) => c.name === "cublasLtMatmul").length;
  gemm.run(at(4096), at(8192), at(12288));
  assert.equal(matmuls(), 1);
  assert.throws(() => gemm.run(at(4096, { ld: 5 })), (e: Error) => e instanceof CudaArgumentError && /A is 4×4 f32 row-major \(ld 5\), but the GEMM was prepared for 4×4 f32 row-major \(ld 4\)/.test(e.message));
  assert.throws(() => gemm.run(undefined, at(4096, { dtype: "f16" })), /B is 4×4 f16 row-major \(ld 4\), but the GEMM was prepared for 4×4 f32/);
  assert.throws(() => gemm.run(undefined, undefined, at(4096).t()), /C is 4×4 f32 col-major/);
  assert.throws(() => gemm.run(undefined, undefined, at(4100)), /C starts at 0x[0-9a-f]+, not \d+-byte aligned as the C the algorithm was chosen for/);
  assert.throws(() => gemm.run({} as Matrix), /A must be a Matrix/);
  assert.equal(matmuls(), 1, "no call for a rejected run");
  // A prepared GEMM on a 4-byte-aligned view takes other 4-byte-aligned views.
  using unaligned = handle.prepareGemm(at(4), at(1024), at(2048));
  unaligned.run(at(4100), at(8192), at(12288));
  assert.equal(matmuls(), 2);
});

test("preparation: workspace bounds the algorithm, shapes and types are checked first, failures are typed and free what was made", () => {
  using env = setup();
  using handle = CublasHandle.create(env.context, { api: env.cublas.api, ltApi: env.cublas.ltApi });
  const buffer = env.context.alloc(1 << 16);
  const m = (rows: number, cols: number, dtype: "f32" | "f16" | "bf16" = "f32", byteOffset = 0) => Matrix.on(buffer, { rows, cols, dtype, byteOffset });
  const ltCalls = () => env.cublas.calls.filter((c) => c.name.startsWith("cublasLt")).length;
  assert.throws(() => handle.prepareGemm(m(3, 4), m(5, 6), m(3, 6)), /CublasHandle.prepareGemm: A is 3×4 and B is 5×6: A's columns \(4\) must equal B's rows \(5\)/);
  assert.throws(() => handle.prepareGemm(m(4, 4, "f16"), m(4, 4, "bf16"), m(4, 4)), /A is f16 but B is bf16/);
  assert.throws(() => handle.prepareGemm(m(4, 4, "f16"), m(4, 4, "f16"), m(4, 4, "bf16")), /the output must be f16 or f32/);
  assert.throws(() => handle.prepareGemm(m(4, 4), m(4, 4), m(4, 4), { alpha: "2" as never }), /alpha must be a number, got string/);
  assert.throws(() => handle.prepareGemm(m(0, 4), m(4, 4), m(0, 4)), /is an empty product, which cuBLASLt does not take/);
  assert.equal(ltCalls(), 0, "nothing reaches libcublasLt");

  // No workspace on the handle: the algorithm may use none.
  using none = handle.prepareGemm(m(4, 4), m(4, 4), m(4, 4, "f32", 4096));
  assert.equal(none.workspaceBytes, 0);
  none.run();
  handle.setWorkspace(1 << 20);
  using big = handle.prepareGemm(m(4, 4), m(4, 4), m(4, 4, "f32", 4096));
  assert.equal(big.workspaceBytes, 4096);
  handle.setWorkspace(1024);
  assert.throws(() => big.run(), (e: Error) => e instanceof CudaStateError && /chosen with a 4096-byte workspace, the handle now has 1024 bytes; prepare the GEMM again/.test(e.message));
  none.run();

  const live = env.cublas.lt.descriptors.size;
  env.cublas.lt.algorithms = 0;
  assert.throws(() => handle.prepareGemm(m(4, 4), m(4, 4), m(4, 4, "f32", 4096)), (e: Error) => e instanceof CublasError && e.statusName === "CUBLAS_STATUS_NOT_SUPPORTED" && /no algorithm for a 1024-byte workspace.*C \(4×4 f32 row-major/.test(e.message));
  env.cublas.lt.algorithms = 1;
  env.cublas.failNext.set("cublasLtMatrixLayoutCreate", 3);
  assert.throws(() => handle.prepareGemm(m(4, 4), m(4, 4), m(4, 4, "f32", 4096)), (e: Error) => e instanceof CublasError && e.statusName === "CUBLAS_STATUS_ALLOC_FAILED" && /cublasLtMatrixLayoutCreate failed/.test(e.message));
  env.cublas.failNext.set("cublasLtMatmul", 13);
  assert.throws(() => none.run(), (e: Error) => e instanceof CublasError && /cublasLtMatmul failed: CUBLAS_STATUS_EXECUTION_FAILED.*cuBLAS call: NN m=4 n=4 k=4/.test(e.message));
  assert.equal(env.cublas.lt.descriptors.size, live, "a failed preparation destroys what it made");
});

test("disposal: a prepared GEMM destroys its descriptors; the cuBLASLt handle goes with the cuBLAS handle; disposed ones throw", () => {
  const env = setup();
  const handle = CublasHandle.create(env.context, { api: env.cublas.api, ltApi: env.cublas.ltApi });
  const a = Matrix.alloc(env.context, 4, 4);
  const c = Matrix.alloc(env.context, 4, 4);
  const first = handle.prepareGemm(a, a, c);
  const second = handle.prepareGemm(a, a, c);
  assert.equal(env.cublas.lt.descriptors.size, 8, "a matmul descriptor and three layouts each; the preference is gone after preparing");
  first.dispose();
  assert.equal(env.cublas.lt.descriptors.size, 4);
  assert.throws(() => first.run(), DisposedError);
  assert.throws(() => (first.alpha = 3), DisposedError);
  assert.throws(() => first.dispose(), DisposedError);
  handle.dispose();
  assert.equal(env.cublas.lt.handles.size, 0, "cublasLtDestroy with the handle");
  assert.throws(() => second.run(), DisposedError);
  env.context.dispose();
  assert.equal(env.cublas.lt.descriptors.size, 0, "the context destroys what is left");
  assert.ok(second.disposed);
  assert.equal(env.cuda.live.size, 0);
});

test("libcublasLt: found beside libcublas first, of libcublas's major version, checked against libcudart", () => {
  const spec = cublasLtSpecFor(12, "/opt/cuda/lib64/libcublas.so.12");
  assert.deepEqual(spec.sonames, ["libcublasLt.so.12", "libcublasLt.so.13", "libcublasLt.so"]);
  assert.equal(spec.envVar, "GPUFFI_CUBLASLT");
  assert.deepEqual([...spec.searchDirs!({})][0], { dir: "/opt/cuda/lib64", source: "beside /opt/cuda/lib64/libcublas.so.12" });
  using env = setup();
  const old = fakeCublas({ version: [12, 9, 1] });
  using handle = CublasHandle.create(env.context, { api: env.cublas.api, ltApi: old.ltApi });
  using a = Matrix.alloc(env.context, 2, 2);
  assert.throws(() => handle.prepareGemm(a, a, a), (e: Error) => e instanceof CudaCompatibilityError && /libcublasLt 12\.9\.1 \(\/fake\/libcublasLt\.so\.13\) belongs to CUDA 12, but the loaded libcudart is CUDA 13\.0 .*GPUFFI_CUBLASLT/.test(e.message));
  assert.equal(old.lt.handles.size, 0);
});

test("captured GEMMs (prepared, and gemm/gemmEx in CudaGraph.capture) in every mode: computed only by launches, from the operands' contents then, alpha as captured, N launches add N products", () => {
  using env = setup();
  using stream = env.context.createStream({ nonBlocking: true });
  using handle = CublasHandle.create(env.context, { api: env.cublas.api, ltApi: env.cublas.ltApi, stream, workspace: 1 << 16 });
  for (const mode of modes) {
    for (const via of ["prepared", "call"] as const) {
      checkCapturedGemm(env.context, handle, mode, 17, 9, 5, via);
      checkCapturedGemm(env.context, handle, mode, 1, 1, 1, via);
    }
  }
  assert.equal(env.cuda.graphExecs.size, 0);
});

test("capture() records one cublasLtMatmul on the given stream; a launch is one cudaGraphLaunch, deferred like other stream work", () => {
  using env = squareSetup();
  const { stream, other, handle, a, c } = env;
  using gemm = handle.prepareGemm(a, a, c);
  const log = env.cuda.calls;
  let before = log.length;
  using graph = gemm.capture(other);
  assert.deepEqual(log.slice(before), ["cudaStreamBeginCapture", "cublasLtMatmul", "cudaStreamEndCapture", "cudaGraphInstantiateWithFlags", "cudaGraphDestroy"]);
  assert.equal(env.cublas.calls.at(-1)!.args[15], other.handle, "cublasLtMatmul on the capture stream");
  assert.equal(graph.stream, other);
  before = log.length;
  graph.launch();
  graph.launch(stream);
  assert.deepEqual(log.slice(before), ["cudaGraphLaunch", "cudaGraphLaunch"]);
  assert.deepEqual(c.download({ stream }), (() => {
    gemm.run();
    return c.download({ stream });
  })(), "the graph computes what run() computes");

  using deferred = setup({ deferred: true });
  using lazyStream = deferred.context.createStream();
  using lazyHandle = CublasHandle.create(deferred.context, { api: deferred.cublas.api, ltApi: deferred.cublas.ltApi, stream: lazyStream });
  using x = Matrix.alloc(deferred.context, 2, 2);
  using y = Matrix.alloc(deferred.context, 2, 2);
  x.upload(new Float32Array([1, 2, 3, 4]), { stream: lazyStream });
  using lazy = lazyHandle.prepareGemm(x, x, y).capture();
  lazy.launch();
  assert.equal(deferred.cuda.queuedOperations, 1, "the launch waits in the stream's queue");
  assert.deepEqual([...y.download({ stream: lazyStream })], [7, 10, 15, 22]);
});

test("capture() refuses the legacy default stream and other devices' streams; a launch is refused once a matrix or the workspace is gone", () => {
  using env = setup();
  using stream = env.context.createStream();
  using handle = CublasHandle.create(env.context, { api: env.cublas.api, ltApi: env.cublas.ltApi, workspace: 1 << 16 });
  using a = Matrix.alloc(env.context, 4, 4);
  const c = Matrix.alloc(env.context, 4, 4);
  const gemm = handle.prepareGemm(a, a, c);
  assert.throws(() => gemm.capture(), (e: Error) => e instanceof CudaArgumentError && /PreparedGemm\.capture: the handle queues on the legacy default stream, which CUDA cannot capture; pass a stream, or give the handle one/.test(e.message));
  assert.throws(() => gemm.capture(null as never), /PreparedGemm\.capture: expected a CudaStream, got null/);
  using gpu1 = CudaContext.create({ runtime: env.cuda.runtime, device: 1 });
  using foreign = gpu1.createStream();
  assert.throws(() => gemm.capture(foreign), /PreparedGemm\.capture: the stream belongs to device 1, but the operation is on device 0/);
  assert.ok(!env.cuda.calls.includes("cudaStreamBeginCapture"));

  using graph = gemm.capture(stream);
  gemm.dispose();
  graph.launch();
  handle.setWorkspace(1 << 17);
  assert.throws(() => graph.launch(), (e: Error) => e instanceof CudaStateError && /uses a DeviceBuffer that is disposed/.test(e.message), "the owned workspace was freed by setWorkspace");
  using prepared = handle.prepareGemm(a, a, c);
  using again = prepared.capture(stream);
  again.launch();
  c.dispose();
  assert.throws(() => again.launch(), CudaStateError);
  assert.throws(() => gemm.capture(stream), DisposedError);
  assert.equal(env.cuda.graphExecs.size, 2, "no graph left by the failed capture");
});
