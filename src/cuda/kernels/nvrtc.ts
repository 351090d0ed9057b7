// Compiling CUDA C++ with NVRTC: the options gpuffi adds (the device's architecture, the C++
// standard, the toolkit's include directory for cuda_fp16.h / cuda_bf16.h), the compile log in
// the error, lowered names of templates, and the compile cache (cache.ts) in front of it all.
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import process from "node:process";
import { GpuffiError, HostMemory, type NativeSymbols, Out, type Pointer, loadLibrary, nativeView, openLibrary, readCString } from "../../ffi/index.ts";
import type { CudaContext } from "../context.ts";
import { cudaToolkitDirs } from "../cudart-library.ts";
import { CudaArgumentError } from "../errors.ts";
import { type CompiledProgram, cacheKey, defaultCacheDir, lookup, remember } from "./cache.ts";
import { NvrtcStatus, nvrtcSpec, nvrtcSymbols } from "./nvrtc-library.ts";

export type NvrtcSymbols = NativeSymbols<typeof nvrtcSymbols>;

/** The NVRTC calls gpuffi makes. Tests substitute a fake. */
export interface NvrtcApi {
  /** Where libnvrtc was loaded from. */
  readonly path: string;
  readonly symbols: NvrtcSymbols;
}

/** An NVRTC call failed. */
export class NvrtcError extends GpuffiError {
  override name = "NvrtcError";
  constructor(
    /** The nvrtcResult. */
    readonly status: number,
    /** The C function that failed. */
    readonly call: string,
    message: string,
  ) {
    super(`ERR_NVRTC_${status}`, message);
  }
}

/** The source did not compile. `log` is NVRTC's whole log; `line` the line of its first error. */
export class NvrtcCompileError extends NvrtcError {
  override name = "NvrtcCompileError";
  constructor(
    readonly log: string,
    /** The 1-based source line of the first error, when the log names one. */
    readonly line: number | undefined,
    message: string,
  ) {
    super(NvrtcStatus.compilation, "nvrtcCompileProgram", message);
  }
}

function checkNvrtc(api: NvrtcApi, status: number, call: string, detail?: string): void {
  if (status === NvrtcStatus.success) return;
  const text = api.symbols.nvrtcGetErrorString(status) ?? `nvrtcResult ${status}`;
  throw new NvrtcError(status, call, `${call} failed: ${text} (${status})${detail ? `. ${detail}` : ""}`);
}

/**
 * NVRTC dlopens libnvrtc-builtins by its bare name at the first compile, which finds it only on
 * the linker's path: a pip wheel's or a copied toolkit's lib directory usually is not. Opening it
 * from libnvrtc's own directory first makes that later dlopen find the loaded copy by its soname.
 */
function preloadBuiltins(nvrtcPath: string): void {
  if (!nvrtcPath.includes("/")) return;
  const dir = dirname(nvrtcPath);
  let names: string[];
  try {
    names = readdirSync(dir).filter((name) => /^libnvrtc-builtins\.so\.\d+\.\d+$/.test(name));
  } catch {
    return;
  }
  for (const name of names) {
    try {
      openLibrary("libnvrtc-builtins", join(dir, name), {});
    } catch {
      // The compile reports it, with NVRTC's own message, if it still cannot find them.
    }
  }
}

const loaded = new Map<string, NvrtcApi>();

/** Loads libnvrtc with the locator (GPUFFI_NVRTC, the CUDA toolkit, pip's nvidia wheels, …); LibraryNotFoundError lists where it looked. */
export function loadNvrtc(path?: string): NvrtcApi {
  const key = path ?? "";
  let api = loaded.get(key);
  if (!api) {
    const lib = loadLibrary(nvrtcSpec, nvrtcSymbols, path === undefined ? {} : { path });
    preloadBuiltins(lib.path);
    api = { path: lib.path, symbols: lib.symbols };
    loaded.set(key, api);
  }
  return api;
}

