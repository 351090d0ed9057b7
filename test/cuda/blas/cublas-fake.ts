// A host-memory libcublas and libcublasLt, so that the cuBLAS layer (validation, the row-major
// mapping, batches, prepared GEMMs, handle state, disposal) runs end to end on machines without
// a GPU. Its GEMMs are the BLAS reference algorithm on the fake libcudart's memory (real C heap),
// and it checks arguments as cuBLAS documents (ld ≥ max(1, rows of the stored operand),
// supported type combinations, cuBLASLt's layouts against the operation's transposes, attribute
// sizes, the workspace and alignments the chosen algorithm needs), answering
// CUBLAS_STATUS_INVALID_VALUE otherwise, so a wrong mapping fails the numeric tests instead of
// being mirrored by the fake. Every call of both libraries is recorded with its arguments. A GEMM
// is checked when it is called and computed as work of its stream on the fake libcudart (at once,
// queued when deferred, recorded while the stream captures); host-mode alpha and beta are read at
// the call, as cuBLAS reads them (so a captured GEMM keeps them), device-mode ones when it runs.
import { nativeView, type Pointer, writeStructAt } from "../../../src/ffi/index.ts";
import { type RecordedCall, recordingSymbols } from "../recording-symbols.ts";
import {
  type CublasApi,
  type CublasLtApi,
  type CublasLtSymbols,
  type CublasSymbols,
  type CudartApi,
  CudaContext,
  CudaRuntime,
  cublasLtMatmulHeuristicResult,
} from "../../../src/cuda/index.ts";
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from "../../../src/formats/half.ts";
import { type FakeCudart, fakeCudart } from "../fake-cudart.ts";

export interface HandleState {
  stream: Pointer;
  workspace: Pointer;
  workspaceBytes: number;
  mathMode: number;
  pointerMode: number;
}

export interface FakeCublas {
  readonly api: CublasApi;
  readonly ltApi: CublasLtApi;
  /** The calls of both libraries, in order. */
  readonly calls: RecordedCall[];
  readonly handles: Map<Pointer, HandleState>;
  readonly lt: FakeLtState;
  /** The status the next call of that name returns instead of running. */
  readonly failNext: Map<string, number>;
}

export interface FakeLtState {
  readonly handles: Set<Pointer>;
  /** Live descriptors (matmul descriptors, layouts, preferences) by address. */
  readonly descriptors: Map<Pointer, LtDescriptor>;
  /** How many algorithms cublasLtMatmulAlgoGetHeuristic finds (default 1; 0 for none). */
  algorithms: number;
  /** The workspace the fake's algorithm takes, up to the preference's maximum (default 4096 bytes). */
  workspaceWanted: number;
}

export type LtDescriptor =
  | { kind: "matmul"; compute: number; scale: number; transa: number; transb: number }
  | { kind: "layout"; type: number; rows: number; cols: number; ld: number }
  | { kind: "preference"; maxWorkspace: number; alignments: [number, number, number, number] };

