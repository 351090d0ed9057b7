// Elementwise kernels from one expression, in the spirit of CuPy's ElementwiseKernel: declare
// the parameters (arrays as "f16[]", scalars as "f32"), write the body for one element, and run
// it over dense buffers (1D, `i` is the index) or over pitched matrices and views (2D, `row` and
// `col`), each array seen as its element: `y = __float2half(a * __half2float(x)) + y`. One
// compile makes both entry points; the compile cache makes the second creation free.
import { NativeResource } from "../../ffi/index.ts";
import type { CudaContext } from "../context.ts";
import { CudaArgumentError } from "../errors.ts";
import { CudaMemory } from "../memory.ts";
import type { CudaStream } from "../stream.ts";
import type { KernelArgType, PitchedArg } from "./arguments.ts";
import { type Kernel, KernelModule, type ModuleOptions } from "./module.ts";
import type { CompileOptions } from "./nvrtc.ts";

/** Element types of arrays and scalars, and their C types. Scalars take the first eight. */
const cTypes = {
  f64: "double", f32: "float", f16: "__half", bf16: "__nv_bfloat16", i64: "long long", u64: "unsigned long long", i32: "int", u32: "unsigned int",
  i16: "short", u16: "unsigned short", i8: "signed char", u8: "unsigned char",
} as const;
export type ElementwiseElement = keyof typeof cTypes;
const scalarTypes: Partial<Record<ElementwiseElement, KernelArgType>> = { f64: "f64", f32: "f32", f16: "f16", bf16: "bf16", i64: "i64", u64: "u64", i32: "i32", u32: "u32" };
const sizes: Readonly<Record<ElementwiseElement, number>> = { f64: 8, f32: 4, f16: 2, bf16: 2, i64: 8, u64: 8, i32: 4, u32: 4, i16: 2, u16: 2, i8: 1, u8: 1 };

/** A parameter declaration: an array of elements ("f16[]") or a scalar ("f32"). */
export type ElementwiseParam = `${ElementwiseElement}[]` | keyof typeof scalarTypes;

/** An array argument: dense device memory (1D), or a pitched matrix or view (2D). */
export type ElementwiseArray = CudaMemory | (PitchedArg & { readonly rows: number; readonly cols: number });

export type ElementwiseArgs<P extends Readonly<Record<string, ElementwiseParam>>> = {
  readonly [K in keyof P]: P[K] extends `${string}[]` ? ElementwiseArray : number | bigint;
};

export interface ElementwiseRunOptions {
  /** 1D: how many elements (default: as many as the first array holds). */
  readonly n?: number;
  readonly stream?: CudaStream;
}

interface Param {
  readonly name: string;
  readonly element: ElementwiseElement;
  readonly array: boolean;
}

const reserved = new Set(["i", "n", "row", "col", "rows", "cols"]);

function parseParams(params: unknown): Param[] {
  if (typeof params !== "object" || params === null) throw new CudaArgumentError("elementwise: params must be an object such as { x: \"f16[]\", a: \"f32\" }");
  const parsed = Object.entries(params).map(([name, type]) => {
    if (!/^[A-Za-z_]\w*$/.test(name) || reserved.has(name) || name.startsWith("gpuffi_")) {
      throw new CudaArgumentError(`elementwise: parameter name ${JSON.stringify(name)} must be a C identifier other than ${[...reserved].join(", ")} (and not start with gpuffi_)`);
    }
    const match = typeof type === "string" ? /^(\w+)(\[\])?$/.exec(type) : null;
    const element = match?.[1] as ElementwiseElement | undefined;
    const array = match?.[2] !== undefined;
    if (!element || !Object.hasOwn(cTypes, element) || (!array && !scalarTypes[element])) {
      throw new CudaArgumentError(`elementwise: parameter ${name} has type ${JSON.stringify(type)}; arrays are ${Object.keys(cTypes).map((t) => `"${t}[]"`).join(", ")}, scalars ${Object.keys(scalarTypes).map((t) => `"${t}"`).join(", ")}`);
    }
    return { name, element, array };
  });
  if (!parsed.some((p) => p.array)) throw new CudaArgumentError("elementwise: declare at least one array parameter (\"f32[]\"…): it sets the shape");
  return parsed;
}

/** The CUDA C++ that `elementwise(context, expression, params)` compiles: both entry points. */
export function elementwiseSource(expression: string, params: Readonly<Record<string, ElementwiseParam>>): string {
  return sourceOf(expression, parseParams(params));
}