/** NVRTC's version, e.g. "13.0". */
export function nvrtcVersion(api: NvrtcApi): string {
  const major = Out.i32();
  const minor = Out.i32();
  checkNvrtc(api, api.symbols.nvrtcVersion(major.buffer, minor.buffer), "nvrtcVersion");
  return `${major.value}.${minor.value}`;
}

/** The real architectures NVRTC compiles for, as numbers (75 for sm_75), ascending. */
export function supportedArchitectures(api: NvrtcApi): number[] {
  const count = Out.i32();
  checkNvrtc(api, api.symbols.nvrtcGetNumSupportedArchs(count.buffer), "nvrtcGetNumSupportedArchs");
  const archs = new Int32Array(count.value);
  checkNvrtc(api, api.symbols.nvrtcGetSupportedArchs(archs), "nvrtcGetSupportedArchs");
  return [...archs].sort((a, b) => a - b);
}

export interface CompileOptions {
  /** Compile for this device: its compute capability picks the architecture (unless `arch` is given). */
  readonly context?: CudaContext;
  /**
   * "sm_90" compiles to CUBIN for that GPU, "compute_90" to PTX that the driver JIT-compiles
   * for any GPU of that capability or newer. Default: `sm_XY` of the context's device when
   * NVRTC supports it, else PTX for the newest architecture NVRTC has below it.
   */
  readonly arch?: string;
  /** The C++ standard (default "c++17"). */
  readonly std?: string;
  /** `-D` macros: `{ BLOCK: 256, USE_FAST: true }`. */
  readonly defines?: Readonly<Record<string, string | number | boolean>>;
  /** More `--include-path`s; the CUDA toolkit's include directory is always added when one is found. */
  readonly includePaths?: readonly string[];
  /** Any other NVRTC options, passed as they are (`-lineinfo`, `--use_fast_math`, …). */
  readonly options?: readonly string[];
  /** C++ names to look up after the compile, e.g. `scale<__half>`: see CompiledProgram.loweredNames. */
  readonly nameExpressions?: readonly string[];
  /** The program's file name in the log (default "kernel.cu"). */
  readonly name?: string;
  /** true (default): in memory and on disk; "memory": this process only; false: always compile. */
  readonly cache?: boolean | "memory";
  /** The disk cache directory (default `$GPUFFI_CACHE/kernels`, else `~/.cache/gpuffi/kernels`). */
  readonly cacheDir?: string;
  /** libnvrtc to use instead of the locator's choice (a file or a directory). */
  readonly libraryPath?: string;
  /** The bindings to use (tests inject a fake; default: the loaded libnvrtc). */
  readonly nvrtc?: NvrtcApi;
}

const archPattern = /^(sm|compute)_(\d+)([af]?)$/;

/** The architecture option for `options`, checked; a context's device maps to sm_XY or the best PTX. */
function resolveArch(api: NvrtcApi, options: CompileOptions): string {
  if (options.arch !== undefined) {
    if (typeof options.arch !== "string" || !archPattern.test(options.arch)) {
      throw new CudaArgumentError(`compile: arch must look like "sm_90" (CUBIN) or "compute_90" (PTX), got ${JSON.stringify(options.arch)}`);
    }
    return options.arch;
  }
  const context = options.context;
  if (!context) throw new CudaArgumentError("compile: give a context (its device picks the architecture) or an arch such as \"sm_90\"");
  const capability = context.attribute("computeCapabilityMajor") * 10 + context.attribute("computeCapabilityMinor");
  const supported = supportedArchitectures(api);
  if (supported.includes(capability)) return `sm_${capability}`;
  const below = supported.filter((arch) => arch < capability);
  if (below.length === 0) {
    throw new CudaArgumentError(`compile: device ${context.device} has compute capability ${capability / 10}, older than every architecture this NVRTC (${api.path}) compiles for (${supported.join(", ")})`);
  }
  // A device newer than NVRTC: PTX, which the driver compiles for it when the module loads.
  return `compute_${below.at(-1)}`;
}

