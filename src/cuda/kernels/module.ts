// Loading compiled programs into a device (cuModuleLoadData) and launching their kernels
// (cuLaunchKernel). The driver API loads into the current CUDA context: gpuffi's contexts use
// the device's primary context, which cudaSetDevice makes current (CUDA 12 and later initialize
// it there), the one libcudart's streams and memory belong to, so runtime and driver calls mix.
import { DisposedError, type NativeSymbols, Out, type Pointer } from "../../ffi/index.ts";
import type { CudaContext } from "../context.ts";
import { ContextResource } from "../context-resource.ts";
import { driverDescriber, driverLibrary } from "../device.ts";
import type { libcudaSymbols } from "../driver-library.ts";
import { CudaArgumentError, CudaError, CudaStateError, type ErrorDescriber, isStickyStatus } from "../errors.ts";
import type { CudaStream } from "../stream.ts";
import type { CompiledProgram } from "./cache.ts";
import { ArgumentBlock, type KernelArgType, type KernelArgValue, checkSignature } from "./arguments.ts";
import { type CompileOptions, compile } from "./nvrtc.ts";

type LibcudaSymbols = NativeSymbols<typeof libcudaSymbols>;

/** The driver calls modules and kernels make. Tests substitute a fake. */
export interface KernelDriverApi {
  readonly symbols: Pick<LibcudaSymbols, "cuCtxGetCurrent" | "cuModuleLoadData" | "cuModuleUnload" | "cuModuleGetFunction" | "cuFuncGetAttribute" | "cuFuncSetAttribute" | "cuLaunchKernel">;
  /** Names CUresult codes. */
  readonly describer: ErrorDescriber;
}

let driver: KernelDriverApi | undefined;

/** libcuda's module and launch calls (loaded and initialized on first use). */
export function kernelDriver(): KernelDriverApi {
  if (!driver) {
    const lib = driverLibrary();
    driver = { symbols: lib.symbols, describer: driverDescriber(lib) };
  }
  return driver;
}

/** CUfunction_attribute values (cuda.h). */
const FuncAttribute = { maxThreadsPerBlock: 0, sharedSizeBytes: 1, maxDynamicSharedSizeBytes: 8 } as const;
// CUDA_ERROR_UNSUPPORTED_PTX_VERSION, CUDA_ERROR_NO_BINARY_FOR_GPU, CUDA_ERROR_NOT_FOUND.
const unsupportedPtx = 222;
const noBinaryForGpu = 209;
const notFound = 500;

/** Throws for a failed driver call; a sticky one also marks the device broken, as runtime calls do. */
function checkDriver(context: CudaContext, api: KernelDriverApi, status: number, call: string, detail?: string): void {
  if (status === 0) return;
  // CUresult and cudaError_t share the sticky codes (700 is an illegal address in both).
  if (isStickyStatus(status)) context.check(status, call, detail);
  throw new CudaError(status, call, api.describer, detail);
}

interface ModuleState {
  unloadStatus: number;
}

export interface ModuleOptions {
  /** The driver bindings to use (tests inject a fake; default: libcuda). */
  readonly driver?: KernelDriverApi;
}

/**
 * A compiled program loaded into one device (a CUmodule). Get its kernels with `kernel()`;
 * disposing the module unloads it, after which its kernels throw DisposedError.
 */
export class KernelModule extends ContextResource {
  /** The CUmodule. */
  readonly handle: Pointer;
  readonly compiled: CompiledProgram;
  readonly driver: KernelDriverApi;
  readonly #state: ModuleState;
  readonly #functions = new Map<string, Pointer>();

  private constructor(context: CudaContext, api: KernelDriverApi, handle: Pointer, compiled: CompiledProgram, state: ModuleState) {
    // Phase "event": released before the context's memory and streams, after it waited for the device.
    super(context, "KernelModule", "event", "cuModuleUnload", () => {
      state.unloadStatus = api.symbols.cuModuleUnload(handle);
      // The CUresult is reported by dispose(); ContextResource would read it as a cudaError_t.
      return 0;
    });
    this.handle = handle;
    this.compiled = compiled;
    this.driver = api;
    this.#state = state;
  }

