// The real libcudart: it loads through the locator, reports its version, and on a machine
// without a usable GPU, creating a context fails with a readable, typed error.
import assert from "node:assert/strict";
import { test } from "../harness.ts";
import { CudaCompatibilityError, CudaContext, CudaError, cudaRuntime } from "../../src/cuda/index.ts";
import { doctorReport } from "../../src/cli/doctor.ts";
import { main } from "../../src/cli/main.ts";
import { probeGpu } from "./gpu-probe.ts";

const gpu = probeGpu();
const noLibrary = gpu.runtime ? undefined : `libcudart is not installed here (${gpu.reason})`;

test("libcudart loads through the locator and reports its version", () => {
  const runtime = cudaRuntime();
  assert.match(runtime.path, /libcudart\.so/);
  assert.ok(runtime.runtimeVersion().major >= 12);
  assert.equal(cudaRuntime(), runtime, "one runtime per thread");
  assert.equal(runtime.errorName(700), "cudaErrorIllegalAddress");
}, { skip: noLibrary });

test("without a usable GPU, a context fails with a typed error that says what is missing", () => {
  assert.throws(() => CudaContext.create(), (e: unknown) => {
    assert.ok(e instanceof CudaCompatibilityError || e instanceof CudaError, String(e));
    assert.match((e as Error).message, /driver|device|GPU/i);
    return true;
  });
}, { skip: noLibrary ?? (gpu.available ? "this machine has a GPU" : undefined) });

test("gpuffi doctor --json has the documented shape and exits 1 without a GPU", async () => {
  const report = doctorReport();
  assert.match(report.runtime, /^(bun|deno|node) /);
  assert.equal(typeof report.cudart.found, "boolean");
  for (const lib of [report.cudart, report.driver.libcuda, report.cublas, report.nccl, report.llama]) {
    assert.equal(typeof lib.found, "boolean");
    if (lib.found) assert.equal(typeof lib.path, "string");
  }
  assert.ok(Array.isArray(report.devices));
  assert.equal(typeof report.verdict.ok, "boolean");
  assert.ok(["full", "minor", "incompatible"].includes(report.verdict.level));
  assert.equal(report.verdict.ok, report.verdict.problems.length === 0);
  const printed: string[] = [];
  const code = await main(["doctor", "--json"], { out: (text) => void printed.push(text), err: (text) => void printed.push(text) });
  const parsed = JSON.parse(printed.join("\n"));
  assert.deepEqual(Object.keys(parsed).sort(), ["cublas", "cudart", "devices", "driver", "llama", "nccl", "nvml", "peers", "runtime", "verdict"]);
  assert.equal(code, parsed.verdict.ok ? 0 : 1);
  if (!gpu.available) {
    assert.equal(code, 1);
    assert.ok(parsed.verdict.problems.length > 0);
  }
});
