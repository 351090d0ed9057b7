// libcudart answers version and error queries without a GPU; with one, it counts devices.
import assert from "node:assert/strict";
import { test } from "../harness.ts";
import { Out, loadLibrary } from "../../src/ffi/index.ts";
import { cudartSpec, cudartSymbols } from "../../src/cuda/cudart-library.ts";

let cudart: ReturnType<typeof loadLibrary<typeof cudartSymbols>> | undefined;
let missing = "";
try {
  cudart = loadLibrary(cudartSpec, cudartSymbols);
} catch (error) {
  missing = `libcudart is not installed here (${(error as Error).message.split("\n")[0]})`;
}

test("cudaRuntimeGetVersion works without a GPU", () => {
  const version = Out.i32();
  assert.equal(cudart!.symbols.cudaRuntimeGetVersion(version.buffer), 0);
  assert.ok(version.value >= 12000, `runtime version ${version.value}`);
  assert.match(cudart!.path, /libcudart\.so/);
}, { skip: missing });

test("error names and strings come back as JS strings", () => {
  assert.equal(cudart!.symbols.cudaGetErrorName(0), "cudaSuccess");
  assert.equal(cudart!.symbols.cudaGetErrorName(2), "cudaErrorMemoryAllocation");
  assert.match(cudart!.symbols.cudaGetErrorString(100)!, /no CUDA-capable device/);
}, { skip: missing });

test("cudaGetDeviceCount reports a device count or a clear error code", () => {
  const count = Out.i32();
  const status = cudart!.symbols.cudaGetDeviceCount(count.buffer);
  if (status === 0) assert.ok(count.value >= 1);
  else assert.ok(["cudaErrorNoDevice", "cudaErrorInsufficientDriver"].includes(cudart!.symbols.cudaGetErrorName(status)!), cudart!.symbols.cudaGetErrorName(status)!);
}, { skip: missing });