  /** Loads a compiled program into `context`'s device. */
  static load(context: CudaContext, compiled: CompiledProgram, options: ModuleOptions = {}): KernelModule {
    if (typeof compiled !== "object" || compiled === null || !(compiled.image instanceof Uint8Array)) {
      throw new CudaArgumentError("KernelModule.load: expected a CompiledProgram from compile()");
    }
    const api = options.driver ?? kernelDriver();
    context.activate();
    const current = Out.pointer();
    checkDriver(context, api, api.symbols.cuCtxGetCurrent(current.buffer), "cuCtxGetCurrent");
    if (current.value === 0) {
      // cudaFree(0) is the runtime's documented way to initialize the primary context.
      context.check(context.runtime.symbols.cudaFree(0), "cudaFree", "initializing the primary context for cuModuleLoadData");
      checkDriver(context, api, api.symbols.cuCtxGetCurrent(current.buffer), "cuCtxGetCurrent");
      if (current.value === 0) throw new CudaStateError(`KernelModule.load: no CUDA context is current for device ${context.device} after cudaSetDevice and cudaFree(0)`);
    }
    const out = Out.pointer();
    const status = api.symbols.cuModuleLoadData(out.buffer, compiled.image);
    if (status !== 0) {
      const detail = status === unsupportedPtx
        ? `the PTX from NVRTC ${compiled.nvrtcVersion} is newer than this driver (CUDA ${context.driverVersion.major}.${context.driverVersion.minor}) can compile; compile for the device's real architecture (sm_XY, CUBIN) or update the driver`
        : status === noBinaryForGpu
          ? `the program was compiled for ${compiled.arch}, which device ${context.device} cannot run; compile with the context (its architecture is the default)`
          : `loading a ${compiled.kind.toUpperCase()} for ${compiled.arch}`;
      checkDriver(context, api, status, "cuModuleLoadData", detail);
    }
    return new KernelModule(context, api, out.value, compiled, { unloadStatus: 0 });
  }

  /** compile() for the context's device (unless options.arch says otherwise), then load(). */
  static compile(context: CudaContext, source: string, options: CompileOptions & ModuleOptions = {}): KernelModule {
    return KernelModule.load(context, compile(source, { ...options, context }), options);
  }

  /**
   * The CUfunction for `name`: a name expression given to compile() (`scale<__half>`), or a
   * symbol name (an `extern "C"` kernel's own name, or a mangled one).
   */
  function(name: string): Pointer {
    if (typeof name !== "string" || name.length === 0) throw new CudaArgumentError("KernelModule.function: name must be a kernel name");
    this.activate();
    let fn = this.#functions.get(name);
    if (fn === undefined) {
      const symbol = this.compiled.loweredNames.get(name) ?? name;
      const out = Out.pointer();
      const status = this.driver.symbols.cuModuleGetFunction(out.buffer, this.handle, symbol);
      if (status === notFound) {
        const known = [...this.compiled.loweredNames.keys()];
        throw new CudaArgumentError(`KernelModule.function: the module has no kernel ${JSON.stringify(name)}` +
          (symbol !== name ? ` (lowered to ${symbol})` : "") +
          `; declare it extern "C" __global__, or pass its C++ name in compile's nameExpressions${known.length ? ` (given: ${known.join(", ")})` : ""}`);
      }
      checkDriver(this.context, this.driver, status, "cuModuleGetFunction", name);
      fn = out.value;
      this.#functions.set(name, fn);
    }
    return fn;
  }

  /**
   * A kernel of this module with its parameter types, declared once: its argument block is
   * built here and reused by every launch. "pitched" takes a pitched matrix or view and passes
   * two C parameters, its pointer and its pitch in bytes (`T *p, size_t pitch`).
   */
  kernel<const S extends readonly KernelArgType[]>(name: string, signature: S): Kernel<S> {
    checkSignature(signature, `KernelModule.kernel(${JSON.stringify(name)})`);
    return new Kernel(this, name, this.function(name), signature);
  }

  override dispose(): void {
    super.dispose();
    const status = this.#state.unloadStatus;
    this.#state.unloadStatus = 0;
    checkDriver(this.context, this.driver, status, "cuModuleUnload");
  }
}

/** A grid or block size: x, or [x, y, z] (missing ones are 1). */
export type Dim3 = number | readonly [number, number?, number?];

export interface LaunchConfig {
  readonly grid: Dim3;
  readonly block: Dim3;
  /** Dynamic shared memory in bytes (default 0); above 48 KiB the kernel is opted in once with cuFuncSetAttribute. */
  readonly sharedMem?: number;
  /** The stream to queue on (default: the legacy default stream). A launch never waits for the kernel. */
  readonly stream?: CudaStream;
}

const gridLimits = [2 ** 31 - 1, 65535, 65535] as const;
const blockLimits = [1024, 1024, 64] as const;
const axes = ["x", "y", "z"] as const;

/** Writes the three sizes of `dim` into `out` from `at`, checked (messages are built only on failure). */
function readDim(dim: Dim3, limits: readonly number[], out: Uint32Array, at: number, what: string, label: string): void {
  if (typeof dim === "number") {
    out[at] = checkSize(dim, limits[0]!, what, label, 0);
    out[at + 1] = 1;
    out[at + 2] = 1;
    return;
  }
  if (!Array.isArray(dim) || dim.length < 1 || dim.length > 3) throw new CudaArgumentError(`${what}: ${label} must be a number or an array [x, y, z] of 1 to 3 numbers, got ${JSON.stringify(dim)}`);
  for (let i = 0; i < 3; i++) out[at + i] = i < dim.length ? checkSize(dim[i] ?? 1, limits[i]!, what, label, i) : 1;
}

function checkSize(value: number, limit: number, what: string, label: string, axis: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1 || value > limit) {
    throw new CudaArgumentError(`${what}: ${label}.${axes[axis]} must be a whole number from 1 to ${limit}, got ${String(value)}`);
  }
  return value;
}

