// A fake libnvrtc and the fake driver calls of modules and launches, so that the kernel layer
// (options, the cache, argument blocks, launch checks, disposal) runs without NVRTC or a GPU.
// The fake NVRTC "compiles" by reading the source: every `extern "C" __global__ void name(` is
// a kernel, every name expression lowers to `_Z_fake_<expression>`, and a line with `#error`
// fails the compile with a log naming that line as NVRTC does. Its image is a small text that
// the fake driver loads: CUBIN only onto a device of its architecture, PTX onto any as new.
// A launch reads the argument block through the C types the test declared for the kernel (not
// gpuffi's), when cuLaunchKernel is called (CUDA copies the arguments then), and submits the
// kernel's JS implementation as work of its stream on the fake libcudart (run, queued or
// captured into a graph like the fake's copies).
import { HostMemory, nativeView, type Pointer, readCString } from "../../../src/ffi/index.ts";
import { CudaContext, CudaRuntime, type KernelDriverApi, type NvrtcApi, type NvrtcSymbols } from "../../../src/cuda/index.ts";
import { fakeCudartWith2D } from "../blas/cublas-fake.ts";
import type { FakeCudart } from "../fake-cudart.ts";
import { type RecordedCall, recordingSymbols } from "../recording-symbols.ts";

/** C parameter types the fake decodes an argument block with. */
export type FakeCType = "ptr" | "i32" | "u32" | "i64" | "u64" | "f32" | "f64" | "u16";

export interface FakeLaunch {
  readonly name: string;
  readonly grid: readonly number[];
  readonly block: readonly number[];
  readonly sharedMem: number;
  readonly stream: Pointer;
  /** The arguments as the kernel received them (bigint for 64-bit integers, raw bits for u16). */
  readonly args: readonly (number | bigint)[];
}

type KernelBody = (launch: FakeLaunch, ...args: (number | bigint)[]) => void;

interface Program {
  readonly source: string;
  readonly name: string;
  readonly expressions: string[];
  log: string;
  image: Uint8Array | undefined;
  readonly lowered: Map<string, HostMemory>;
}

export interface FakeNvrtc {
  readonly api: NvrtcApi;
  readonly calls: RecordedCall[];
  readonly failNext: Map<string, number>;
  /** How many times nvrtcCompileProgram ran. */
  readonly compiles: () => number;
  /** The options of the last compile, read back from the C string array gpuffi passed. */
  lastOptions: string[];
  /** Programs not destroyed yet. */
  readonly livePrograms: () => number;
}

const nvrtcErrors: Record<number, string> = { 0: "NVRTC_SUCCESS", 3: "NVRTC_ERROR_INVALID_INPUT", 4: "NVRTC_ERROR_INVALID_PROGRAM", 5: "NVRTC_ERROR_INVALID_OPTION", 6: "NVRTC_ERROR_COMPILATION", 10: "NVRTC_ERROR_NAME_EXPRESSION_NOT_VALID" };
const encoder = new TextEncoder();

const writeInt = (out: ArrayBufferView | null, value: number) => void (new Int32Array(out!.buffer, out!.byteOffset, 1)[0] = value);
const writeWord = (out: ArrayBufferView | null, value: number) => void (new BigUint64Array(out!.buffer, out!.byteOffset, 1)[0] = BigInt(value));
const readWord = (view: ArrayBufferView | null) => Number(new BigUint64Array(view!.buffer, view!.byteOffset, 1)[0]!);

