// The real NVRTC, where one is installed (GPUFFI_NVRTC, the CUDA toolkit, a pip wheel); no GPU
// needed, since these tests name the architecture. They check the binding against the library
// itself: CUBIN and PTX out, lowered names of templates, a compile error's line and log, and
// that every kernel the GPU tests and the benchmark run compiles, the elementwise ones included.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NvrtcCompileError, compile, elementwiseSource, loadNvrtc, nvrtcVersion, supportedArchitectures } from "../../../src/cuda/index.ts";
import { benchSource, elementwiseOps, iotaNames, iotaSource, reverseSource, rowScaleSource } from "./kernel-sources.ts";
import { nvrtcSkipReason } from "./nvrtc-probe.ts";

const skip = nvrtcSkipReason();
const options = { skip, timeout: 120_000 };

test("NVRTC reports a version of 12 or 13 and the architectures it compiles for", () => {
  const api = loadNvrtc();
  assert.match(nvrtcVersion(api), /^1[23]\.\d+$/);
  const archs = supportedArchitectures(api);
  assert.ok(archs.includes(80) && archs.includes(90), `sm_80 and sm_90 in ${archs.join(", ")}`);
}, options);

test("a template through lowered names, to CUBIN (an ELF file) for sm_90 and to PTX for compute_80", () => {
  const cubin = compile(iotaSource, { arch: "sm_90", nameExpressions: [...iotaNames], cache: false });
  assert.equal(cubin.kind, "cubin");
  assert.deepEqual([...cubin.image.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46]);
  assert.equal(cubin.loweredNames.get("iota<float>"), "_Z4iotaIfEvPT_fi");
  assert.equal(cubin.loweredNames.get("iota<__half>"), "_Z4iotaI6__halfEvPT_fi");
  const ptx = compile(iotaSource, { arch: "compute_80", nameExpressions: ["iota<double>"], cache: false });
  const text = new TextDecoder().decode(ptx.image);
  assert.equal(ptx.image.at(-1), 0);
  assert.match(text, /\.target sm_80/);
  assert.match(text, /\.entry _Z4iotaIdEvPT_fi/);
}, options);

test("a compile error names the line, quotes it, and carries NVRTC's log", () => {
  const source = "extern \"C\" __global__ void broken(float *x) {\n  x[0] = 1.0f;\n  x[1] = undefined_name;\n}\n";
  assert.throws(() => compile(source, { arch: "sm_90", cache: false, name: "broken.cu" }), (error: unknown) => {
    assert.ok(error instanceof NvrtcCompileError, String(error));
    assert.equal(error.line, 3);
    assert.match(error.message, /^broken\.cu:3: identifier "undefined_name" is undefined\n {4}3 \| x\[1\] = undefined_name;/);
    assert.match(error.log, /broken\.cu\(3\): error/);
    return true;
  });
}, options);

test("every kernel of the GPU tests and the benchmark compiles, and so does every elementwise operation (fp16/bf16 headers found)", () => {
  for (const source of [rowScaleSource, reverseSource, benchSource]) compile(source, { arch: "sm_80", cache: false });
  for (const [name, op] of Object.entries(elementwiseOps)) {
    const compiled = compile(elementwiseSource(op.expression, op.params), { arch: "sm_90", cache: false, name: `${name}.cu` });
    assert.equal(compiled.kind, "cubin", name);
  }
}, options);