/** The JS arguments of a launch: one per signature entry, in order. */
export type KernelArgs<S extends readonly KernelArgType[]> = { readonly [K in keyof S]: KernelArgValue<S[K]> };

/**
 * One kernel of a loaded module with its declared parameter types. `launch` checks the
 * configuration and every argument in JS, writes them into the argument block made once here
 * (C heap memory: no allocation per launch) and queues the kernel with cuLaunchKernel.
 */
export class Kernel<S extends readonly KernelArgType[] = readonly KernelArgType[]> extends ContextResource {
  readonly module: KernelModule;
  readonly name: string;
  /** The CUfunction. */
  readonly function: Pointer;
  readonly signature: S;
  /** The most threads a block of this kernel may have (its registers decide). */
  readonly maxThreadsPerBlock: number;
  /** Shared memory the kernel declares statically, in bytes. */
  readonly staticSharedBytes: number;
  readonly #block: ArgumentBlock;
  readonly #dims = new Uint32Array(6);
  /** For messages, made once: a launch builds no strings. */
  readonly #what: string;
  #dynamicSharedLimit: number;

  /** Use {@link KernelModule.kernel}. */
  constructor(module: KernelModule, name: string, fn: Pointer, signature: S) {
    const block = new ArgumentBlock(signature);
    super(module.context, `Kernel ${name}`, "event", "free", () => (block.free(), 0));
    this.module = module;
    this.name = name;
    this.function = fn;
    this.signature = signature;
    this.#block = block;
    this.#what = `Kernel ${name}`;
    this.maxThreadsPerBlock = this.#attribute(FuncAttribute.maxThreadsPerBlock);
    this.staticSharedBytes = this.#attribute(FuncAttribute.sharedSizeBytes);
    this.#dynamicSharedLimit = this.#attribute(FuncAttribute.maxDynamicSharedSizeBytes);
  }

  #attribute(attribute: number): number {
    const out = Out.i32();
    const { driver } = this.module;
    checkDriver(this.context, driver, driver.symbols.cuFuncGetAttribute(out.buffer, attribute, this.function), "cuFuncGetAttribute", this.name);
    return out.value;
  }

  /** Queues the kernel on `config.stream` with `args` (one per signature entry). Returns at once. */
  launch(config: LaunchConfig, ...args: KernelArgs<S>): void {
    this.launchWith(config, args);
  }

  /** launch() with the arguments in an array (which may be reused between launches). */
  launchWith(config: LaunchConfig, args: KernelArgs<S> | readonly unknown[]): void {
    const what = this.#what;
    if (this.module.disposed) throw new DisposedError(`the KernelModule of ${what}`);
    this.activate();
    if (typeof config !== "object" || config === null) throw new CudaArgumentError(`${what}: launch needs a configuration { grid, block, sharedMem?, stream? }`);
    const dims = this.#dims;
    readDim(config.grid, gridLimits, dims, 0, what, "grid");
    readDim(config.block, blockLimits, dims, 3, what, "block");
    const threads = dims[3]! * dims[4]! * dims[5]!;
    if (threads > this.maxThreadsPerBlock) throw new CudaArgumentError(`${what}: a block of ${threads} threads is more than the kernel's limit of ${this.maxThreadsPerBlock}`);
    const sharedMem = config.sharedMem ?? 0;
    if (sharedMem !== 0) this.#allowSharedMem(sharedMem, what);
    const stream = config.stream ? config.stream.handleFor(this.context.device, what) : 0;
    this.#block.write(args, this.context, what);
    const { driver } = this.module;
    const status = driver.symbols.cuLaunchKernel(this.function, dims[0]!, dims[1]!, dims[2]!, dims[3]!, dims[4]!, dims[5]!, sharedMem, stream, this.#block.params, 0);
    if (status !== 0) checkDriver(this.context, driver, status, "cuLaunchKernel", what);
    if (this.context.launchBlocking) this.context.check(this.context.runtime.symbols.cudaStreamSynchronize(stream), "cudaStreamSynchronize", what);
  }

  /** Opts the kernel in to `bytes` of dynamic shared memory, once, where it is above its current limit. */
  #allowSharedMem(bytes: number, what: string): void {
    if (typeof bytes !== "number" || !Number.isSafeInteger(bytes) || bytes < 0) throw new CudaArgumentError(`${what}: sharedMem must be a whole number of bytes ≥ 0, got ${String(bytes)}`);
    if (bytes <= this.#dynamicSharedLimit) return;
    const optin = this.context.attribute("maxSharedMemoryPerBlockOptin");
    if (bytes + this.staticSharedBytes > optin) {
      throw new CudaArgumentError(`${what}: ${bytes} bytes of dynamic shared memory plus ${this.staticSharedBytes} static are more than device ${this.context.device}'s ${optin} bytes per block`);
    }
    const { driver } = this.module;
    checkDriver(this.context, driver, driver.symbols.cuFuncSetAttribute(this.function, FuncAttribute.maxDynamicSharedSizeBytes, bytes), "cuFuncSetAttribute", `${what}: CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = ${bytes}`);
    this.#dynamicSharedLimit = bytes;
  }
}
