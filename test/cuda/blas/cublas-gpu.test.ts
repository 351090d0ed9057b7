// cuBLAS on a real GPU (skips elsewhere, saying why): the shared scenarios of
// cublas-scenarios.ts against a float64 reference on fresh random data with poisoned outputs,
// for sizes 1, 17, 255, 1000 and 1023 in every mode, transposes and layouts, sub-views of
// pitched matrices (pitch ≠ width), strided and pointer-array batches, and tf32 in effect; the
// single GEMMs both through cuBLAS calls and prepared for cuBLASLt (also reused on other matrices,
// and captured into CUDA graphs that are launched repeatedly on new operand contents).
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { CublasHandle, CudaContext, Matrix, PitchedPool, cudaRuntime, loadCublas } from "../../../src/cuda/index.ts";
import { probeGpu } from "../gpu-probe.ts";
import { randomMatrix } from "./cublas-reference.ts";
import { assertOutsideUntouched, assertProduct, callGemm, checkCapturedGemm, checkGemm, checkPointerBatched, checkPreparedReuse, checkStridedBatched, modeTypes, modes } from "./cublas-scenarios.ts";

function probeCublas(): string | undefined {
  const gpu = probeGpu().reason;
  if (gpu) return gpu;
  try {
    loadCublas(cudaRuntime().runtimeVersion().major);
    return undefined;
  } catch (error) {
    return `libcublas not loadable: ${(error as Error).message.split("\n")[0]}`;
  }
}

const skip = probeCublas();
const slow = { skip, timeout: 600_000 };

for (const mode of modes) {
  for (const via of ["call", "prepared"] as const) {
    const label = via === "prepared" ? `${mode} prepared (cuBLASLt)` : mode;
    test(`${label}: square GEMMs of 1, 17, 255, 1000, 1023 (row-major, poisoned C, float64 reference)`, () => {
      using context = CudaContext.create();
      using stream = context.createStream({ nonBlocking: true });
      using handle = CublasHandle.create(context, { stream, workspace: 32 * 2 ** 20 });
      for (const n of [1, 17, 255, 1000, 1023]) checkGemm(context, handle, { m: n, n, k: n, mode, via });
    }, slow);

    test(`${label}: transposes × layouts × padded ld, alpha/beta, rectangular 255×17 by k = 1000`, () => {
      using context = CudaContext.create();
      using handle = CublasHandle.create(context);
      for (const transA of [false, true]) for (const transB of [false, true]) for (const layoutC of ["row", "col"] as const) {
        checkGemm(context, handle, { m: 255, n: 17, k: 1000, mode, transA, transB, layoutA: transA ? "col" : "row", layoutB: transB ? "row" : "col", layoutC, pad: 5, via });
      }
      checkGemm(context, handle, { m: 17, n: 255, k: 33, mode, alpha: -1.5, beta: 0.5, pad: 1, via });
    }, slow);
  }

  test(`${mode} prepared (cuBLASLt): run on the prepared matrices, on others described alike, with a new alpha (64³ and 255×1000·1000×17)`, () => {
    using context = CudaContext.create();
    using stream = context.createStream({ nonBlocking: true });
    using handle = CublasHandle.create(context, { stream, workspace: 32 * 2 ** 20 });
    checkPreparedReuse(context, handle, mode, 64, 64, 64);
    checkPreparedReuse(context, handle, mode, 255, 17, 1000);
  }, slow);

  test(`${mode} captured (CUDA graphs), prepared and called: launches match the float64 reference, pick up new operand contents, keep alpha, add up with beta = 1 (64³ and 255×1000·1000×17)`, () => {
    using context = CudaContext.create();
    using stream = context.createStream({ nonBlocking: true });
    using handle = CublasHandle.create(context, { stream, workspace: 32 * 2 ** 20 });
    for (const via of ["prepared", "call"] as const) {
      checkCapturedGemm(context, handle, mode, 64, 64, 64, via);
      checkCapturedGemm(context, handle, mode, 255, 17, 1000, via);
    }
  }, slow);

  test(`${mode}: strided batches (packed with gaps, shared B) and pointer-array batches of sub-views`, () => {
    using context = CudaContext.create();
    using stream = context.createStream();
    using handle = CublasHandle.create(context, { stream });
    checkStridedBatched(context, handle, mode, 255, 17, 100, 5);
    checkStridedBatched(context, handle, mode, 64, 33, 1000, 3, { shareB: true, layoutC: "col" });
    checkPointerBatched(context, handle, mode, 100, 17, 255, 4);
  }, slow);
}

test("sub-matrices of pitched matrices (pitch ≠ width, operands 2- or 4-byte aligned) in every mode, called and prepared; nothing outside C is written", () => {
  using context = CudaContext.create();
  using pitched = new PitchedPool(context);
  using handle = CublasHandle.create(context);
  for (const mode of modes) {
    const { input, output } = modeTypes(mode);
    // 1000 f32 columns are 4000 bytes a row, 1000 f16 ones 2000: cudaMallocPitch pads both.
    using bigA = pitched.alloc(300, 1000, { elementType: input });
    using bigB = pitched.alloc(1000, 300, { elementType: input });
    using bigC = pitched.alloc(300, 300, { elementType: output });
    assert.ok(bigA.pitch > bigA.widthBytes || bigC.pitch > bigC.widthBytes, "expected padded pitches");
    const [m, k, n] = [255, 999, 17];
    const a = Matrix.fromPitched(bigA.view(3, m, 1, k));
    const b = Matrix.fromPitched(bigB.view(1, k, 7, n));
    const c = Matrix.fromPitched(bigC.view(11, m, 5, n));
    const hostA = randomMatrix(m, k, input);
    const hostB = randomMatrix(k, n, input);
    a.upload(hostA);
    b.upload(hostB);
    handle.setMathMode(mode === "tf32" ? "tf32" : "default");
    for (const via of ["call", "prepared"] as const) {
      bigC.fill(0xff);
      if (via === "prepared") {
        using gemm = handle.prepareGemm(a, b, c);
        gemm.run();
      } else callGemm(handle, a, b, c);
      const what = `${mode} pitched, ${via}`;
      assertProduct(c.download(), { a: hostA, b: hostB, m, n, k, mode }, what);
      assertOutsideUntouched(bigC, [c], what);
    }
  }
}, slow);

test("tf32 math mode is in effect: fp32 error < 1e-5, tf32 error well above it and < 1e-3 (1024³)", () => {
  using context = CudaContext.create();
  using handle = CublasHandle.create(context);
  const f32 = checkGemm(context, handle, { m: 1024, n: 1024, k: 1024, mode: "f32" });
  const tf32 = checkGemm(context, handle, { m: 1024, n: 1024, k: 1024, mode: "tf32" });
  assert.ok(tf32 > 5 * f32, `tf32 error ${tf32.toExponential(2)} is not above fp32's ${f32.toExponential(2)}: tensor cores were not used`);
}, slow);

test("the loaded libcublas matches the runtime's major version and reports it through both calls", () => {
  using context = CudaContext.create();
  using handle = CublasHandle.create(context);
  assert.equal(handle.version.major, context.runtimeVersion.major);
  assert.equal(Math.floor(handle.versionNumber / 10000), handle.version.major);
  assert.match(handle.api.path, /libcublas/);
}, { skip });