function sourceOf(expression: string, params: readonly Param[]): string {
  const body = /[;}]\s*$/.test(expression.trim()) ? expression.trim() : `${expression.trim()};`;
  const arrays = params.filter((p) => p.array);
  const signature1d = [...params.map((p) => (p.array ? `${cTypes[p.element]} *gpuffi_p_${p.name}` : `${cTypes[p.element]} ${p.name}`)), "unsigned long long n"].join(", ");
  const signature2d = [...params.map((p) => (p.array ? `char *gpuffi_p_${p.name}, size_t gpuffi_pitch_${p.name}` : `${cTypes[p.element]} ${p.name}`)), "unsigned int rows", "unsigned int cols"].join(", ");
  return `#include <cuda_fp16.h>
#include <cuda_bf16.h>

extern "C" __global__ void gpuffi_elementwise_1d(${signature1d}) {
  for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (unsigned long long)blockDim.x * gridDim.x) {
${arrays.map((p) => `    ${cTypes[p.element]} &${p.name} = gpuffi_p_${p.name}[i];`).join("\n")}
    ${body}
  }
}

extern "C" __global__ void gpuffi_elementwise_2d(${signature2d}) {
  for (unsigned int row = blockIdx.y * blockDim.y + threadIdx.y; row < rows; row += blockDim.y * gridDim.y) {
    for (unsigned int col = blockIdx.x * blockDim.x + threadIdx.x; col < cols; col += blockDim.x * gridDim.x) {
${arrays.map((p) => `      ${cTypes[p.element]} &${p.name} = reinterpret_cast<${cTypes[p.element]} *>(gpuffi_p_${p.name} + (size_t)row * gpuffi_pitch_${p.name})[col];`).join("\n")}
      ${body}
    }
  }
}
`;
}

function isPitched(value: unknown): value is PitchedArg & { rows: number; cols: number } {
  return typeof value === "object" && value !== null && typeof (value as { pitch?: unknown }).pitch === "number" && typeof (value as { rows?: unknown }).rows === "number";
}

/**
 * An elementwise operation compiled for one device. `run(args)` launches it over the arrays'
 * elements; dispose unloads it.
 */
export class ElementwiseKernel<P extends Readonly<Record<string, ElementwiseParam>>> extends NativeResource {
  readonly context: CudaContext;
  readonly source: string;
  readonly module: KernelModule;
  readonly #params: readonly Param[];
  readonly #kernel1d: Kernel;
  readonly #kernel2d: Kernel;
  /** Argument arrays reused by every run. */
  readonly #args1d: unknown[];
  readonly #args2d: unknown[];
  readonly #grid = [1, 1] as [number, number];
  readonly #config1d: { grid: number; block: number; stream: CudaStream | undefined } = { grid: 1, block: 256, stream: undefined };
  readonly #config2d: { grid: [number, number]; block: readonly [number, number]; stream: CudaStream | undefined };
  #maxBlocks = 0;

  private constructor(context: CudaContext, source: string, module: KernelModule, params: readonly Param[]) {
    const kernel1d = module.kernel("gpuffi_elementwise_1d", [...params.map((p) => (p.array ? "ptr" : scalarTypes[p.element]!)), "u64"]);
    const kernel2d = module.kernel("gpuffi_elementwise_2d", [...params.map((p) => (p.array ? "pitched" : scalarTypes[p.element]!)), "u32", "u32"]);
    super("ElementwiseKernel", () => {
      for (const resource of [kernel1d, kernel2d, module]) if (!resource.disposed) resource.dispose();
    });
    this.context = context;
    this.source = source;
    this.module = module;
    this.#params = params;
    this.#kernel1d = kernel1d;
    this.#kernel2d = kernel2d;
    this.#args1d = new Array(params.length + 1);
    this.#args2d = new Array(params.length + 2);
    this.#config2d = { grid: this.#grid, block: [32, 8], stream: undefined };
  }