export function fakeNvrtc(options: { version?: [number, number]; archs?: number[]; path?: string } = {}): FakeNvrtc {
  const [major, minor] = options.version ?? [13, 0];
  const archs = options.archs ?? [75, 80, 86, 89, 90, 100, 120];
  const calls: RecordedCall[] = [];
  const failNext = new Map<string, number>();
  const programs = new Map<Pointer, Program>();
  let next = 0x7000;
  let compiles = 0;
  const fake: FakeNvrtc = { api: undefined as never, calls, failNext, compiles: () => compiles, lastOptions: [], livePrograms: () => programs.size };
  const sized = (pick: (p: Program) => Uint8Array | undefined) => ({
    size: (prog: Pointer, out: ArrayBufferView) => {
      const bytes = programs.get(prog) && pick(programs.get(prog)!);
      return bytes ? (writeWord(out, bytes.length), 0) : 4;
    },
    read: (prog: Pointer, out: Uint8Array) => {
      const bytes = programs.get(prog) && pick(programs.get(prog)!);
      return bytes ? (out.set(bytes), 0) : 4;
    },
  });
  const isCubin = (p: Program) => p.image !== undefined && new TextDecoder().decode(p.image).startsWith("FAKE-CUBIN");
  const ptx = sized((p) => (p.image && !isCubin(p) ? p.image : undefined));
  const cubin = sized((p) => (p.image && isCubin(p) ? p.image : undefined));
  const log = sized((p) => encoder.encode(`${p.log}\0`));
  const implementation: Record<string, (...args: never[]) => unknown> = {
    nvrtcGetErrorString: (status: number) => nvrtcErrors[status] ?? "NVRTC_ERROR unknown",
    nvrtcVersion: (outMajor: ArrayBufferView, outMinor: ArrayBufferView) => (writeInt(outMajor, major), writeInt(outMinor, minor), 0),
    nvrtcGetNumSupportedArchs: (out: ArrayBufferView) => (writeInt(out, archs.length), 0),
    nvrtcGetSupportedArchs: (out: Int32Array) => (out.set(archs), 0),
    nvrtcCreateProgram: (out: ArrayBufferView, source: string, name: string) => {
      const handle = next++;
      programs.set(handle, { source, name, expressions: [], log: "", image: undefined, lowered: new Map() });
      writeWord(out, handle);
      return 0;
    },
    nvrtcDestroyProgram: (handle: ArrayBufferView) => {
      const program = programs.get(readWord(handle));
      if (!program) return 4;
      for (const memory of program.lowered.values()) memory.dispose();
      programs.delete(readWord(handle));
      return 0;
    },
    nvrtcAddNameExpression: (prog: Pointer, expression: string) => (programs.get(prog) ? (programs.get(prog)!.expressions.push(expression), 0) : 4),
    nvrtcCompileProgram: (prog: Pointer, count: number, optionArray: Pointer) => {
      const program = programs.get(prog);
      if (!program) return 4;
      compiles++;
      const pointers = count === 0 ? [] : Array.from(new BigUint64Array(nativeView(optionArray, count * 8)), Number);
      const list = pointers.map((ptr) => readCString(ptr)!);
      fake.lastOptions = list;
      const arch = list.find((o) => o.startsWith("--gpu-architecture="))?.split("=")[1];
      if (!arch) return 5;
      const errorLine = program.source.split("\n").findIndex((line) => line.includes("#error"));
      if (errorLine >= 0) {
        program.log = `${program.name}(${errorLine + 1}): error: #error directive: fake failure\n\n1 error detected in the compilation of "${program.name}".\n`;
        return 6;
      }
      const functions = [...program.source.matchAll(/extern "C" __global__ void (\w+)\(/g)].map((m) => m[1]!);
      for (const expression of program.expressions) {
        const lowered = `_Z_fake_${expression.replace(/\W/g, "_")}`;
        functions.push(lowered);
        program.lowered.set(expression, HostMemory.from(encoder.encode(`${lowered}\0`)));
      }
      const kind = arch.startsWith("sm_") ? "FAKE-CUBIN" : "FAKE-PTX";
      program.image = encoder.encode(`${kind} ${JSON.stringify({ arch, functions })}${kind === "FAKE-PTX" ? "\0" : ""}`);
      return 0;
    },
    nvrtcGetPTXSize: ptx.size,
    nvrtcGetPTX: ptx.read,
    nvrtcGetCUBINSize: cubin.size,
    nvrtcGetCUBIN: cubin.read,
    nvrtcGetProgramLogSize: log.size,
    nvrtcGetProgramLog: log.read,
    nvrtcGetLoweredName: (prog: Pointer, expression: string, out: ArrayBufferView) => {
      const memory = programs.get(prog)?.lowered.get(expression);
      return memory ? (writeWord(out, memory.ptr), 0) : 10;
    },
  };
  const symbols = recordingSymbols<NvrtcSymbols>("libnvrtc", implementation, { calls, failNext });
  return Object.assign(fake, { api: { path: options.path ?? "/fake/libnvrtc.so.13", symbols } });
}

interface FakeFunction {
  readonly name: string;
  readonly module: Pointer;
  maxDynamicShared: number;
}

export interface FakeDriver {
  readonly api: KernelDriverApi;
  readonly calls: RecordedCall[];
  readonly failNext: Map<string, number>;
  readonly launches: FakeLaunch[];
  /** Loaded modules by handle. */
  readonly modules: ReadonlyMap<Pointer, readonly string[]>;
  /** Gives kernel `name` its C parameter types and what it does when it runs. */
  define(name: string, types: readonly FakeCType[], body?: KernelBody): void;
  /** cuFuncGetAttribute answers: threads per block, static shared bytes. */
  limits: { maxThreadsPerBlock: number; staticShared: number };
}

const driverErrors: Record<number, string> = { 0: "CUDA_SUCCESS", 1: "CUDA_ERROR_INVALID_VALUE", 200: "CUDA_ERROR_INVALID_IMAGE", 209: "CUDA_ERROR_NO_BINARY_FOR_GPU", 400: "CUDA_ERROR_INVALID_HANDLE", 500: "CUDA_ERROR_NOT_FOUND", 700: "CUDA_ERROR_ILLEGAL_ADDRESS" };

/** The fake driver for a device of compute capability `capability` (default 90), working on `cuda`'s streams. */
export function fakeDriver(cuda: FakeCudart, capability = 90): FakeDriver {
  const calls: RecordedCall[] = [];
  const failNext = new Map<string, number>();
  const modules = new Map<Pointer, string[]>();
  const functions = new Map<Pointer, FakeFunction>();
  const definitions = new Map<string, { types: readonly FakeCType[]; body?: KernelBody }>();
  const launches: FakeLaunch[] = [];
  let next = 0x9000;
  const limits = { maxThreadsPerBlock: 1024, staticShared: 0 };
  const decode = (params: Pointer, types: readonly FakeCType[]) => {
    if (types.length === 0) return [];
    const pointers = new BigUint64Array(nativeView(params, types.length * 8));
    return types.map((type, i) => {
      const view = nativeView(Number(pointers[i]!), 8);
      switch (type) {
        case "ptr": return Number(new BigUint64Array(view)[0]!);
        case "i32": return new Int32Array(view)[0]!;
        case "u32": return new Uint32Array(view)[0]!;
        case "i64": return new BigInt64Array(view)[0]!;
        case "u64": return new BigUint64Array(view)[0]!;
        case "f32": return new Float32Array(view)[0]!;
        case "f64": return new Float64Array(view)[0]!;
        case "u16": return new Uint16Array(view)[0]!;
      }
    });
  };
  const implementation: Record<string, (...args: never[]) => unknown> = {
    cuCtxGetCurrent: (out: ArrayBufferView) => (writeWord(out, 0xc0c0), 0),
    cuModuleLoadData: (out: ArrayBufferView, image: Uint8Array) => {
      const text = new TextDecoder().decode(image).replace(/\0$/, "");
      const match = /^FAKE-(CUBIN|PTX) (.*)$/s.exec(text);
      if (!match) return 200;
      const { arch, functions: names } = JSON.parse(match[2]!) as { arch: string; functions: string[] };
      const target = Number(arch.split("_")[1]);
      if (match[1] === "CUBIN" ? target !== capability : target > capability) return 209;
      const handle = next++;
      modules.set(handle, names);
      writeWord(out, handle);
      return 0;
    },
    cuModuleUnload: (handle: Pointer) => (modules.delete(handle) ? 0 : 400),
    cuModuleGetFunction: (out: ArrayBufferView, module: Pointer, name: string) => {
      if (!modules.has(module)) return 400;
      if (!modules.get(module)!.includes(name)) return 500;
      const handle = next++;
      functions.set(handle, { name, module, maxDynamicShared: 48 * 1024 - limits.staticShared });
      writeWord(out, handle);
      return 0;
    },
    cuFuncGetAttribute: (out: ArrayBufferView, attribute: number, fn: Pointer) => {
      const f = functions.get(fn);
      if (!f) return 400;
      writeInt(out, attribute === 0 ? limits.maxThreadsPerBlock : attribute === 1 ? limits.staticShared : attribute === 8 ? f.maxDynamicShared : 0);
      return 0;
    },
    cuFuncSetAttribute: (fn: Pointer, attribute: number, value: number) => {
      const f = functions.get(fn);
      if (!f) return 400;
      if (attribute !== 8 || value + limits.staticShared > 227 * 1024) return 1;
      f.maxDynamicShared = value;
      return 0;
    },
    cuLaunchKernel: (fn: Pointer, gx: number, gy: number, gz: number, bx: number, by: number, bz: number, sharedMem: number, stream: Pointer, params: Pointer, extra: Pointer) => {
      const f = functions.get(fn);
      if (!f || !modules.has(f.module)) return 400;
      if (extra !== 0 || sharedMem > f.maxDynamicShared || bx * by * bz > limits.maxThreadsPerBlock) return 1;
      const definition = definitions.get(f.name);
      if (!definition) throw new Error(`the fake driver has no definition for kernel ${f.name}: call define() first`);
      const launch: FakeLaunch = { name: f.name, grid: [gx, gy, gz], block: [bx, by, bz], sharedMem, stream, args: decode(params, definition.types) };
      launches.push(launch);
      return cuda.enqueue(stream, () => definition.body?.(launch, ...launch.args));
    },
  };
  const symbols = recordingSymbols<KernelDriverApi["symbols"]>("libcuda", implementation, { calls, failNext, log: cuda.calls });
  const describer = { errorName: (s: number) => driverErrors[s] ?? `CUresult ${s}`, errorString: (s: number) => `fake driver error ${s}` };
  return {
    api: { symbols, describer },
    calls,
    failNext,
    launches,
    modules,
    limits,
    define: (name, types, body) => void definitions.set(name, { types, body }),
  };
}

/**
 * A context on the fake libcudart (with 2D copies, for pitched pools) whose device reports
 * compute capability 9.0, 132 SMs and 227 KiB of opt-in shared memory, plus the fake NVRTC and
 * driver; dispose it to dispose the context.
 */
export function fakeKernelSetup(options: { deferred?: boolean; nvrtcVersion?: [number, number]; capability?: number } = {}) {
  const base = fakeCudartWith2D({ deferred: options.deferred });
  const capability = options.capability ?? 90;
  const attributes: Record<number, number> = { 75: Math.floor(capability / 10), 76: capability % 10, 16: 132, 97: 227 * 1024, 51: 512 };
  const symbols = new Proxy(base.runtime.api.symbols, {
    get: (target, name: string) => name === "cudaDeviceGetAttribute"
      ? (out: Int32Array, attribute: number) => (base.calls.push(name), (new Int32Array(out.buffer, out.byteOffset, 1)[0] = attributes[attribute] ?? 0), 0)
      : target[name as keyof typeof target],
  });
  const cuda = Object.create(base, { runtime: { value: new CudaRuntime({ ...base.runtime.api, symbols }) } }) as FakeCudart;
  const nvrtc = fakeNvrtc({ version: options.nvrtcVersion });
  const driver = fakeDriver(cuda, capability);
  const context = CudaContext.create({ runtime: cuda.runtime });
  return { cuda, nvrtc, driver, context, [Symbol.dispose]: () => context.dispose() };
}