const statusNames: Record<number, string> = { 0: "CUBLAS_STATUS_SUCCESS", 1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED", 7: "CUBLAS_STATUS_INVALID_VALUE", 13: "CUBLAS_STATUS_EXECUTION_FAILED", 15: "CUBLAS_STATUS_NOT_SUPPORTED" };
const invalidValue = 7;
const notSupported = 15;
// What the fake's algorithm descriptor (cublasLtMatmulAlgo_t) holds: a tag, then the workspace
// and the A, B, C and D alignments it was chosen for, which cublasLtMatmul holds the call to.
const algoTag = 0x4c74n;
// cudaDataType: CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF.
const elementSizes: Record<number, number> = { 0: 4, 2: 2, 14: 2 };
// (A/B type, C type) pairs cublasGemmEx takes with CUBLAS_COMPUTE_32F*.
const supported = new Set(["0/0", "2/2", "2/0", "14/14", "14/0"]);

/** Rounds an f32 value to TF32 (10 explicit mantissa bits), as tensor cores read it. */
function toTf32(value: number): number {
  const f = new Float32Array([value]);
  const u = new Uint32Array(f.buffer);
  u[0] = (u[0]! + 0x1000) & ~0x1fff;
  return f[0]!;
}

function reader(ptr: Pointer, type: number, count: number): (i: number) => number {
  if (count === 0) return () => 0;
  if (type === 0) {
    const view = new Float32Array(nativeView(ptr, count * 4));
    return (i) => view[i]!;
  }
  const view = new Uint16Array(nativeView(ptr, count * 2));
  return type === 2 ? (i) => f16BitsToF32(view[i]!) : (i) => bf16BitsToF32(view[i]!);
}

function writer(ptr: Pointer, type: number, count: number): (i: number, v: number) => void {
  if (count === 0) return () => {};
  if (type === 0) {
    const view = new Float32Array(nativeView(ptr, count * 4));
    return (i, v) => void (view[i] = v);
  }
  const view = new Uint16Array(nativeView(ptr, count * 2));
  return type === 2 ? (i, v) => void (view[i] = f32ToF16Bits(v)) : (i, v) => void (view[i] = f32ToBf16Bits(v));
}

interface Gemm {
  transa: number; transb: number; m: number; n: number; k: number;
  alpha: Pointer; a: Pointer; atype: number; lda: number; b: Pointer; btype: number; ldb: number;
  beta: Pointer; c: Pointer; ctype: number; ldc: number; tf32: boolean;
  /** alpha and beta point to device memory, read when the GEMM runs (CUBLAS_POINTER_MODE_DEVICE). */
  deviceScalars?: boolean;
}

/** Submits stream-ordered work (the fake libcudart's `enqueue`) and returns the cudaError_t. */
export type Enqueue = (stream: Pointer, op: () => void) => number;

/** The cuBLAS argument rules; a status, 0 when the call may run. */
function validate(g: Gemm): number {
  if (g.m < 0 || g.n < 0 || g.k < 0) return invalidValue;
  if (![0, 1].includes(g.transa) || ![0, 1].includes(g.transb)) return invalidValue;
  if (g.lda < Math.max(1, g.transa === 0 ? g.m : g.k)) return invalidValue;
  if (g.ldb < Math.max(1, g.transb === 0 ? g.k : g.n)) return invalidValue;
  if (g.ldc < Math.max(1, g.m)) return invalidValue;
  if (g.atype !== g.btype || !supported.has(`${g.atype}/${g.ctype}`)) return invalidValue;
  return 0;
}

/** cuBLAS's answer to a stream's work it could not queue (the cudaError_t is not a cublasStatus_t). */
const executionFailed = 13;

/** Checks a GEMM now and submits its computation to `stream`; returns the status of the call. */
function submit(g: Gemm, stream: Pointer, enqueue: Enqueue): number {
  const status = validate(g);
  if (status !== 0 || g.m === 0 || g.n === 0) return status;
  const read = (ptr: Pointer) => new Float32Array(nativeView(ptr, 4))[0]!;
  const scalars = g.deviceScalars ? undefined : [read(g.alpha), read(g.beta)] as const;
  return enqueue(stream, () => compute(g, scalars ?? [read(g.alpha), read(g.beta)])) === 0 ? 0 : executionFailed;
}

/** Column-major reference GEMM: C = alpha·op(A)·op(B) + beta·C, C not read when beta is 0. */
function compute(g: Gemm, [alpha, beta]: readonly [number, number]): void {
  const span = (rows: number, cols: number, ld: number) => (cols - 1) * ld + rows;
  const aRows = g.transa === 0 ? g.m : g.k;
  const bRows = g.transb === 0 ? g.k : g.n;
  const readA = reader(g.a, g.atype, g.k === 0 ? 0 : span(aRows, g.transa === 0 ? g.k : g.m, g.lda));
  const readB = reader(g.b, g.btype, g.k === 0 ? 0 : span(bRows, g.transb === 0 ? g.n : g.k, g.ldb));
  const cCount = span(g.m, g.n, g.ldc);
  const readC = reader(g.c, g.ctype, cCount);
  const writeC = writer(g.c, g.ctype, cCount);
  const input = g.tf32 ? toTf32 : (v: number) => v;
  for (let j = 0; j < g.n; j++) {
    for (let i = 0; i < g.m; i++) {
      let sum = 0;
      for (let p = 0; p < g.k; p++) {
        const a = readA(g.transa === 0 ? i + p * g.lda : p + i * g.lda);
        const b = readB(g.transb === 0 ? p + j * g.ldb : j + p * g.ldb);
        sum += input(a) * input(b);
      }
      const at = i + j * g.ldc;
      writeC(at, alpha * sum + (beta === 0 ? 0 : beta * readC(at)));
    }
  }
}

export interface FakeCublasOptions {
  version?: [number, number, number];
  /** A list to append every call's name to as well, e.g. the fake libcudart's, to check the order of both. */
  log?: string[];
  /** Where GEMMs run: the fake libcudart's stream work (default: computed during the call). */
  enqueue?: Enqueue;
}

export function fakeCublas(options: FakeCublasOptions = {}): FakeCublas {
  const [major, minor, patch] = options.version ?? [13, 1, 0];
  const calls: RecordedCall[] = [];
  const handles = new Map<Pointer, HandleState>();
  const failNext = new Map<string, number>();
  let next = 0xc0b1a5;
  const state = (h: Pointer) => handles.get(h);
  const writeInt = (out: ArrayBufferView | null, value: number) => void (new Int32Array(out!.buffer, out!.byteOffset, 1)[0] = value);
  const ex = (h: Pointer, compute: number) => compute === 77 || (compute === 68 && state(h)?.mathMode === 3);
  const enqueue: Enqueue = options.enqueue ?? ((_, op) => (op(), 0));
  /** A GEMM of handle `h` on its stream, with its pointer mode. */
  const run = (h: Pointer, g: Gemm) => submit({ ...g, deviceScalars: state(h)!.pointerMode === 1 }, state(h)!.stream, enqueue);
  const implementation: Record<string, (...args: never[]) => unknown> = {
    cublasCreate_v2: (out: ArrayBufferView) => {
      const h = next++;
      handles.set(h, { stream: 0, workspace: 0, workspaceBytes: 0, mathMode: 0, pointerMode: 0 });
      new BigUint64Array(out.buffer, out.byteOffset, 1)[0] = BigInt(h);
      return 0;
    },
    cublasDestroy_v2: (h: Pointer) => (handles.delete(h) ? 0 : 1),
    cublasGetVersion_v2: (h: Pointer, out: ArrayBufferView) => (state(h) ? (writeInt(out, major * 10000 + minor * 100 + patch), 0) : 1),
    cublasGetProperty: (type: number, out: ArrayBufferView) => (type > 2 ? invalidValue : (writeInt(out, [major, minor, patch][type]!), 0)),
    cublasSetWorkspace_v2: (h: Pointer, ptr: Pointer, bytes: number) => {
      const s = state(h);
      if (!s) return 1;
      // No 256-byte alignment check: the fake libcudart's calloc memory is only 16-aligned,
      // where cudaMalloc's is 256 (gpuffi checks caller-owned workspaces in JS).
      Object.assign(s, { workspace: ptr, workspaceBytes: bytes });
      return 0;
    },
    cublasSetStream_v2: (h: Pointer, stream: Pointer) => {
      const s = state(h);
      if (!s) return 1;
      // As documented: setting the stream resets the workspace to the default pool.
      Object.assign(s, { stream, workspace: 0, workspaceBytes: 0 });
      return 0;
    },
    cublasSetPointerMode_v2: (h: Pointer, mode: number) => (state(h) ? ((state(h)!.pointerMode = mode), 0) : 1),
    cublasSetMathMode: (h: Pointer, mode: number) => (state(h) ? ((state(h)!.mathMode = mode), 0) : 1),
    cublasGetStatusName: (status: number) => statusNames[status] ?? null,
    cublasGetStatusString: (status: number) => `fake cuBLAS status ${status}`,
    cublasSgemm_v2: (h: Pointer, transa: number, transb: number, m: number, n: number, k: number, alpha: Pointer, a: Pointer, lda: number, b: Pointer, ldb: number, beta: Pointer, c: Pointer, ldc: number) =>
      !state(h) ? 1 : run(h, { transa, transb, m, n, k, alpha, a, atype: 0, lda, b, btype: 0, ldb, beta, c, ctype: 0, ldc, tf32: state(h)!.mathMode === 3 }),
    cublasGemmEx: (h: Pointer, transa: number, transb: number, m: number, n: number, k: number, alpha: Pointer, a: Pointer, atype: number, lda: number, b: Pointer, btype: number, ldb: number, beta: Pointer, c: Pointer, ctype: number, ldc: number, compute: number, algo: number) =>
      !state(h) ? 1 : algo !== -1 || ![68, 77].includes(compute) ? invalidValue : run(h, { transa, transb, m, n, k, alpha, a, atype, lda, b, btype, ldb, beta, c, ctype, ldc, tf32: ex(h, compute) }),
    cublasGemmStridedBatchedEx: (h: Pointer, transa: number, transb: number, m: number, n: number, k: number, alpha: Pointer, a: Pointer, atype: number, lda: number, sa: number, b: Pointer, btype: number, ldb: number, sb: number, beta: Pointer, c: Pointer, ctype: number, ldc: number, sc: number, count: number, compute: number) => {
      if (!state(h)) return 1;
      for (let i = 0; i < count; i++) {
        const status = run(h, { transa, transb, m, n, k, alpha, a: a + i * sa * elementSizes[atype]!, atype, lda, b: b + i * sb * elementSizes[btype]!, btype, ldb, beta, c: c + i * sc * elementSizes[ctype]!, ctype, ldc, tf32: ex(h, compute) });
        if (status !== 0) return status;
      }
      return 0;
    },
    cublasGemmBatchedEx: (h: Pointer, transa: number, transb: number, m: number, n: number, k: number, alpha: Pointer, as: Pointer, atype: number, lda: number, bs: Pointer, btype: number, ldb: number, beta: Pointer, cs: Pointer, ctype: number, ldc: number, count: number, compute: number) => {
      if (!state(h)) return 1;
      const table = (ptr: Pointer) => Array.from(new BigUint64Array(nativeView(ptr, count * 8)), Number);
      const [a, b, c] = [table(as), table(bs), table(cs)];
      for (let i = 0; i < count; i++) {
        const status = run(h, { transa, transb, m, n, k, alpha, a: a[i]!, atype, lda, b: b[i]!, btype, ldb, beta, c: c[i]!, ctype, ldc, tf32: ex(h, compute) });
        if (status !== 0) return status;
      }
      return 0;
    },
  };
  const symbols = recordingSymbols<CublasSymbols>("libcublas", implementation as never, { calls, failNext, log: options.log });
  const lt: FakeLtState = { handles: new Set(), descriptors: new Map(), algorithms: 1, workspaceWanted: 4096 };
  const ltSymbols = recordingSymbols<CublasLtSymbols>("libcublasLt", fakeLtImplementation(lt, [major, minor, patch], () => next++, enqueue) as never, { calls, failNext, log: options.log });
  return { api: { path: "/fake/libcublas.so.13", symbols }, ltApi: { path: "/fake/libcublasLt.so.13", symbols: ltSymbols }, calls, handles, lt, failNext };
}

function fakeLtImplementation(lt: FakeLtState, version: readonly number[], nextAddress: () => Pointer, enqueue: Enqueue): Record<string, (...args: never[]) => unknown> {
  const writePointer = (out: ArrayBufferView, value: Pointer) => void (new BigUint64Array(out.buffer, out.byteOffset, 1)[0] = BigInt(value));
  const make = (out: ArrayBufferView, descriptor: LtDescriptor) => {
    const ptr = nextAddress();
    lt.descriptors.set(ptr, descriptor);
    writePointer(out, ptr);
    return 0;
  };
  const destroy = (ptr: Pointer, kind: LtDescriptor["kind"]) => (lt.descriptors.get(ptr)?.kind === kind ? (lt.descriptors.delete(ptr), 0) : invalidValue);
  const find = <K extends LtDescriptor["kind"]>(ptr: Pointer, kind: K) => {
    const d = lt.descriptors.get(ptr);
    return d?.kind === kind ? (d as Extract<LtDescriptor, { kind: K }>) : undefined;
  };
  // cuBLASLt checks that an attribute's buffer has exactly the attribute's size.
  const attribute = (buf: ArrayBufferView, size: number, expected: number) => (size !== expected ? undefined : new DataView(buf.buffer, buf.byteOffset, size));
  return {
    cublasLtCreate: (out: ArrayBufferView) => {
      const h = nextAddress();
      lt.handles.add(h);
      writePointer(out, h);
      return 0;
    },
    cublasLtDestroy: (h: Pointer) => (lt.handles.delete(h) ? 0 : 1),
    cublasLtGetProperty: (type: number, out: ArrayBufferView) => (type > 2 ? invalidValue : ((new Int32Array(out.buffer, out.byteOffset, 1)[0] = version[type]!), 0)),
    cublasLtMatrixLayoutCreate: (out: ArrayBufferView, type: number, rows: number, cols: number, ld: number) =>
      // cuBLASLt asks ld ≥ rows (column-major order).
      ld < Math.max(1, rows) || elementSizes[type] === undefined ? invalidValue : make(out, { kind: "layout", type, rows: Number(rows), cols: Number(cols), ld: Number(ld) }),
    cublasLtMatrixLayoutDestroy: (ptr: Pointer) => destroy(ptr, "layout"),
    cublasLtMatmulDescCreate: (out: ArrayBufferView, compute: number, scale: number) => make(out, { kind: "matmul", compute, scale, transa: 0, transb: 0 }),
    cublasLtMatmulDescDestroy: (ptr: Pointer) => destroy(ptr, "matmul"),
    cublasLtMatmulDescSetAttribute: (ptr: Pointer, attr: number, buf: ArrayBufferView, size: number) => {
      const d = find(ptr, "matmul");
      const value = attribute(buf, size, 4)?.getInt32(0, true);
      if (!d || value === undefined || (attr !== 3 && attr !== 4) || (value !== 0 && value !== 1)) return invalidValue;
      if (attr === 3) d.transa = value;
      else d.transb = value;
      return 0;
    },
    cublasLtMatmulPreferenceCreate: (out: ArrayBufferView) => make(out, { kind: "preference", maxWorkspace: 0, alignments: [256, 256, 256, 256] }),
    cublasLtMatmulPreferenceDestroy: (ptr: Pointer) => destroy(ptr, "preference"),
    cublasLtMatmulPreferenceSetAttribute: (ptr: Pointer, attr: number, buf: ArrayBufferView, size: number) => {
      const d = find(ptr, "preference");
      if (!d) return invalidValue;
      if (attr === 1) {
        const view = attribute(buf, size, 8);
        if (!view) return invalidValue;
        d.maxWorkspace = Number(view.getBigUint64(0, true));
        return 0;
      }
      const view = attribute(buf, size, 4);
      if (!view || attr < 5 || attr > 8) return invalidValue;
      d.alignments[attr - 5] = view.getUint32(0, true);
      return 0;
    },
    cublasLtMatmulAlgoGetHeuristic: (h: Pointer, desc: Pointer, a: Pointer, b: Pointer, c: Pointer, d: Pointer, pref: Pointer, requested: number, results: Pointer, count: ArrayBufferView) => {
      const preference = find(pref, "preference");
      if (!lt.handles.has(h) || !find(desc, "matmul") || ![a, b, c, d].every((p) => find(p, "layout")) || !preference || requested < 1) return invalidValue;
      const found = Math.min(requested, lt.algorithms);
      new Int32Array(count.buffer, count.byteOffset, 1)[0] = found;
      if (found === 0) return 0;
      const workspaceSize = Math.min(lt.workspaceWanted, preference.maxWorkspace);
      const data = [algoTag, BigInt(workspaceSize), ...preference.alignments.map(BigInt)];
      writeStructAt(cublasLtMatmulHeuristicResult, results, { algo: { data }, workspaceSize, state: 0, wavesCount: 0.01 });
      return 0;
    },
    cublasLtMatmul: (h: Pointer, descPtr: Pointer, alpha: Pointer, a: Pointer, aPtr: Pointer, b: Pointer, bPtr: Pointer, beta: Pointer, c: Pointer, cPtr: Pointer, d: Pointer, dPtr: Pointer, algo: Pointer, workspace: Pointer, workspaceBytes: number, stream: Pointer) => {
      const desc = find(descPtr, "matmul");
      const [la, lb, lc, ld] = [find(aPtr, "layout"), find(bPtr, "layout"), find(cPtr, "layout"), find(dPtr, "layout")];
      if (!lt.handles.has(h) || !desc || !la || !lb || !lc || !ld || algo === 0) return invalidValue;
      const data = new BigUint64Array(nativeView(algo, 64));
      if (data[0] !== algoTag) return invalidValue;
      const [wanted, ...alignments] = Array.from(data.subarray(1, 6), Number);
      if (workspaceBytes < wanted! || (wanted! > 0 && workspace === 0)) return invalidValue;
      if ([a, b, c, d].some((ptr, i) => ptr % alignments[i]! !== 0)) return invalidValue;
      // gpuffi passes D = C (same memory, same layout); the fake computes only that form.
      if (c !== d || lc !== ld) return notSupported;
      if (desc.scale !== 0 || (desc.compute !== 68 && desc.compute !== 77)) return invalidValue;
      const [m, n] = [lc.rows, lc.cols];
      const k = desc.transa === 0 ? la.cols : la.rows;
      const aShape = desc.transa === 0 ? [m, k] : [k, m];
      const bShape = desc.transb === 0 ? [k, n] : [n, k];
      if (la.rows !== aShape[0] || la.cols !== aShape[1] || lb.rows !== bShape[0] || lb.cols !== bShape[1]) return invalidValue;
      // The descriptor's pointer mode is never set: host scalars (CUBLASLT_POINTER_MODE_HOST).
      return submit({ transa: desc.transa, transb: desc.transb, m, n, k, alpha, a, atype: la.type, lda: la.ld, b, btype: lb.type, ldb: lb.ld, beta, c, ctype: lc.type, ldc: lc.ld, tf32: desc.compute === 77 }, stream, enqueue);
    },
  };
}

/**
 * The fake libcudart plus what Matrix copies and pitched pools need: cudaMemcpy2DAsync,
 * cudaMemset2DAsync and cudaMallocPitch over host memory (pitch: the width rounded up to 512
 * bytes, as cudaDevAttrTexturePitchAlignment answers here), recorded in the same call list and
 * submitted to their stream like the fake's own copies.
 */
export function fakeCudartWith2D(options: Parameters<typeof fakeCudart>[0] = {}) {
  const fake = fakeCudart(options);
  const base = fake.runtime.api;
  const alignment = 512;
  const rows = (name: string, stream: Pointer, height: number, each: (row: number) => void) => {
    fake.calls.push(name);
    return fake.enqueue(stream, () => {
      for (let row = 0; row < height; row++) each(row);
    });
  };
  const extra: Record<string, (...args: never[]) => number> = {
    cudaMemcpy2DAsync: (dst: Pointer, dpitch: number, src: Pointer, spitch: number, width: number, height: number, _kind: number, stream: Pointer) =>
      rows("cudaMemcpy2DAsync", stream, height, (row) => new Uint8Array(nativeView(dst + row * dpitch, width)).set(new Uint8Array(nativeView(src + row * spitch, width)))),
    cudaMemset2DAsync: (ptr: Pointer, pitch: number, value: number, width: number, height: number, stream: Pointer) =>
      rows("cudaMemset2DAsync", stream, height, (row) => new Uint8Array(nativeView(ptr + row * pitch, width)).fill(value)),
    cudaMallocPitch: (out: ArrayBufferView, pitchOut: ArrayBufferView, width: number, height: number) => {
      const pitch = Math.ceil(width / alignment) * alignment;
      new BigUint64Array(pitchOut.buffer, pitchOut.byteOffset, 1)[0] = BigInt(pitch);
      return base.symbols.cudaMalloc(out, pitch * height);
    },
    cudaDeviceGetAttribute: (out: ArrayBufferView) => (fake.calls.push("cudaDeviceGetAttribute"), (new Int32Array(out.buffer, out.byteOffset, 1)[0] = alignment), 0),
    cudaGetLastError: () => 0,
  };
  const symbols = new Proxy(base.symbols, { get: (target, name: string) => extra[name] ?? target[name as keyof typeof target] });
  const api: CudartApi = { ...base, symbols };
  // The fake with this runtime; the rest, its live getters included, is the fake's own.
  return Object.create(fake, { runtime: { value: new CudaRuntime(api) } }) as FakeCudart;
}

/** A context on the fake libcudart (with 2D copies; `deferred` as there) and a fake libcublas/libcublasLt logging into its call list and working on its streams; dispose it to dispose the context. */
export function fakeCublasSetup(options: { version?: [number, number, number]; deferred?: boolean } = {}) {
  const cuda = fakeCudartWith2D({ deferred: options.deferred });
  const cublas = fakeCublas({ version: options.version, log: cuda.calls, enqueue: cuda.enqueue });
  const context = CudaContext.create({ runtime: cuda.runtime });
  return { cuda, cublas, context, [Symbol.dispose]: () => context.dispose() };
}