/** The toolkit's include directories that hold cuda_fp16.h (CUDA_PATH…, /usr/local/cuda, beside libnvrtc). */
export function toolkitIncludeDirs(nvrtcPath?: string): string[] {
  const found: string[] = [];
  const add = (dir: string) => {
    if (!found.includes(dir) && existsSync(join(dir, "cuda_fp16.h"))) found.push(dir);
  };
  // A pip wheel keeps its headers in nvidia/cu13/include beside nvidia/cu13/lib.
  if (nvrtcPath?.includes("/")) add(join(dirname(dirname(nvrtcPath)), "include"));
  for (const { dir } of cudaToolkitDirs(process.env)) add(join(dirname(dir), "include"));
  return found.slice(0, 1);
}

function checkStrings(value: unknown, name: string): readonly string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) throw new CudaArgumentError(`compile: ${name} must be an array of strings`);
  return value;
}

/** The full NVRTC option list, in a fixed order (it is part of the cache key). */
function optionList(arch: string, options: CompileOptions, includeDirs: readonly string[]): string[] {
  const list = [`--gpu-architecture=${arch}`, `-std=${options.std ?? "c++17"}`];
  for (const dir of [...checkStrings(options.includePaths, "includePaths"), ...includeDirs]) list.push(`--include-path=${dir}`);
  for (const [name, value] of Object.entries(options.defines ?? {})) {
    if (!/^[A-Za-z_]\w*$/.test(name)) throw new CudaArgumentError(`compile: define ${JSON.stringify(name)} is not a C identifier`);
    if (value === false) continue;
    list.push(value === true ? `-D${name}` : `-D${name}=${value}`);
  }
  list.push(...checkStrings(options.options, "options"));
  return list;
}

/** `n` C strings in one block of C heap memory: the pointer array, then the strings it points to. */
function cStringArray(strings: readonly string[]): HostMemory {
  const encoded = strings.map((s) => new TextEncoder().encode(`${s}\0`));
  const block = HostMemory.alloc(strings.length * 8 + encoded.reduce((sum, bytes) => sum + bytes.length, 0));
  const pointers = new BigUint64Array(nativeView(block.ptr, strings.length * 8));
  const bytes = block.bytes();
  let at = strings.length * 8;
  encoded.forEach((string, i) => {
    pointers[i] = BigInt(block.ptr + at);
    bytes.set(string, at);
    at += string.length;
  });
  return block;
}

function readSized(api: NvrtcApi, program: Pointer, sizeCall: "nvrtcGetPTXSize" | "nvrtcGetCUBINSize" | "nvrtcGetProgramLogSize", call: "nvrtcGetPTX" | "nvrtcGetCUBIN" | "nvrtcGetProgramLog"): Uint8Array {
  const size = Out.size();
  checkNvrtc(api, api.symbols[sizeCall](program, size.buffer), sizeCall);
  const bytes = new Uint8Array(size.value);
  if (size.value > 0) checkNvrtc(api, api.symbols[call](program, bytes), call);
  return bytes;
}

function logText(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end)).trim();
}

