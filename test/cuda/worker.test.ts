// One Worker per GPU: a Worker loads gpuffi's CUDA layer on its own thread and (with a GPU)
// binds device 0 through its own CudaContext.
import assert from "node:assert/strict";
import { test } from "../harness.ts";
import { probeGpu } from "./gpu-probe.ts";
import { runGpuWorker } from "./worker.ts";

const gpu = probeGpu();

test("a Worker loads the CUDA layer and reports back", async () => {
  const report = await runGpuWorker();
  assert.equal(report.error, undefined, report.error);
  if (!gpu.available) assert.equal(report.ran, false);
}, { skip: gpu.runtime ? undefined : gpu.reason, timeout: 60_000 });

test("a Worker bound to device 0 round-trips data on its own context", async () => {
  const report = await runGpuWorker();
  assert.equal(report.error, undefined, report.error);
  assert.equal(report.ran, true, report.reason);
  assert.match(report.uuid!, /^GPU-[0-9a-f]{8}-/);
  assert.equal(report.mismatch, -1);
}, { skip: gpu.reason, timeout: 60_000 });
