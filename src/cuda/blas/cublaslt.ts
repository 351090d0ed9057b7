// PreparedGemm: one GEMM whose cuBLASLt descriptors and algorithm are chosen once, so that each
// run is a single cublasLtMatmul call. cublasGemmEx repeats the same work on every call (it
// describes the operands and asks its heuristics for a kernel); for small GEMMs that host work
// is most of the time a call takes to issue, and the issue time is what bounds a sequence of
// small GEMMs. The preparation reuses planGemm's row-major mapping, so a prepared GEMM computes
// exactly what gemmEx computes on the same matrices. Below even cublasLtMatmul's own host time,
// capture() records one run into a CUDA graph (graph.ts) that replays for one cudaGraphLaunch.
import { dirname } from "node:path";
import { HostMemory, type LibrarySpec, type NativeSymbols, Out, type Pointer, loadLibrary, nativeView, readStruct } from "../../ffi/index.ts";
import { ContextResource } from "../context-resource.ts";
import { type CublasApi, CublasError, type CublasVersion, finishGemm, libraryVersion, preferSoname } from "./cublas-api.ts";
import type { CublasHandle } from "./cublas.ts";
import { CublasOperation, CublasStatus, CudaDataType } from "./cublas-library.ts";
import { CublasLtMatmulDescAttribute, CublasLtPreference, cublasLtMatmulHeuristicResult, cublasLtSpec, cublasLtSymbols } from "./cublaslt-library.ts";
import { CudaArgumentError, CudaStateError } from "../errors.ts";
import { type GemmPlan, checkMatrix, checkOnDevice, describeGemm, sameDescription } from "./gemm-plan.ts";
import { type CaptureOptions, CudaGraph } from "../graph.ts";
import type { Matrix } from "./matrix.ts";
import { CudaStream } from "../stream.ts";

export type CublasLtSymbols = NativeSymbols<typeof cublasLtSymbols>;

/** The cuBLASLt calls a PreparedGemm makes. Tests substitute a host-memory fake. */
export interface CublasLtApi {
  /** Where libcublasLt was loaded from. */
  readonly path: string;
  readonly symbols: CublasLtSymbols;
}

/** A cublasLtHandle_t with the bindings it was made by. */
export interface CublasLtHandle {
  readonly api: CublasLtApi;
  readonly handle: Pointer;
}

/** The types of a mixed-precision GEMM: cudaDataType of A and B, of C, and the cublasComputeType_t. */
export interface GemmTypes {
  readonly operands: number;
  readonly output: number;
  readonly compute: number;
}

export interface PreparedGemmOptions {
  /** Default 1. */
  readonly alpha?: number;
  /** Default 0: C is then only written, never read, so it may hold anything. */
  readonly beta?: number;
}

/** The locator spec: `libcublasLt.so.<major>` first, looked for beside the loaded libcublas before anywhere else. */
export function cublasLtSpecFor(major: number, cublasPath: string): LibrarySpec {
  const spec = preferSoname(cublasLtSpec, `libcublasLt.so.${major}`);
  return { ...spec, searchDirs: (env) => [{ dir: dirname(cublasPath), source: `beside ${cublasPath}` }, ...(cublasLtSpec.searchDirs?.(env) ?? [])] };
}

const loaded = new Map<string, CublasLtApi>();

/** Loads the libcublasLt of the libcublas at `cublasPath` (CUDA `major`); libraries stay loaded for the process. */
export function loadCublasLt(major: number, cublasPath: string): CublasLtApi {
  const key = `${major} ${cublasPath}`;
  let api = loaded.get(key);
  if (!api) {
    const lib = loadLibrary(cublasLtSpecFor(major, cublasPath), cublasLtSymbols);
    api = { path: lib.path, symbols: lib.symbols };
    loaded.set(key, api);
  }
  return api;
}

