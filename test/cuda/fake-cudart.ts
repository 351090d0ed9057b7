// A host-memory stand-in for libcudart, so that the CUDA layer's own logic (validation, state,
// disposal order, sticky errors, copies) runs on machines without a GPU. Allocations are real
// C heap memory (HostMemory), copies real memcpy through zero-copy views; it records every call.
import { HostMemory, nativeView, type Pointer } from "../../src/ffi/index.ts";
import { type CudartApi, CudaRuntime } from "../../src/cuda/index.ts";

export interface FakeCudart {
  readonly runtime: CudaRuntime;
  /** Every C call made, in order, e.g. `cudaMalloc`, `cudaFree`. */
  readonly calls: string[];
  /** Live allocations by address. */
  readonly live: Map<Pointer, HostMemory>;
  /** The status the next call of that name returns instead of running. */
  readonly failNext: Map<string, number>;
}

const errorNames: Record<number, string> = { 0: "cudaSuccess", 1: "cudaErrorInvalidValue", 2: "cudaErrorMemoryAllocation", 100: "cudaErrorNoDevice", 600: "cudaErrorNotReady", 700: "cudaErrorIllegalAddress" };

export function fakeCudart(options: { devices?: number; runtimeVersion?: number; driverVersion?: number; freeMemory?: number } = {}): FakeCudart {
  const calls: string[] = [];
  const live = new Map<Pointer, HostMemory>();
  const failNext = new Map<string, number>();
  const handles = new Set<Pointer>();
  let nextHandle = 0x1000;
  const writeOut = (out: ArrayBufferView | null, value: number) => {
    new BigUint64Array(out!.buffer, out!.byteOffset, 1)[0] = BigInt(value);
  };
  const writeInt = (out: ArrayBufferView | null, value: number) => {
    new Int32Array(out!.buffer, out!.byteOffset, 1)[0] = value;
  };
  const alloc = (out: ArrayBufferView | null, size: number) => {
    const memory = HostMemory.alloc(size);
    live.set(memory.ptr, memory);
    writeOut(out, memory.ptr);
    return 0;
  };
  const free = (ptr: Pointer) => {
    const memory = live.get(ptr);
    if (!memory) return 1;
    live.delete(ptr);
    memory.dispose();
    return 0;
  };
  const handle = (out: ArrayBufferView | null) => {
    const h = nextHandle++;
    handles.add(h);
    writeOut(out, h);
    return 0;
  };
  const destroy = (h: Pointer) => (handles.delete(h) ? 0 : 400);
  const memcpy = (dst: Pointer, src: Pointer, n: number) => {
    new Uint8Array(nativeView(dst, n)).set(new Uint8Array(nativeView(src, n)));
    return 0;
  };
  const bytesOf = (view: ArrayBufferView | null) => new Uint8Array(view!.buffer, view!.byteOffset, view!.byteLength);
  const implementation: Record<string, (...args: never[]) => unknown> = {
    cudaGetErrorName: (status: number) => errorNames[status] ?? `cudaError${status}`,
    cudaGetErrorString: (status: number) => `fake error ${status}`,
    cudaRuntimeGetVersion: (out: ArrayBufferView) => (writeInt(out, options.runtimeVersion ?? 13000), 0),
    cudaDriverGetVersion: (out: ArrayBufferView) => (writeInt(out, options.driverVersion ?? 13000), 0),
    cudaGetDeviceCount: (out: ArrayBufferView) => ((options.devices ?? 2) === 0 ? 100 : (writeInt(out, options.devices ?? 2), 0)),
    cudaSetDevice: () => 0,
    cudaDeviceSynchronize: () => 0,
    cudaMemGetInfo: (free: ArrayBufferView, total: ArrayBufferView) => (writeOut(free, options.freeMemory ?? 2 ** 30), writeOut(total, 2 ** 31), 0),
    cudaMalloc: alloc,
    cudaMallocAsync: alloc,
    cudaMallocManaged: alloc,
    cudaHostAlloc: alloc,
    cudaFree: free,
    cudaFreeAsync: free,
    cudaFreeHost: free,
    cudaStreamCreateWithFlags: handle,
    cudaEventCreateWithFlags: handle,
    cudaStreamDestroy: destroy,
    cudaEventDestroy: destroy,
    cudaStreamSynchronize: () => 0,
    cudaStreamQuery: () => 0,
    cudaEventRecord: () => 0,
    cudaEventQuery: () => 0,
    cudaEventSynchronize: () => 0,
    cudaMemcpyAsync: memcpy,
    cudaMemsetAsync: (ptr: Pointer, value: number, n: number) => (new Uint8Array(nativeView(ptr, n)).fill(value), 0),
  };
  const symbols = new Proxy({}, {
    get: (_, name: string) => (...args: never[]) => {
      calls.push(name);
      const failure = failNext.get(name);
      if (failure !== undefined) {
        failNext.delete(name);
        return failure;
      }
      const fn = implementation[name];
      if (!fn) throw new Error(`the fake libcudart does not implement ${name}`);
      return fn(...args);
    },
  });
  const traced = <A extends unknown[]>(name: string, fn: (...args: A) => number) => (...args: A) => {
    calls.push(name);
    return fn(...args);
  };
  const api: CudartApi = {
    path: "/fake/libcudart.so",
    symbols: symbols as CudartApi["symbols"],
    async: {},
    copyToDevice: traced("cudaMemcpyAsync", (dst: Pointer, src: ArrayBufferView | null, n: number) => (new Uint8Array(nativeView(dst, n)).set(bytesOf(src).subarray(0, n)), 0)),
    copyToHost: traced("cudaMemcpyAsync", (dst: ArrayBufferView | null, src: Pointer, n: number) => (bytesOf(dst).set(new Uint8Array(nativeView(src, n))), 0)),
    prefetch: traced("cudaMemPrefetchAsync", () => 0),
    advise: traced("cudaMemAdvise", () => 0),
  };
  return { runtime: new CudaRuntime(api), calls, live, failNext };
}
