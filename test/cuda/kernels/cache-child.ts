// Run by gpu.test.ts as a second (and third) process: compiles the source in argv[2] for device
// 0 with the disk cache of $GPUFFI_CACHE, and prints where it came from and how long it took.
import process from "node:process";
import { CudaContext, KernelModule } from "../../../src/cuda/index.ts";

const source = process.argv[2]!;
using context = CudaContext.create();
const start = performance.now();
using module = KernelModule.compile(context, source);
const ms = performance.now() - start;
module.function("tagged");
console.log(JSON.stringify({ cached: module.compiled.cached ?? "compiled", ms }));