/** libcublasLt's version (cublasLtGetProperty); failures are reported with libcublas's status names. */
export function cublasLtVersion(cublas: CublasApi, lt: CublasLtApi): CublasVersion {
  return libraryVersion(cublas, (property, out) => lt.symbols.cublasLtGetProperty(property, out), "cublasLtGetProperty");
}

// The algorithm is chosen for operands aligned as the prepared ones, but for no more than 16
// bytes, the alignment of 128-bit and TMA loads: a GEMM prepared on cudaMalloc's 256-byte
// aligned memory then takes any other matrix whose element (0, 0) is 16-byte aligned, as pool
// buffers and most views are, not only 256-byte aligned ones.
const maxAlignment = 16;

/** The largest power of two up to 16 that divides `ptr`: the alignment the algorithm is chosen for. */
function alignmentOf(ptr: Pointer): number {
  let alignment = maxAlignment;
  while (ptr % alignment !== 0) alignment /= 2;
  return alignment;
}

function checkScalar(value: unknown, name: string, what: string): asserts value is number {
  if (typeof value !== "number") throw new CudaArgumentError(`${what}: ${name} must be a number, got ${value === null ? "null" : typeof value}`);
}

const what = "PreparedGemm.run";

/** The native objects of a PreparedGemm, and how to free them (in reverse order). */
interface Parts {
  readonly desc: Pointer;
  readonly layoutFirst: Pointer;
  readonly layoutSecond: Pointer;
  readonly layoutC: Pointer;
  /** alpha and beta (two f32) in C heap memory: every run passes the same two pointers. */
  readonly scalars: HostMemory;
  /** The cublasLtMatmulHeuristicResult_t whose algo every run passes. */
  readonly result: HostMemory;
  readonly destroyers: (() => unknown)[];
}

/**
 * C = alpha·A·B + beta·C for one set of matrix descriptions, prepared once with
 * `CublasHandle.prepareGemm`: the cuBLASLt operation and layout descriptors are made and an
 * algorithm is chosen by cublasLtMatmulAlgoGetHeuristic, so that `run()` is one cublasLtMatmul
 * call on the handle's stream with the handle's workspace. `run(a, b, c)` takes other matrices
 * of the same shapes, types, layouts and leading dimensions (their memory may be anywhere, as
 * aligned as the prepared ones). Dispose it to destroy the descriptors.
 */
export class PreparedGemm extends ContextResource {
  /** The handle whose stream and workspace every run uses. */
  readonly handle: CublasHandle;
  /** The matrices `run()` uses when given none. */
  readonly a: Matrix;
  readonly b: Matrix;
  readonly c: Matrix;
  /** Workspace bytes the chosen algorithm needs: the handle's workspace must stay at least this large. */
  readonly workspaceBytes: number;
  readonly #lt: CublasLtHandle;
  readonly #plan: GemmPlan;
  readonly #parts: Parts;
  readonly #scalars: Float32Array;
  /** The alignments the algorithm was chosen for: of cuBLAS's A (plan.first), B (plan.second) and C. */
  readonly #alignments: readonly [number, number, number];

  private constructor(handle: CublasHandle, lt: CublasLtHandle, plan: GemmPlan, parts: Parts, workspaceBytes: number, alignments: readonly [number, number, number]) {
    const { destroyers } = parts;
    // Phase "event", as the handle's: only host memory depends on the descriptors.
    super(handle.context, "PreparedGemm", "event", "cublasLtMatmulDescDestroy", () => {
      for (const destroy of destroyers.splice(0).reverse()) destroy();
      return 0;
    });
    this.handle = handle;
    this.a = plan.swapped ? plan.second : plan.first;
    this.b = plan.swapped ? plan.first : plan.second;
    this.c = plan.c;
    this.workspaceBytes = workspaceBytes;
    this.#lt = lt;
    this.#plan = plan;
    this.#parts = parts;
    this.#scalars = new Float32Array(nativeView(parts.scalars.ptr, 8));
    this.#alignments = alignments;
  }

