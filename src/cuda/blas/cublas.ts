// CublasHandle: one cuBLAS context bound to a CudaContext and a stream, with its workspace,
// math mode and pointer mode, and the GEMMs gpuffi offers on Matrix descriptions: fp32
// (cublasSgemm, tf32 by math mode), mixed precision (cublasGemmEx: f16/bf16 operands, fp32
// compute, f16/bf16/f32 output), strided-batched and pointer-array batched, and GEMMs prepared
// once and run many times through cuBLASLt (cublaslt.ts). Every argument is checked in JS before
// the C call; see gemm-plan.ts for the row-major mapping.
import { HostMemory, Out, type Pointer, nativeView } from "../../ffi/index.ts";
import type { CudaContext } from "../context.ts";
import { ContextResource } from "../context-resource.ts";
import { type CublasApi, type CublasVersion, checkCublas, checkCublasRuntime, cublasVersion, finishGemm, loadCublas } from "./cublas-api.ts";
import { CublasCompute, CublasMath, CublasPointerMode, CudaDataType, cublasGemmDefault } from "./cublas-library.ts";
import { type CublasLtApi, type CublasLtHandle, type GemmTypes, PreparedGemm, type PreparedGemmOptions, cublasLtVersion, loadCublasLt } from "./cublaslt.ts";
import { cublasLtSpec } from "./cublaslt-library.ts";
import { CudaArgumentError, CudaStateError } from "../errors.ts";
import { type GemmPlan, checkOnDevice, checkStridedBatch, checkUniformBatch, planGemm } from "./gemm-plan.ts";
import { type Matrix, maxCublasInt } from "./matrix.ts";
import { CudaMemory } from "../memory.ts";
import type { CudaStream } from "../stream.ts";

/** "tf32" lets every fp32 GEMM of the handle round its inputs to TF32 on tensor cores (CUBLAS_TF32_TENSOR_OP_MATH). */
export type MathMode = "default" | "tf32";
/** Where alpha and beta live: "host" (JS numbers, the default) or "device" (4-byte f32 CUDA memory). */
export type PointerMode = "host" | "device";
/** alpha or beta: a number in pointer mode "host", CUDA memory holding one f32 in pointer mode "device". */
export type Scalar = number | CudaMemory;

export interface CublasHandleOptions {
  /** Queue the handle's work on this stream (default: the legacy default stream). */
  readonly stream?: CudaStream;
  readonly mathMode?: MathMode;
  readonly pointerMode?: PointerMode;
  /** A workspace: bytes for the handle to allocate and own, or CUDA memory the caller owns (see setWorkspace). */
  readonly workspace?: number | CudaMemory;
  /** libcublas to use instead of the locator's choice (a file or a directory). */
  readonly libraryPath?: string;
  /** The bindings to use (tests inject a fake; default: the loaded libcublas). */
  readonly api?: CublasApi;
  /** The libcublasLt bindings for prepareGemm (tests inject a fake; default: the libcublasLt beside libcublas, loaded on first use). */
  readonly ltApi?: CublasLtApi;
}

export interface GemmOptions {
  /** Default 1. */
  readonly alpha?: Scalar;
  /** Default 0: C is then only written, never read (BLAS semantics), so it may hold anything. */
  readonly beta?: Scalar;
}

export interface StridedBatchedGemmOptions extends GemmOptions {
  readonly batchCount: number;
  /** Elements between batch entries (default: each matrix's lines × ld, i.e. densely packed; 0 repeats A or B). */
  readonly strideA?: number;
  readonly strideB?: number;
  readonly strideC?: number;
}

interface Workspace {
  readonly memory: CudaMemory;
  /** Allocated by the handle, freed with it. */
  readonly owned: boolean;
}

/** What the release closure shares with the handle (the closure must not capture the handle). */
interface HandleState {
  destroyStatus: number;
  ltDestroyStatus: number;
  workspace: Workspace | undefined;
  /** The cuBLASLt handle of prepareGemm, made on first use. */
  lt: CublasLtHandle | undefined;
}

// Calls without options share one empty object instead of making one each.
const noOptions = Object.freeze({});

