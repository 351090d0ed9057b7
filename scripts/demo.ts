// `npm run demo`: what gpuffi can do on this machine: the runtime and its FFI, which native
// libraries were found where, and what the CUDA runtime says about the driver and devices.
// Runs on any runtime: `bun scripts/demo.ts`, `deno run -A scripts/demo.ts`, `npm run demo`.
import { readFileSync } from "node:fs";
import { LibraryNotFoundError, Out, capabilities, loadLibrary, runtimeVersion } from "../src/index.ts";
import { cudartSpec, cudartSymbols } from "../src/cuda/cudart-library.ts";

const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
const cudaVersion = (v: number) => (v === 0 ? "none" : `${Math.floor(v / 1000)}.${(v % 1000) / 10}`);

console.log(`gpuffi ${version} — capability report\n`);
console.log(`runtime        ${runtimeVersion()}`);
console.log(`structs        ${capabilities.structShim ? "by value through the TinyCC shim (bun:ffi has none)" : "by value, natively"}`);
console.log(`async calls    ${capabilities.nonblockingCalls ? "off the JS thread (nonblocking FFI)" : "none in this runtime's FFI: gpuffi polls with back-off"}`);

try {
  const cudart = loadLibrary(cudartSpec, cudartSymbols);
  const s = cudart.symbols;
  const runtime = Out.i32();
  const driver = Out.i32();
  s.cudaRuntimeGetVersion(runtime.buffer);
  s.cudaDriverGetVersion(driver.buffer);
  console.log(`libcudart      ${cudart.path} (CUDA runtime ${cudaVersion(runtime.value)})`);
  console.log(`CUDA driver    ${driver.value === 0 ? "none installed" : `supports CUDA ${cudaVersion(driver.value)}`}`);
  const count = Out.i32();
  const status = s.cudaGetDeviceCount(count.buffer);
  console.log(status === 0 ? `GPUs           ${count.value}` : `GPUs           none: ${s.cudaGetErrorName(status)} — ${s.cudaGetErrorString(status)}`);
} catch (error) {
  if (!(error instanceof LibraryNotFoundError)) throw error;
  console.log(`libcudart      not found\n${error.message.replace(/^/gm, "               ")}`);
}