  /**
   * @internal Used by CublasHandle.prepareGemm once it has checked the plan, its types and the
   * handle's state: makes the descriptors and keeps the algorithm cuBLASLt's heuristics choose
   * for the handle's workspace and the matrices' alignments.
   */
  static create(handle: CublasHandle, ltHandle: () => CublasLtHandle, plan: GemmPlan, types: GemmTypes, options: PreparedGemmOptions): PreparedGemm {
    const where = "CublasHandle.prepareGemm";
    const alpha = options.alpha ?? 1;
    const beta = options.beta ?? 0;
    checkScalar(alpha, "alpha", where);
    checkScalar(beta, "beta", where);
    if (plan.m === 0 || plan.n === 0 || plan.k === 0) throw new CudaArgumentError(`${where}: ${describeGemm(plan)} is an empty product, which cuBLASLt does not take (gemmEx does)`);
    const lt = ltHandle();
    const { symbols } = lt.api;
    const check = (status: number, call: string) => {
      if (status !== 0) throw new CublasError(status, call, handle.api, describeGemm(plan));
    };
    const destroyers: (() => unknown)[] = [];
    const own = <T>(value: T, destroy: (value: T) => unknown): T => {
      destroyers.push(() => destroy(value));
      return value;
    };
    const create = (call: string, make: (out: ArrayBufferView) => number, destroy: (ptr: Pointer) => number): Pointer => {
      const out = Out.pointer();
      check(make(out.buffer), call);
      return own(out.value, destroy);
    };
    try {
      const scalars = own(HostMemory.alloc(8), (memory) => memory.dispose());
      const result = own(HostMemory.alloc(cublasLtMatmulHeuristicResult.size), (memory) => memory.dispose());
      const desc = create("cublasLtMatmulDescCreate", (out) => symbols.cublasLtMatmulDescCreate(out, types.compute, CudaDataType.f32), (ptr) => symbols.cublasLtMatmulDescDestroy(ptr));
      check(symbols.cublasLtMatmulDescSetAttribute(desc, CublasLtMatmulDescAttribute.transa, new Int32Array([plan.transa]), 4), "cublasLtMatmulDescSetAttribute");
      check(symbols.cublasLtMatmulDescSetAttribute(desc, CublasLtMatmulDescAttribute.transb, new Int32Array([plan.transb]), 4), "cublasLtMatmulDescSetAttribute");
      // A cuBLASLt layout describes the stored matrix (column-major): op(X) is rows × cols, X itself the transpose under op T.
      const layout = (type: number, rows: number, cols: number, op: number, ld: number) =>
        create("cublasLtMatrixLayoutCreate", (out) => symbols.cublasLtMatrixLayoutCreate(out, type, op === CublasOperation.N ? rows : cols, op === CublasOperation.N ? cols : rows, ld), (ptr) => symbols.cublasLtMatrixLayoutDestroy(ptr));
      const parts: Parts = {
        desc,
        layoutFirst: layout(types.operands, plan.m, plan.k, plan.transa, plan.first.ld),
        layoutSecond: layout(types.operands, plan.k, plan.n, plan.transb, plan.second.ld),
        layoutC: layout(types.output, plan.m, plan.n, CublasOperation.N, plan.c.ld),
        scalars,
        result,
        destroyers,
      };
      const alignments = [alignmentOf(plan.first.ptr), alignmentOf(plan.second.ptr), alignmentOf(plan.c.ptr)] as const;
      const workspaceBytes = chooseAlgorithm(lt, parts, handle.workspace?.byteLength ?? 0, alignments, check);
      const prepared = new PreparedGemm(handle, lt, plan, parts, workspaceBytes, alignments);
      prepared.#scalars[0] = alpha;
      prepared.#scalars[1] = beta;
      return prepared;
    } catch (error) {
      for (const destroy of destroyers.reverse()) destroy();
      throw error;
    }
  }