// cublasSetWorkspace rejects a workspace not aligned to 256 bytes.
const workspaceAlignment = 256;

function checkMode<T extends string>(value: unknown, allowed: readonly T[], name: string, what: string): asserts value is T {
  if (!allowed.includes(value as T)) throw new CudaArgumentError(`${what}: ${name} must be ${allowed.map((a) => JSON.stringify(a)).join(" or ")}, got ${JSON.stringify(value)}`);
}

export class CublasHandle extends ContextResource {
  /** The cublasHandle_t. */
  readonly handle: Pointer;
  readonly api: CublasApi;
  /** libcublas's version (cublasGetProperty), checked against the context's libcudart. */
  readonly version: CublasVersion;
  readonly #state: HandleState;
  /** alpha and beta for pointer mode "host": C heap memory, so calls pass plain addresses. */
  readonly #scalars: Float32Array;
  readonly #scalarPtr: Pointer;
  readonly #ltApi: CublasLtApi | undefined;
  #stream: CudaStream | undefined;
  #mathMode: MathMode = "default";
  #pointerMode: PointerMode = "host";

  private constructor(context: CudaContext, api: CublasApi, ltApi: CublasLtApi | undefined, handle: Pointer, version: CublasVersion, scalars: HostMemory, state: HandleState) {
    // Phase "event": released before the context's memory and streams, which the handle may use
    // (its stream, a workspace buffer). cublasDestroy waits for the handle's work to finish.
    super(context, "CublasHandle", "event", "cublasDestroy_v2", () => {
      if (state.lt) state.ltDestroyStatus = state.lt.api.symbols.cublasLtDestroy(state.lt.handle);
      state.lt = undefined;
      state.destroyStatus = api.symbols.cublasDestroy_v2(handle);
      scalars.dispose();
      const workspace = state.workspace;
      state.workspace = undefined;
      if (workspace?.owned && !workspace.memory.disposed) workspace.memory.dispose();
      // The cuBLAS status is reported by dispose(); ContextResource would read it as a cudaError_t.
      return 0;
    });
    this.handle = handle;
    this.api = api;
    this.#ltApi = ltApi;
    this.version = version;
    this.#state = state;
    this.#scalars = new Float32Array(nativeView(scalars.ptr, 8));
    this.#scalarPtr = scalars.ptr;
  }

  /**
   * Creates a handle on `context`'s device. Loads libcublas for the context's CUDA major version
   * and refuses one of another major version. Options are checked before any C call.
   */
  static create(context: CudaContext, options: CublasHandleOptions = {}): CublasHandle {
    const what = "CublasHandle.create";
    const mathMode = options.mathMode ?? "default";
    checkMode(mathMode, ["default", "tf32"], "mathMode", what);
    const pointerMode = options.pointerMode ?? "host";
    checkMode(pointerMode, ["host", "device"], "pointerMode", what);
    if (options.workspace !== undefined) checkWorkspace(options.workspace, context.device, what);
    options.stream?.handleFor(context.device, what);
    context.activate();
    const api = options.api ?? loadCublas(context.runtimeVersion.major, options.libraryPath);
    const version = cublasVersion(api);
    checkCublasRuntime(version, api.path, context.runtimeVersion, context.runtime.path);
    const out = Out.pointer();
    checkCublas(api, api.symbols.cublasCreate_v2(out.buffer), "cublasCreate_v2", `on device ${context.device}`);
    const handle = new CublasHandle(context, api, options.ltApi, out.value, version, HostMemory.alloc(8), { destroyStatus: 0, ltDestroyStatus: 0, workspace: undefined, lt: undefined });
    try {
      if (options.stream) handle.setStream(options.stream);
      if (mathMode !== "default") handle.setMathMode(mathMode);
      if (pointerMode !== "host") handle.setPointerMode(pointerMode);
      if (options.workspace !== undefined) handle.setWorkspace(options.workspace);
    } catch (error) {
      try {
        handle.dispose();
      } catch {
        // The setup error is the one to report.
      }
      throw error;
    }
    return handle;
  }

  /** cublasGetVersion: major × 10000 + minor × 100 + patch, e.g. 130100. */
  get versionNumber(): number {
    this.activate();
    const out = Out.i32();
    this.#check(this.api.symbols.cublasGetVersion_v2(this.handle, out.buffer), "cublasGetVersion_v2");
    return out.value;
  }