  /** Compiles `expression` over `params` for `context`'s device (see the file's header). */
  static create<P extends Readonly<Record<string, ElementwiseParam>>>(context: CudaContext, expression: string, params: P, options: CompileOptions & ModuleOptions = {}): ElementwiseKernel<P> {
    if (typeof expression !== "string" || expression.trim() === "") throw new CudaArgumentError("elementwise: the expression must be CUDA C++ for one element, e.g. \"y = a * x + y\"");
    const parsed = parseParams(params);
    const source = sourceOf(expression, parsed);
    const module = KernelModule.compile(context, source, { name: "elementwise.cu", ...options });
    try {
      return new ElementwiseKernel<P>(context, source, module, parsed);
    } catch (error) {
      module.dispose();
      throw error;
    }
  }

  /** Queues the operation over every element of the arrays in `args` (on `options.stream`). */
  run(args: ElementwiseArgs<P>, options: ElementwiseRunOptions = {}): void {
    this.assertLive();
    if (typeof args !== "object" || args === null) throw new CudaArgumentError("ElementwiseKernel.run: args must be an object with a value for each parameter");
    const params = this.#params;
    const first = (args as Record<string, unknown>)[params.find((p) => p.array)!.name];
    if (isPitched(first)) return this.#run2d(args as Record<string, unknown>, first, options);
    const n = options.n ?? this.#capacity(first, params.find((p) => p.array)!);
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) throw new CudaArgumentError(`ElementwiseKernel.run: n must be a whole number ≥ 0, got ${String(n)}`);
    params.forEach((p, i) => {
      const value = (args as Record<string, unknown>)[p.name];
      if (p.array && isPitched(value)) throw new CudaArgumentError(`ElementwiseKernel.run: ${p.name} is pitched but ${params.find((q) => q.array)!.name} is dense; pass all arrays pitched (2D) or all dense (1D)`);
      if (p.array && value instanceof CudaMemory && this.#capacity(value, p) < n) {
        throw new CudaArgumentError(`ElementwiseKernel.run: ${p.name} holds ${this.#capacity(value, p)} ${p.element} elements, fewer than n = ${n}`);
      }
      this.#args1d[i] = value;
    });
    this.#args1d[params.length] = n;
    if (n === 0) return;
    const config = this.#config1d;
    config.grid = Math.min(Math.ceil(n / config.block), this.#blockLimit());
    config.stream = options.stream;
    this.#kernel1d.launchWith(config, this.#args1d);
  }

  #run2d(args: Record<string, unknown>, first: { rows: number; cols: number }, options: ElementwiseRunOptions): void {
    const { rows, cols } = first;
    if (options.n !== undefined) throw new CudaArgumentError("ElementwiseKernel.run: n is for dense arrays; pitched arrays run over their rows × cols");
    this.#params.forEach((p, i) => {
      const value = args[p.name];
      if (p.array) {
        if (!isPitched(value) || value.rows !== rows || value.cols !== cols) {
          throw new CudaArgumentError(`ElementwiseKernel.run: ${p.name} must be a pitched matrix or view of ${rows}×${cols}, like the first array`);
        }
        const size = (value as { elementSize?: number }).elementSize;
        if (size !== undefined && size !== sizes[p.element]) throw new CudaArgumentError(`ElementwiseKernel.run: ${p.name} holds ${size}-byte elements, but it is declared ${p.element}[]`);
      }
      this.#args2d[i] = value;
    });
    this.#args2d[this.#params.length] = rows;
    this.#args2d[this.#params.length + 1] = cols;
    if (rows === 0 || cols === 0) return;
    this.#grid[0] = Math.min(Math.ceil(cols / 32), 65535);
    this.#grid[1] = Math.min(Math.ceil(rows / 8), 65535);
    this.#config2d.stream = options.stream;
    this.#kernel2d.launchWith(this.#config2d, this.#args2d);
  }

  #capacity(value: unknown, param: Param): number {
    if (value instanceof CudaMemory) return Math.floor(value.byteLength / sizes[param.element]);
    throw new CudaArgumentError(`ElementwiseKernel.run: ${param.name} must be device memory (a buffer or pool block) or a pitched matrix or view; for a bare address give n`);
  }

  /** Enough blocks to fill the device; grid-stride loops do the rest. */
  #blockLimit(): number {
    return (this.#maxBlocks ||= this.context.attribute("multiProcessorCount") * 32);
  }
}

/** `ElementwiseKernel.create`: compiles an elementwise operation for `context`'s device. */
export function elementwise<P extends Readonly<Record<string, ElementwiseParam>>>(context: CudaContext, expression: string, params: P, options?: CompileOptions & ModuleOptions): ElementwiseKernel<P> {
  return ElementwiseKernel.create(context, expression, params, options);
}