  get alpha(): number {
    this.assertUsable();
    return this.#scalars[0]!;
  }

  /** cuBLASLt reads alpha and beta (host pointer mode) before cublasLtMatmul returns: a new value applies from the next run. */
  set alpha(value: number) {
    this.assertUsable();
    checkScalar(value, "alpha", "PreparedGemm");
    this.#scalars[0] = value;
  }

  get beta(): number {
    this.assertUsable();
    return this.#scalars[1]!;
  }

  set beta(value: number) {
    this.assertUsable();
    checkScalar(value, "beta", "PreparedGemm");
    this.#scalars[1] = value;
  }

  /** Queues the GEMM (one cublasLtMatmul) on the handle's stream, on the prepared matrices or on others described alike. */
  run(a: Matrix = this.a, b: Matrix = this.b, c: Matrix = this.c): void {
    if (a !== this.a || b !== this.b || c !== this.c) this.#checkOperands(a, b, c);
    this.#matmul(a, b, c, this.handle.stream);
  }

  /**
   * Captures one `run()` on the prepared matrices into a CudaGraph on `stream` (default: the
   * handle's), so that each `graph.launch()` queues the GEMM for the host time of one
   * cudaGraphLaunch instead of cublasLtMatmul's. The graph keeps the addresses of the matrices
   * and of the handle's workspace, and alpha and beta as they are now (cuBLAS captures host-mode
   * scalars by value): every launch reads what A, B (and C, when beta ≠ 0) hold then; other
   * matrices, another workspace or new scalars need a new capture. A launch is refused once a
   * matrix's memory or the workspace is disposed.
   */
  capture(stream: CudaStream | undefined = this.handle.stream, options: Pick<CaptureOptions, "mode"> = {}): CudaGraph {
    const where = "PreparedGemm.capture";
    this.assertUsable();
    if (stream === undefined) {
      throw new CudaArgumentError(`${where}: the handle queues on the legacy default stream, which CUDA cannot capture; pass a stream, or give the handle one (setStream)`);
    }
    if (!(stream instanceof CudaStream)) throw new CudaArgumentError(`${where}: expected a CudaStream, got ${stream === null ? "null" : typeof stream}`);
    stream.handleFor(this.context.device, where);
    const workspace = this.handle.workspace;
    const uses = [this.a.memory, this.b.memory, this.c.memory, ...(workspace ? [workspace] : [])];
    return CudaGraph.capture(stream, () => this.#matmul(this.a, this.b, this.c, stream), { ...options, uses });
  }

  /** One cublasLtMatmul of `a`, `b` and `c` (checked) on `stream` with the handle's workspace. */
  #matmul(a: Matrix, b: Matrix, c: Matrix, stream: CudaStream | undefined): void {
    const { handle } = this;
    handle.assertUsable();
    this.activate();
    if (stream?.disposed) throw new CudaStateError(`${what}: the handle's stream was disposed; call setStream on the handle with a live one (or undefined)`);
    const workspace = handle.workspace;
    let workspacePtr = 0;
    let workspaceBytes = 0;
    if (workspace !== undefined) {
      if (workspace.disposed) throw new CudaStateError(`${what}: the handle's workspace was disposed; call setWorkspace on the handle again`);
      workspacePtr = workspace.ptr;
      workspaceBytes = workspace.byteLength;
    }
    if (workspaceBytes < this.workspaceBytes) {
      throw new CudaStateError(`${what}: the algorithm was chosen with a ${this.workspaceBytes}-byte workspace, the handle now has ${workspaceBytes} bytes; prepare the GEMM again`);
    }
    const plan = this.#plan;
    const parts = this.#parts;
    const first = plan.swapped ? b.ptr : a.ptr;
    const second = plan.swapped ? a.ptr : b.ptr;
    const out = c.ptr;
    const scalars = parts.scalars.ptr;
    const streamHandle = stream === undefined ? 0 : stream.handle;
    const lt = this.#lt;
    // D is C, same memory and layout: C = alpha·A·B + beta·C, as a BLAS GEMM writes it.
    const status = lt.api.symbols.cublasLtMatmul(lt.handle, parts.desc, scalars, first, parts.layoutFirst, second, parts.layoutSecond, scalars + 4,
      out, parts.layoutC, out, parts.layoutC, parts.result.ptr, workspacePtr, workspaceBytes, streamHandle);
    finishGemm(this.context, handle.api, status, "cublasLtMatmul", plan, streamHandle);
  }