  /** The stream the handle queues on (undefined: the legacy default stream). */
  get stream(): CudaStream | undefined {
    return this.#stream;
  }

  setStream(stream: CudaStream | undefined): void {
    this.activate();
    const handle = stream ? stream.handleFor(this.context.device, "CublasHandle.setStream") : 0;
    this.#check(this.api.symbols.cublasSetStream_v2(this.handle, handle), "cublasSetStream_v2");
    this.#stream = stream;
    // cublasSetStream resets the workspace to cuBLAS's own pool: give the handle's back.
    const workspace = this.#state.workspace;
    if (workspace) this.#check(this.api.symbols.cublasSetWorkspace_v2(this.handle, workspace.memory.ptr, workspace.memory.byteLength), "cublasSetWorkspace_v2");
  }

  get mathMode(): MathMode {
    return this.#mathMode;
  }

  setMathMode(mode: MathMode): void {
    checkMode(mode, ["default", "tf32"], "mode", "CublasHandle.setMathMode");
    this.activate();
    this.#check(this.api.symbols.cublasSetMathMode(this.handle, CublasMath[mode]), "cublasSetMathMode");
    this.#mathMode = mode;
  }

  get pointerMode(): PointerMode {
    return this.#pointerMode;
  }

  setPointerMode(mode: PointerMode): void {
    checkMode(mode, ["host", "device"], "mode", "CublasHandle.setPointerMode");
    this.activate();
    this.#check(this.api.symbols.cublasSetPointerMode_v2(this.handle, CublasPointerMode[mode]), "cublasSetPointerMode_v2");
    this.#pointerMode = mode;
  }

  /** The workspace's size in bytes, or undefined while cuBLAS uses its own pool. */
  get workspaceBytes(): number | undefined {
    return this.#state.workspace?.memory.byteLength;
  }

  /** The workspace memory (see setWorkspace), or undefined while cuBLAS uses its own pool. */
  get workspace(): CudaMemory | undefined {
    return this.#state.workspace?.memory;
  }

