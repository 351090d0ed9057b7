// The kernel layer without NVRTC or a GPU (kernel-fakes.ts): the options gpuffi hands NVRTC,
// compile errors, lowered names, the compile cache in memory and on disk, the argument block as
// the kernel reads it back, every check a launch makes before cuLaunchKernel, launches on
// streams and in CUDA graphs, elementwise kernels, and disposal.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "../../harness.ts";
import { DisposedError, LibraryNotFoundError, nativeView } from "../../../src/ffi/index.ts";
import { bf16BitsToF32, f16BitsToF32, f32ToF16Bits } from "../../../src/formats/half.ts";
import {
  CudaArgumentError,
  CudaContext,
  CudaError,
  CudaGraph,
  KernelModule,
  NvrtcCompileError,
  PitchedPool,
  clearMemoryCache,
  compile,
  defaultCacheDir,
  elementwise,
  elementwiseSource,
  loadNvrtc,
} from "../../../src/cuda/index.ts";
import { fakeKernelSetup, fakeNvrtc } from "./kernel-fakes.ts";

const scaleSource = `extern "C" __global__ void scale(float *x, float a, unsigned int n) {
  unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] *= a;
}
`;

/** A fresh disk cache directory, removed by dispose. */
function tempCache() {
  const dir = mkdtempSync(join(tmpdir(), "gpuffi-kernels-"));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The scale kernel, defined on the fake driver to do what its source says on the fake's host memory. */
function setupScale(env: ReturnType<typeof fakeKernelSetup>) {
  env.driver.define("scale", ["ptr", "f32", "u32"], (_, x, a, n) => {
    const view = new Float32Array(nativeView(x as number, (n as number) * 4));
    for (let i = 0; i < (n as number); i++) view[i]! *= a as number;
  });
  const module = KernelModule.compile(env.context, scaleSource, { nvrtc: env.nvrtc.api, driver: env.driver.api, cache: false });
  return { module, kernel: module.kernel("scale", ["ptr", "f32", "u32"]) };
}

test("compile: the architecture from the device (sm_90, CUBIN), -std, defines, include path and extra options reach NVRTC in order", () => {
  using env = fakeKernelSetup();
  const compiled = compile(scaleSource, { context: env.context, nvrtc: env.nvrtc.api, cache: false, defines: { BLOCK: 256, FAST: true, SLOW: false }, options: ["-lineinfo"], includePaths: ["/my/include"] });
  assert.equal(compiled.kind, "cubin");
  assert.equal(compiled.arch, "sm_90");
  assert.equal(compiled.nvrtcVersion, "13.0");
  assert.equal(compiled.cached, undefined);
  const options = env.nvrtc.lastOptions;
  assert.deepEqual(options.slice(0, 3), ["--gpu-architecture=sm_90", "-std=c++17", "--include-path=/my/include"]);
  assert.deepEqual(options.slice(-3), ["-DBLOCK=256", "-DFAST", "-lineinfo"]);
  assert.deepEqual(compiled.options, options);
  assert.equal(env.nvrtc.livePrograms(), 0, "the program is destroyed");
  const ptx = compile(scaleSource, { arch: "compute_80", nvrtc: env.nvrtc.api, cache: false, std: "c++20" });
  assert.equal(ptx.kind, "ptx");
  assert.equal(ptx.image.at(-1), 0, "PTX keeps its terminating NUL for cuModuleLoadData");
  assert.equal(env.nvrtc.lastOptions[1], "-std=c++20");
});

test("compile: a device newer than NVRTC gets PTX for the newest architecture below it; bad arguments fail before NVRTC runs", () => {
  using env = fakeKernelSetup({ capability: 121 });
  assert.equal(compile(scaleSource, { context: env.context, nvrtc: env.nvrtc.api, cache: false }).arch, "compute_120");
  const before = env.nvrtc.compiles();
  const api = env.nvrtc.api;
  assert.throws(() => compile(scaleSource, { nvrtc: api }), /give a context .* or an arch such as "sm_90"/);
  assert.throws(() => compile(scaleSource, { nvrtc: api, arch: "sm90" }), /arch must look like "sm_90"/);
  assert.throws(() => compile("", { nvrtc: api, arch: "sm_90" }), /source must be a non-empty string/);
  assert.throws(() => compile(scaleSource, { nvrtc: api, arch: "sm_90", defines: { "1X": 1 } }), /define "1X" is not a C identifier/);
  assert.throws(() => compile(scaleSource, { nvrtc: api, arch: "sm_90", options: "-G" as never }), /options must be an array of strings/);
  assert.throws(() => compile(scaleSource, { nvrtc: api, arch: "sm_90", cache: "disk" as never }), /cache must be true, false or "memory"/);
  assert.throws(() => compile(scaleSource, { nvrtc: api, arch: "sm_90", name: "a b.cu" }), /name must be a file name/);
  assert.equal(env.nvrtc.compiles(), before);
});

test("a compile error is an NvrtcCompileError naming the line, quoting it, with NVRTC's log; the program is destroyed", () => {
  using env = fakeKernelSetup();
  const source = "extern \"C\" __global__ void k(float *x) {\n  x[0] = 1;\n#error no\n}\n";
  assert.throws(() => compile(source, { arch: "sm_90", nvrtc: env.nvrtc.api, cache: false, name: "mine.cu" }), (error: unknown) => {
    assert.ok(error instanceof NvrtcCompileError);
    assert.equal(error.line, 3);
    assert.equal(error.status, 6);
    assert.match(error.message, /^mine\.cu:3: #error directive: fake failure\n {4}3 \| #error no\nNVRTC log:\nmine\.cu\(3\): error/);
    assert.match(error.log, /1 error detected/);
    return true;
  });
  assert.equal(env.nvrtc.livePrograms(), 0);
  env.nvrtc.failNext.set("nvrtcCreateProgram", 3);
  assert.throws(() => compile(scaleSource, { arch: "sm_90", nvrtc: env.nvrtc.api, cache: false }), /nvrtcCreateProgram failed: NVRTC_ERROR_INVALID_INPUT \(3\)/);
});

test("lowered names: a template instantiation is found by its C++ name; an unknown kernel says how to declare it", () => {
  using env = fakeKernelSetup();
  const source = "template <typename T> __global__ void scale(T *x, T a, int n) {}\nextern \"C\" __global__ void plain(int *x) {}\n";
  using module = KernelModule.compile(env.context, source, { nvrtc: env.nvrtc.api, driver: env.driver.api, cache: false, nameExpressions: ["scale<float>", "scale<double>"] });
  assert.deepEqual([...module.compiled.loweredNames], [["scale<float>", "_Z_fake_scale_float_"], ["scale<double>", "_Z_fake_scale_double_"]]);
  module.function("scale<double>");
  assert.deepEqual(env.driver.calls.filter((c) => c.name === "cuModuleGetFunction").map((c) => c.args[2]), ["_Z_fake_scale_double_"]);
  assert.equal(module.function("scale<double>"), module.function("scale<double>"), "looked up once");
  module.function("plain");
  assert.throws(() => module.function("scale<int>"), /no kernel "scale<int>"; declare it extern "C" __global__, or pass its C\+\+ name in compile's nameExpressions \(given: scale<float>, scale<double>\)/);
});

test("the compile cache: memory, then disk in a fresh process; keyed by source, options, architecture and NVRTC version; corrupt entries are recompiled", () => {
  using cache = tempCache();
  using env = fakeKernelSetup();
  clearMemoryCache();
  const source = `${scaleSource}// cache test ${Math.random()}\n`;
  const options = { context: env.context, nvrtc: env.nvrtc.api, cacheDir: cache.dir };
  const first = compile(source, options);
  assert.equal(first.cached, undefined);
  assert.equal(env.nvrtc.compiles(), 1);
  assert.deepEqual(readdirSync(cache.dir), [`${first.key}.kernel`]);
  assert.equal(compile(source, options).cached, "memory");
  clearMemoryCache(); // as a new process would start
  const fromDisk = compile(source, options);
  assert.equal(fromDisk.cached, "disk");
  assert.deepEqual([fromDisk.kind, fromDisk.arch, fromDisk.image, fromDisk.options], [first.kind, first.arch, first.image, first.options]);
  assert.equal(env.nvrtc.compiles(), 1, "nothing compiled again");
  // Every part of the key makes a miss.
  compile(source, { ...options, arch: "sm_80" });
  compile(source, { ...options, defines: { X: 1 } });
  compile(`${source} `, options);
  assert.equal(env.nvrtc.compiles(), 4);
  using newer = fakeKernelSetup({ nvrtcVersion: [13, 1] });
  compile(source, { ...options, nvrtc: newer.nvrtc.api });
  assert.equal(newer.nvrtc.compiles(), 1, "another NVRTC version compiles again");
  const otherBuild = fakeNvrtc({ path: "/other/libnvrtc.so.13" });
  assert.equal(compile(source, { ...options, nvrtc: otherBuild.api, cacheDir: undefined, cache: "memory" }).cached, undefined, "in memory, another libnvrtc of the same version does not share entries");
  // "memory" keeps the disk out of it; false compiles every time.
  const memoryOnly = `${source}// memory only\n`;
  compile(memoryOnly, { ...options, cache: "memory" });
  assert.equal(compile(memoryOnly, { ...options, cache: "memory" }).cached, "memory");
  assert.equal(readdirSync(cache.dir).length, 5);
  compile(source, { ...options, cache: false });
  assert.equal(env.nvrtc.compiles(), 6);
  // A truncated file is a miss, recompiled and written again.
  clearMemoryCache();
  writeFileSync(join(cache.dir, `${first.key}.kernel`), "{\"key\":\"x\"}\n");
  assert.equal(compile(source, options).cached, undefined);
  clearMemoryCache();
  assert.equal(compile(source, options).cached, "disk");
  assert.ok(!readdirSync(cache.dir).some((name) => name.endsWith(".tmp")));
});

test("the cache directory: $GPUFFI_CACHE/kernels, else XDG_CACHE_HOME or ~/.cache; an unwritable one costs a compile, not a failure", () => {
  assert.equal(defaultCacheDir({ GPUFFI_CACHE: "/c", HOME: "/h" }), join("/c", "kernels"));
  assert.equal(defaultCacheDir({ HOME: "/h" }), join("/h", ".cache", "gpuffi", "kernels"));
  assert.equal(defaultCacheDir({ XDG_CACHE_HOME: "/x", HOME: "/h" }), join("/x", "gpuffi", "kernels"));
  using env = fakeKernelSetup();
  using cache = tempCache();
  const blocked = join(cache.dir, "a-file");
  writeFileSync(blocked, "");
  const compiled = compile(`${scaleSource}// unwritable\n`, { arch: "sm_90", nvrtc: env.nvrtc.api, cacheDir: join(blocked, "kernels") });
  assert.equal(compiled.cached, undefined);
  assert.ok(!existsSync(join(blocked, "kernels")));
});

test("the argument block: every type reaches the kernel as declared; pitched passes pointer and pitch; 64-bit values from numbers and bigints", () => {
  using env = fakeKernelSetup();
  env.driver.define("all", ["ptr", "ptr", "u64", "i32", "u32", "i64", "u64", "u64", "f32", "f64", "u16", "u16", "i64"]);
  using module = KernelModule.compile(env.context, "extern \"C\" __global__ void all(\n", { nvrtc: env.nvrtc.api, driver: env.driver.api, cache: false });
  using kernel = module.kernel("all", ["ptr", "pitched", "i32", "u32", "i64", "u64", "usize", "f32", "f64", "f16", "bf16", "i64"]);
  using buffer = env.context.alloc(256);
  using pool = new PitchedPool(env.context);
  using matrix = pool.alloc(4, 10, { elementType: "f16" });
  const view = matrix.view(1, 2, 3, 4);
  kernel.launch({ grid: 1, block: 1 }, buffer, view, -7, 0xffffffff, -(2 ** 40) - 3, 2n ** 64n - 1n, 2 ** 53 - 1, 1.5, Math.PI, 0.333, 3.140625, -1n);
  const [launch] = env.driver.launches;
  assert.deepEqual(launch!.args, [buffer.ptr, view.ptr, BigInt(matrix.pitch), -7, 0xffffffff, -(2n ** 40n) - 3n, 2n ** 64n - 1n, 2n ** 53n - 1n, 1.5, Math.PI, f32ToF16Bits(0.333), 0x4049, -1n]);
  assert.equal(f16BitsToF32(launch!.args[10] as number), f16BitsToF32(f32ToF16Bits(0.333)));
  assert.equal(bf16BitsToF32(launch!.args[11] as number), 3.140625);
  // The block is reused: a second launch with other values reads those.
  kernel.launch({ grid: 1, block: 1 }, 0, matrix, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10);
  assert.deepEqual(env.driver.launches[1]!.args.slice(0, 8), [0, matrix.ptr, BigInt(matrix.pitch), 1, 2, 3n, 4n, 5n]);
  assert.equal(env.driver.calls.filter((c) => c.name === "cuLaunchKernel")[0]!.args[9], env.driver.calls.filter((c) => c.name === "cuLaunchKernel")[1]!.args[9]);
});

test("launch checks arguments, sizes and liveness before cuLaunchKernel; a disposed buffer throws DisposedError", () => {
  using env = fakeKernelSetup();
  const { module, kernel } = setupScale(env);
  using buffer = env.context.alloc(64);
  const launches = () => env.driver.calls.filter((c) => c.name === "cuLaunchKernel").length;
  const config = { grid: 1, block: 16 };
  assert.throws(() => kernel.launchWith(config, [buffer, 2]), /takes 3 arguments, got 2/);
  assert.throws(() => kernel.launch(config, buffer, 2, 1.5), /argument 2 \(u32\) must be a whole number from 0 to 2\^32 - 1, got 1.5/);
  assert.throws(() => kernel.launch(config, buffer, 2, -1), /argument 2 \(u32\)/);
  assert.throws(() => kernel.launch(config, buffer, "2" as never, 16), /argument 1 \(f32\) must be a number, got "2"/);
  assert.throws(() => kernel.launch(config, 12.5, 2, 16), /argument 0 \(ptr\) must be a device address/);
  assert.throws(() => kernel.launch(config, {} as never, 2, 16), /argument 0 \(ptr\) must be device memory \(a buffer, a pool block, a pitched matrix or view, a Matrix\) or an address, got Object/);
  assert.throws(() => kernel.launch({ grid: 0, block: 16 }, buffer, 2, 16), /grid\.x must be a whole number from 1 to 2147483647, got 0/);
  assert.throws(() => kernel.launch({ grid: [1, 70000], block: 16 }, buffer, 2, 16), /grid\.y must be a whole number from 1 to 65535/);
  assert.throws(() => kernel.launch({ grid: 1, block: [32, 32, 2] }, buffer, 2, 16), /a block of 2048 threads is more than the kernel's limit of 1024/);
  assert.throws(() => kernel.launch({ grid: 1, block: [1, 1, 1, 1] as never }, buffer, 2, 16), /block must be a number or an array \[x, y, z\]/);
  assert.throws(() => kernel.launch(undefined as never, buffer, 2, 16), /launch needs a configuration/);
  assert.throws(() => kernel.launch({ grid: 1, block: 1, sharedMem: -1 }, buffer, 2, 16), /sharedMem must be a whole number of bytes/);
  assert.throws(() => kernel.launch({ grid: 1, block: 1, sharedMem: 228 * 1024 }, buffer, 2, 16), /233472 bytes of dynamic shared memory plus 0 static are more than device 0's 232448 bytes per block/);
  const other = env.context.createStream();
  other.dispose();
  assert.throws(() => kernel.launch({ grid: 1, block: 1, stream: other }, buffer, 2, 16), DisposedError);
  const gone = env.context.alloc(64);
  gone.dispose();
  assert.throws(() => kernel.launch(config, gone, 2, 16), DisposedError);
  using pool = new PitchedPool(env.context);
  const matrix = pool.alloc(2, 2, { elementType: "f32" });
  const view = matrix.view(0, 1, 0, 1);
  matrix.dispose();
  assert.throws(() => kernel.launch(config, view, 2, 16), DisposedError, "a view of a disposed pitched matrix");
  assert.equal(launches(), 0);
  module.dispose();
  assert.throws(() => kernel.launch(config, buffer, 2, 16), /the KernelModule of Kernel scale was already disposed/);
  assert.equal(launches(), 0);
});

test("dynamic shared memory above 48 KiB opts the kernel in once (cuFuncSetAttribute), then launches", () => {
  using env = fakeKernelSetup();
  const { module, kernel } = setupScale(env);
  using _ = module;
  using buffer = env.context.alloc(64);
  kernel.launch({ grid: 1, block: 1, sharedMem: 1024 }, buffer, 1, 0);
  kernel.launch({ grid: 1, block: 1, sharedMem: 100 * 1024 }, buffer, 1, 0);
  kernel.launch({ grid: 1, block: 1, sharedMem: 64 * 1024 }, buffer, 1, 0);
  kernel.launch({ grid: 1, block: 1, sharedMem: 100 * 1024 }, buffer, 1, 0);
  const set = env.driver.calls.filter((c) => c.name === "cuFuncSetAttribute");
  assert.deepEqual(set.map((c) => c.args.slice(1)), [[8, 100 * 1024]]);
  assert.deepEqual(env.driver.launches.map((l) => l.sharedMem), [1024, 100 * 1024, 64 * 1024, 100 * 1024]);
});

test("launches run on their stream (queued until synchronized on a slow GPU) and replay from a CUDA graph with the values captured", () => {
  using env = fakeKernelSetup({ deferred: true });
  const { module, kernel } = setupScale(env);
  using _ = module;
  using buffer = env.context.alloc(16);
  buffer.write(new Float32Array([1, 2, 3, 4]));
  using stream = env.context.createStream({ nonBlocking: true });
  kernel.launch({ grid: 1, block: 4, stream }, buffer, 2, 4);
  assert.equal(env.cuda.queuedOperations, 1, "queued, not run");
  stream.synchronize();
  assert.deepEqual(buffer.read(new Float32Array(4)), new Float32Array([2, 4, 6, 8]));
  using graph = CudaGraph.capture(stream, () => {
    kernel.launch({ grid: 1, block: 4, stream }, buffer, 10, 2);
  }, { uses: [buffer, module] });
  kernel.launch({ grid: 1, block: 4, stream }, buffer, 0.5, 4); // rewrites the argument block after the capture
  stream.synchronize();
  assert.deepEqual(buffer.read(new Float32Array(4)), new Float32Array([1, 2, 3, 4]));
  graph.launch();
  graph.launch();
  stream.synchronize();
  assert.deepEqual(buffer.read(new Float32Array(4)), new Float32Array([100, 200, 3, 4]));
});

test("a failed launch throws the driver's error by name; loading a CUBIN of another architecture says what to do", () => {
  using env = fakeKernelSetup();
  const { module, kernel } = setupScale(env);
  using _ = module;
  using buffer = env.context.alloc(16);
  env.driver.failNext.set("cuLaunchKernel", 1);
  assert.throws(() => kernel.launch({ grid: 1, block: 1 }, buffer, 1, 1), (e: unknown) => e instanceof CudaError && /cuLaunchKernel failed: CUDA_ERROR_INVALID_VALUE \(1\)/.test(e.message));
  const other = compile(scaleSource, { arch: "sm_80", nvrtc: env.nvrtc.api, cache: false });
  assert.throws(() => KernelModule.load(env.context, other, { driver: env.driver.api }), /CUDA_ERROR_NO_BINARY_FOR_GPU \(209\).*compiled for sm_80, which device 0 cannot run/);
  assert.throws(() => KernelModule.load(env.context, {} as never, { driver: env.driver.api }), /expected a CompiledProgram/);
  assert.throws(() => module.kernel("scale", ["ptr", "float"] as never), /parameter 1 has unknown type "float"; known: ptr, pitched/);
});

test("disposal: a module twice throws; the context unloads modules and frees kernels it still owns", () => {
  const env = fakeKernelSetup();
  const { module, kernel } = setupScale(env);
  kernel.dispose();
  assert.throws(() => kernel.dispose(), DisposedError);
  const { module: second, kernel: kept } = setupScale(env);
  module.dispose();
  assert.throws(() => module.dispose(), DisposedError);
  assert.throws(() => module.function("scale"), DisposedError);
  assert.equal(env.driver.modules.size, 1);
  env.context.dispose();
  assert.equal(env.driver.modules.size, 0);
  assert.ok(second.disposed && kept.disposed);
  assert.ok(env.cuda.calls.lastIndexOf("cuModuleUnload") > env.cuda.calls.lastIndexOf("cudaDeviceSynchronize"), "unloaded after the device was waited for");
});

test("elementwise: the generated source, parameter checks, 1D over buffers and 2D over pitched views with their pitches", () => {
  using env = fakeKernelSetup();
  const params = { x: "f16[]", y: "f16[]", a: "f32" } as const;
  const source = elementwiseSource("y = __float2half(a * __half2float(x)) + y", params);
  assert.match(source, /extern "C" __global__ void gpuffi_elementwise_1d\(__half \*gpuffi_p_x, __half \*gpuffi_p_y, float a, unsigned long long n\)/);
  assert.match(source, /__half &y = gpuffi_p_y\[i\];\n {4}y = __float2half\(a \* __half2float\(x\)\) \+ y;/);
  assert.match(source, /gpuffi_elementwise_2d\(char \*gpuffi_p_x, size_t gpuffi_pitch_x, char \*gpuffi_p_y, size_t gpuffi_pitch_y, float a, unsigned int rows, unsigned int cols\)/);
  assert.match(source, /__half &x = reinterpret_cast<__half \*>\(gpuffi_p_x \+ \(size_t\)row \* gpuffi_pitch_x\)\[col\];/);
  assert.throws(() => elementwiseSource("x = 1", { n: "f32[]" }), /parameter name "n" must be a C identifier other than i, n, row/);
  assert.throws(() => elementwiseSource("x = 1", { x: "f16" as never, y: "i8" as never }), /parameter y has type "i8"; arrays are .*scalars "f64"/);
  assert.throws(() => elementwiseSource("x = 1", { a: "f32" }), /declare at least one array parameter/);
  env.driver.define("gpuffi_elementwise_1d", ["ptr", "ptr", "f32", "u64"]);
  env.driver.define("gpuffi_elementwise_2d", ["ptr", "u64", "ptr", "u64", "f32", "u32", "u32"]);
  const axpy = elementwise(env.context, "y = __float2half(a * __half2float(x)) + y", params, { nvrtc: env.nvrtc.api, driver: env.driver.api, cache: false });
  assert.equal(axpy.source, source);
  using x = env.context.alloc(2000);
  using y = env.context.alloc(4000);
  axpy.run({ x, y, a: 0.5 });
  assert.deepEqual(env.driver.launches.at(-1)!.args, [x.ptr, y.ptr, 0.5, 1000n]);
  assert.deepEqual(env.driver.launches.at(-1)!.block, [256, 1, 1]);
  assert.deepEqual(env.driver.launches.at(-1)!.grid, [4, 1, 1]);
  axpy.run({ x, y, a: 1 }, { n: 10 });
  assert.equal(env.driver.launches.at(-1)!.args[3], 10n);
  assert.throws(() => axpy.run({ x: y, y: x, a: 1 }), /y holds 1000 f16 elements, fewer than n = 2000/);
  assert.throws(() => axpy.run({ x: x.ptr as never, y, a: 1 }), /x must be device memory .* for a bare address give n/);
  using pool = new PitchedPool(env.context);
  using big = pool.alloc(100, 300, { elementType: "f16" });
  using other = pool.alloc(50, 40, { elementType: "f16" });
  const vx = big.view(10, 50, 3, 40);
  axpy.run({ x: vx, y: other, a: 2 });
  const launch = env.driver.launches.at(-1)!;
  assert.equal(launch.name, "gpuffi_elementwise_2d");
  assert.deepEqual(launch.args, [vx.ptr, BigInt(big.pitch), other.ptr, BigInt(other.pitch), 2, 50, 40]);
  assert.deepEqual([launch.grid, launch.block], [[2, 7, 1], [32, 8, 1]]);
  assert.throws(() => axpy.run({ x: vx, y: big, a: 2 }), /y must be a pitched matrix or view of 50×40, like the first array/);
  using f32 = pool.alloc(50, 40, { elementType: "f32" });
  assert.throws(() => axpy.run({ x: vx, y: f32, a: 2 }), /y holds 4-byte elements, but it is declared f16\[\]/);
  assert.throws(() => axpy.run({ x, y: other, a: 2 }), /y is pitched but x is dense/);
  axpy.dispose();
  assert.ok(axpy.module.disposed);
  assert.throws(() => axpy.run({ x, y, a: 1 }), DisposedError);
});

test("NVRTC absent: a LibraryNotFoundError that lists where it looked and how to install it", () => {
  assert.throws(() => loadNvrtc("/nonexistent/cuda/lib64"), (e: unknown) => e instanceof LibraryNotFoundError && /could not load libnvrtc/.test(e.message) && /nvidia-cuda-nvrtc pip wheel/.test(e.message) && /GPUFFI_NVRTC/.test(e.message));
  using env = fakeKernelSetup();
  assert.throws(() => compile(scaleSource, { context: env.context, libraryPath: "/nonexistent/libnvrtc.so.13" }), LibraryNotFoundError);
});

test("buffers of another device are refused before the launch", () => {
  using env = fakeKernelSetup();
  const { module, kernel } = setupScale(env);
  using _ = module;
  using second = CudaContext.create({ runtime: env.cuda.runtime, device: 1 });
  using buffer = second.alloc(16);
  assert.throws(() => kernel.launch({ grid: 1, block: 1 }, buffer, 1, 1), (e: unknown) => e instanceof CudaArgumentError && /a DeviceBuffer of device 1, but the kernel runs on device 0/.test(e.message));
  assert.equal(env.driver.launches.length, 0);
});