  /** Checks matrices other than the prepared ones: described alike, on the handle's device, aligned like them. */
  #checkOperands(a: Matrix, b: Matrix, c: Matrix): void {
    const [first, second, out] = this.#alignments;
    const swapped = this.#plan.swapped;
    checkOperand("A", a, this.a, swapped ? second : first, this.context.device);
    checkOperand("B", b, this.b, swapped ? first : second, this.context.device);
    checkOperand("C", c, this.c, out, this.context.device);
  }
}

function checkOperand(name: string, m: Matrix, like: Matrix, alignment: number, device: number): void {
  checkMatrix(m, name, what);
  if (!sameDescription(m, like)) throw new CudaArgumentError(`${what}: ${name} is ${m.describe()}, but the GEMM was prepared for ${like.describe()}`);
  checkOnDevice(name, m, device, what);
  const ptr = m.ptr;
  if (ptr % alignment !== 0) {
    throw new CudaArgumentError(`${what}: ${name} starts at 0x${ptr.toString(16)}, not ${alignment}-byte aligned as the ${name} the algorithm was chosen for; prepare a GEMM for it`);
  }
}

/**
 * Asks cuBLASLt for its best algorithm within `maxWorkspace` bytes and the operands' alignments,
 * leaves it in `parts.result` and returns the workspace it needs.
 */
function chooseAlgorithm(lt: CublasLtHandle, parts: Parts, maxWorkspace: number, alignments: readonly [number, number, number], check: (status: number, call: string) => void): number {
  const { symbols } = lt.api;
  const out = Out.pointer();
  check(symbols.cublasLtMatmulPreferenceCreate(out.buffer), "cublasLtMatmulPreferenceCreate");
  const preference = out.value;
  try {
    const set = (attribute: number, value: Uint32Array | BigUint64Array) =>
      check(symbols.cublasLtMatmulPreferenceSetAttribute(preference, attribute, value, value.byteLength), "cublasLtMatmulPreferenceSetAttribute");
    set(CublasLtPreference.maxWorkspaceBytes, new BigUint64Array([BigInt(maxWorkspace)]));
    set(CublasLtPreference.minAlignmentA, new Uint32Array([alignments[0]]));
    set(CublasLtPreference.minAlignmentB, new Uint32Array([alignments[1]]));
    set(CublasLtPreference.minAlignmentC, new Uint32Array([alignments[2]]));
    set(CublasLtPreference.minAlignmentD, new Uint32Array([alignments[2]]));
    const count = Out.i32();
    const call = "cublasLtMatmulAlgoGetHeuristic";
    check(symbols.cublasLtMatmulAlgoGetHeuristic(lt.handle, parts.desc, parts.layoutFirst, parts.layoutSecond, parts.layoutC, parts.layoutC, preference, 1, parts.result.ptr, count.buffer), call);
    if (count.value < 1) check(CublasStatus.notSupported, `${call} (no algorithm for a ${maxWorkspace}-byte workspace)`);
    const result = readStruct(cublasLtMatmulHeuristicResult, parts.result.ptr);
    check(result.state, `${call} (the algorithm's state)`);
    return result.workspaceSize;
  } finally {
    symbols.cublasLtMatmulPreferenceDestroy(preference);
  }
}