/** "kernel.cu(3): error: …" → the message with the source line quoted, and the line number. */
function describeCompileError(source: string, name: string, log: string): { message: string; line: number | undefined } {
  const match = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\((\\d+)\\): (?:catastrophic )?error: (.*)$`, "m").exec(log);
  if (!match) return { message: `${name} did not compile:\n${log}`, line: undefined };
  const line = Number(match[1]);
  const text = source.split("\n")[line - 1]?.trim() ?? "";
  return { message: `${name}:${line}: ${match[2]}\n    ${line} | ${text}\nNVRTC log:\n${log}`, line };
}

/** Runs NVRTC once (no cache). */
function runNvrtc(api: NvrtcApi, source: string, name: string, arch: string, options: readonly string[], nameExpressions: readonly string[]): Omit<CompiledProgram, "key" | "nvrtcVersion" | "cached"> {
  const out = Out.pointer();
  checkNvrtc(api, api.symbols.nvrtcCreateProgram(out.buffer, source, name, 0, 0, 0), "nvrtcCreateProgram");
  const program = out.value;
  try {
    for (const expression of nameExpressions) checkNvrtc(api, api.symbols.nvrtcAddNameExpression(program, expression), "nvrtcAddNameExpression", JSON.stringify(expression));
    using optionBlock = cStringArray(options);
    const status = api.symbols.nvrtcCompileProgram(program, options.length, optionBlock.ptr);
    const log = logText(readSized(api, program, "nvrtcGetProgramLogSize", "nvrtcGetProgramLog"));
    if (status === NvrtcStatus.compilation) {
      const { message, line } = describeCompileError(source, name, log);
      throw new NvrtcCompileError(log, line, message);
    }
    checkNvrtc(api, status, "nvrtcCompileProgram", log ? `NVRTC log:\n${log}` : `options: ${options.join(" ")}`);
    const kind = arch.startsWith("sm_") ? "cubin" : "ptx";
    const image = kind === "cubin" ? readSized(api, program, "nvrtcGetCUBINSize", "nvrtcGetCUBIN") : readSized(api, program, "nvrtcGetPTXSize", "nvrtcGetPTX");
    const loweredNames = new Map<string, string>();
    for (const expression of nameExpressions) {
      const lowered = Out.pointer();
      checkNvrtc(api, api.symbols.nvrtcGetLoweredName(program, expression, lowered.buffer), "nvrtcGetLoweredName", JSON.stringify(expression));
      loweredNames.set(expression, readCString(lowered.value)!);
    }
    return { kind, image, arch, loweredNames, log, options };
  } finally {
    const handle = new BigUint64Array([BigInt(program)]);
    api.symbols.nvrtcDestroyProgram(handle);
  }
}

/**
 * Compiles CUDA C++ `source` to CUBIN or PTX (see CompileOptions.arch), through the compile
 * cache: the same source, options, NVRTC version and architecture compile once per machine.
 * A compile error throws NvrtcCompileError with the line and NVRTC's log.
 */
export function compile(source: string, options: CompileOptions = {}): CompiledProgram {
  if (typeof source !== "string" || source.length === 0) throw new CudaArgumentError("compile: source must be a non-empty string of CUDA C++");
  const name = options.name ?? "kernel.cu";
  if (typeof name !== "string" || !/^[\w.-]+$/.test(name)) throw new CudaArgumentError(`compile: name must be a file name such as "kernel.cu", got ${JSON.stringify(name)}`);
  const nameExpressions = checkStrings(options.nameExpressions, "nameExpressions");
  const cache = options.cache ?? true;
  if (cache !== true && cache !== false && cache !== "memory") throw new CudaArgumentError(`compile: cache must be true, false or "memory", got ${JSON.stringify(cache)}`);
  const api = options.nvrtc ?? loadNvrtc(options.libraryPath);
  const arch = resolveArch(api, options);
  const list = optionList(arch, options, toolkitIncludeDirs(api.path));
  const version = nvrtcVersion(api);
  const key = cacheKey({ source, name, options: list, nameExpressions, nvrtcVersion: version });
  const dir = cache === true ? (options.cacheDir ?? defaultCacheDir()) : undefined;
  if (cache !== false) {
    const hit = lookup(key, dir, api.path);
    if (hit) return hit;
  }
  const compiled: CompiledProgram = { ...runNvrtc(api, source, name, arch, list, nameExpressions), key, nvrtcVersion: version, cached: undefined };
  if (cache !== false) remember(compiled, dir, api.path);
  return compiled;
}