  /**
   * Gives cuBLAS a workspace for the handle's calls: a byte count (the handle allocates it and
   * frees it with itself; NVIDIA recommends 32 MiB on Hopper, 4 MiB elsewhere), CUDA memory the
   * caller keeps alive while the handle uses it, or undefined for cuBLAS's own pool again.
   */
  setWorkspace(workspace: number | CudaMemory | undefined): void {
    const what = "CublasHandle.setWorkspace";
    if (workspace !== undefined) checkWorkspace(workspace, this.context.device, what);
    this.activate();
    const next: Workspace | undefined = workspace === undefined ? undefined : typeof workspace === "number" ? { memory: this.context.alloc(workspace), owned: true } : { memory: workspace, owned: false };
    // cublasSetStream with the current stream is cuBLAS's documented way back to its own pool.
    const status = next
      ? this.api.symbols.cublasSetWorkspace_v2(this.handle, next.memory.ptr, next.memory.byteLength)
      : this.api.symbols.cublasSetStream_v2(this.handle, this.#stream?.handle ?? 0);
    if (status !== 0) {
      if (next?.owned) next.memory.dispose();
      this.#check(status, next ? "cublasSetWorkspace_v2" : "cublasSetStream_v2");
    }
    const previous = this.#state.workspace;
    this.#state.workspace = next;
    if (previous?.owned && !previous.memory.disposed) {
      // Work queued before may still use it.
      this.context.check(this.context.runtime.symbols.cudaStreamSynchronize(this.#stream?.handle ?? 0), "cudaStreamSynchronize", "before freeing the previous cuBLAS workspace");
      previous.memory.dispose();
    }
  }

  /** C = alpha·A·B + beta·C in fp32 (cublasSgemm); tf32 when the math mode is "tf32". Transpose operands with `Matrix.t()`. */
  gemm(a: Matrix, b: Matrix, c: Matrix, options: GemmOptions = noOptions): void {
    const what = "CublasHandle.gemm";
    const plan = planGemm(a, b, c, what);
    checkF32("A", a, what);
    checkF32("B", b, what);
    checkF32("C", c, what);
    this.#prepare(plan, what);
    const alpha = this.#scalar(options.alpha, 1, 0, "alpha", what);
    const beta = this.#scalar(options.beta, 0, 1, "beta", what);
    const { first, second } = plan;
    const status = this.api.symbols.cublasSgemm_v2(this.handle, plan.transa, plan.transb, plan.m, plan.n, plan.k, alpha, first.ptr, first.ld, second.ptr, second.ld, beta, c.ptr, c.ld);
    this.#finish(status, "cublasSgemm_v2", plan);
  }

  /**
   * C = alpha·A·B + beta·C with cublasGemmEx: A and B of one type (f16, bf16 or f32), C of that
   * type or f32, fp32 accumulation (tf32 for f32 operands when the math mode is "tf32").
   */
  gemmEx(a: Matrix, b: Matrix, c: Matrix, options: GemmOptions = noOptions): void {
    const what = "CublasHandle.gemmEx";
    const plan = planGemm(a, b, c, what);
    const types = this.#exTypes(plan, what);
    this.#prepare(plan, what);
    const alpha = this.#scalar(options.alpha, 1, 0, "alpha", what);
    const beta = this.#scalar(options.beta, 0, 1, "beta", what);
    const { first, second } = plan;
    const status = this.api.symbols.cublasGemmEx(this.handle, plan.transa, plan.transb, plan.m, plan.n, plan.k, alpha,
      first.ptr, types.operands, first.ld, second.ptr, types.operands, second.ld, beta, c.ptr, types.output, c.ld, types.compute, cublasGemmDefault);
    this.#finish(status, "cublasGemmEx", plan);
  }

  /**
   * `batchCount` GEMMs whose i-th operands start `i × stride` elements after the given matrices
   * (cublasGemmStridedBatchedEx; types as for gemmEx).
   */
  gemmStridedBatched(a: Matrix, b: Matrix, c: Matrix, options: StridedBatchedGemmOptions): void {
    const what = "CublasHandle.gemmStridedBatched";
    const plan = planGemm(a, b, c, what);
    const types = this.#exTypes(plan, what);
    if (typeof options !== "object" || options === null) throw new CudaArgumentError(`${what}: options with batchCount are required`);
    const batch = checkStridedBatch(plan, a, b, options, what);
    this.#prepare(plan, what);
    const alpha = this.#scalar(options.alpha, 1, 0, "alpha", what);
    const beta = this.#scalar(options.beta, 0, 1, "beta", what);
    if (batch.batchCount === 0) return;
    const { first, second } = plan;
    const [strideFirst, strideSecond] = plan.swapped ? [batch.strideB, batch.strideA] : [batch.strideA, batch.strideB];
    const status = this.api.symbols.cublasGemmStridedBatchedEx(this.handle, plan.transa, plan.transb, plan.m, plan.n, plan.k, alpha,
      first.ptr, types.operands, first.ld, strideFirst, second.ptr, types.operands, second.ld, strideSecond, beta,
      c.ptr, types.output, c.ld, batch.strideC, batch.batchCount, types.compute, cublasGemmDefault);
    this.#finish(status, "cublasGemmStridedBatchedEx", plan);
  }

  /**
   * C[i] = alpha·A[i]·B[i] + beta·C[i] for matrices anywhere in memory, all A of one shape, type,
   * layout and ld (likewise B and C): cublasGemmBatchedEx. The pointer arrays go to device
   * memory allocated stream-ordered on the handle's stream; on the legacy default stream the call
   * waits for the GEMMs before freeing them, so give the handle a stream.
   */
  gemmBatched(as: readonly Matrix[], bs: readonly Matrix[], cs: readonly Matrix[], options: GemmOptions = noOptions): void {
    const what = "CublasHandle.gemmBatched";
    if (!Array.isArray(as) || !Array.isArray(bs) || !Array.isArray(cs)) throw new CudaArgumentError(`${what}: A, B and C must be arrays of Matrix`);
    if (as.length !== bs.length || as.length !== cs.length) {
      throw new CudaArgumentError(`${what}: ${as.length} A, ${bs.length} B and ${cs.length} C matrices: the batch needs one of each per product`);
    }
    if (as.length > maxCublasInt) throw new CudaArgumentError(`${what}: ${as.length} products are more than cuBLAS's batchCount (an int) takes`);
    if (as.length === 0) return;
    checkUniformBatch("A", as, what);
    checkUniformBatch("B", bs, what);
    checkUniformBatch("C", cs, what);
    const plan = planGemm(as[0]!, bs[0]!, cs[0]!, what);
    const types = this.#exTypes(plan, what);
    this.#prepare(plan, what);
    for (const [name, list] of [["A", as], ["B", bs], ["C", cs]] as const) list.forEach((m, i) => checkOnDevice(`${name}[${i}]`, m, this.context.device, what));
    const alpha = this.#scalar(options.alpha, 1, 0, "alpha", what);
    const beta = this.#scalar(options.beta, 0, 1, "beta", what);
    const count = as.length;
    const [firsts, seconds] = plan.swapped ? [bs, as] : [as, bs];
    const table = new BigUint64Array(3 * count);
    for (let i = 0; i < count; i++) {
      table[i] = BigInt(firsts[i]!.ptr);
      table[count + i] = BigInt(seconds[i]!.ptr);
      table[2 * count + i] = BigInt(cs[i]!.ptr);
    }
    const stream = this.#stream;
    const onStream = stream === undefined ? {} : { stream };
    const pointers = this.context.alloc(table.byteLength, onStream);
    let status: number;
    try {
      pointers.write(table, onStream);
      status = this.api.symbols.cublasGemmBatchedEx(this.handle, plan.transa, plan.transb, plan.m, plan.n, plan.k, alpha,
        pointers.ptr, types.operands, plan.first.ld, pointers.ptr + 8 * count, types.operands, plan.second.ld, beta,
        pointers.ptr + 16 * count, types.output, plan.c.ld, count, types.compute, cublasGemmDefault);
      // A stream-ordered free waits for the GEMMs by itself; cudaFree on the legacy stream is not ordered after them.
      if (stream === undefined) this.context.check(this.context.runtime.symbols.cudaStreamSynchronize(0), "cudaStreamSynchronize", "after cublasGemmBatchedEx");
    } finally {
      pointers.dispose();
    }
    this.#finish(status, "cublasGemmBatchedEx", plan);
  }

  /**
   * Prepares C = alpha·A·B + beta·C for cuBLASLt (see PreparedGemm): types as for gemmEx, the
   * compute type from the math mode now, alpha and beta numbers (cuBLASLt reads them from host
   * memory whatever the handle's pointer mode). The descriptors and the algorithm are made
   * once here, each `run()` is one cublasLtMatmul on the handle's stream and workspace.
   */
  prepareGemm(a: Matrix, b: Matrix, c: Matrix, options: PreparedGemmOptions = noOptions): PreparedGemm {
    const what = "CublasHandle.prepareGemm";
    const plan = planGemm(a, b, c, what);
    const types = this.#exTypes(plan, what);
    this.#prepare(plan, what);
    return PreparedGemm.create(this, () => this.#lt(), plan, types, options);
  }

  override dispose(): void {
    super.dispose();
    const { destroyStatus, ltDestroyStatus } = this.#state;
    this.#state.destroyStatus = 0;
    this.#state.ltDestroyStatus = 0;
    this.#check(ltDestroyStatus, "cublasLtDestroy");
    this.#check(destroyStatus, "cublasDestroy_v2");
  }

  /** The cuBLASLt handle, made on first use with the libcublasLt of this handle's libcublas (checked against libcudart too). */
  #lt(): CublasLtHandle {
    const state = this.#state;
    if (state.lt) return state.lt;
    const api = this.#ltApi ?? loadCublasLt(this.version.major, this.api.path);
    checkCublasRuntime(cublasLtVersion(this.api, api), api.path, this.context.runtimeVersion, this.context.runtime.path, cublasLtSpec);
    const out = Out.pointer();
    this.#check(api.symbols.cublasLtCreate(out.buffer), "cublasLtCreate");
    state.lt = { api, handle: out.value };
    return state.lt;
  }

  #check(status: number, call: string): void {
    checkCublas(this.api, status, call);
  }

  /** Checks that the handle, its stream and workspace and the plan's matrices can be used here, then activates the device. */
  #prepare(plan: GemmPlan, what: string): void {
    this.activate();
    if (this.#stream?.disposed) throw new CudaStateError(`${what}: the handle's stream was disposed; call setStream with a live one (or undefined)`);
    if (this.#state.workspace?.memory.disposed) throw new CudaStateError(`${what}: the workspace given to setWorkspace was disposed; call setWorkspace again`);
    const device = this.context.device;
    checkOnDevice(plan.swapped ? "B" : "A", plan.first, device, what);
    checkOnDevice(plan.swapped ? "A" : "B", plan.second, device, what);
    checkOnDevice("C", plan.c, device, what);
  }

  #exTypes(plan: GemmPlan, what: string): GemmTypes {
    const { first, second, c } = plan;
    if (first.dtype !== second.dtype) {
      const [a, b] = plan.swapped ? [second, first] : [first, second];
      throw new CudaArgumentError(`${what}: A is ${a.dtype} but B is ${b.dtype}; cuBLAS takes both operands in one type`);
    }
    if (c.dtype !== first.dtype && c.dtype !== "f32") {
      throw new CudaArgumentError(`${what}: C is ${c.dtype} but A and B are ${first.dtype}; the output must be ${first.dtype} or f32`);
    }
    const tf32 = first.dtype === "f32" && this.#mathMode === "tf32";
    return { operands: CudaDataType[first.dtype], output: CudaDataType[c.dtype], compute: tf32 ? CublasCompute.f32FastTf32 : CublasCompute.f32 };
  }

  /** The address to pass for alpha (slot 0) or beta (slot 1), per the pointer mode. */
  #scalar(value: Scalar | undefined, fallback: number, slot: 0 | 1, name: string, what: string): Pointer {
    if (this.#pointerMode === "host") {
      const number = value ?? fallback;
      if (typeof number !== "number") throw new CudaArgumentError(`${what}: ${name} must be a number in pointer mode "host", got ${number === null ? "null" : typeof number}`);
      // cuBLAS reads host scalars before the call returns, so one slot serves every call.
      this.#scalars[slot] = number;
      return this.#scalarPtr + 4 * slot;
    }
    if (!(value instanceof CudaMemory)) {
      throw new CudaArgumentError(`${what}: in pointer mode "device", ${name} must be CUDA memory holding one f32 (read when the GEMM runs), got ${value === undefined ? "nothing" : typeof value}`);
    }
    if (value.device !== this.context.device) throw new CudaArgumentError(`${what}: ${name} is on device ${value.device}, the handle on device ${this.context.device}`);
    return value.address(0, 4);
  }

  #finish(status: number, call: string, plan: GemmPlan): void {
    finishGemm(this.context, this.api, status, call, plan, this.#stream?.handle ?? 0);
  }
}

function checkF32(name: string, m: Matrix, what: string): void {
  if (m.dtype !== "f32") throw new CudaArgumentError(`${what}: ${name} is ${m.dtype}; gemm is the fp32 GEMM (cublasSgemm): use gemmEx for f16/bf16`);
}

function checkWorkspace(workspace: unknown, device: number, what: string): void {
  if (typeof workspace === "number") {
    if (!Number.isSafeInteger(workspace) || workspace <= 0) throw new CudaArgumentError(`${what}: a workspace size must be a positive whole number of bytes, got ${workspace}`);
    return;
  }
  if (!(workspace instanceof CudaMemory)) throw new CudaArgumentError(`${what}: workspace must be a byte count or CUDA memory, got ${workspace === null ? "null" : typeof workspace}`);
  if (workspace.device !== device) throw new CudaArgumentError(`${what}: the workspace is on device ${workspace.device}, the handle on device ${device}`);
  const ptr = workspace.address();
  if (ptr % workspaceAlignment !== 0) throw new CudaArgumentError(`${what}: cuBLAS needs a workspace aligned to ${workspaceAlignment} bytes; this one starts at 0x${ptr.toString(16)}`);
}
