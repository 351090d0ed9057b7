// Where libcudart lives and which symbols gpuffi binds, in the order of cuda_runtime_api.h.
// Only calls whose C signature is the same in CUDA 12 and 13 are in the main table; the two
// that changed (prefetch and advise) have one table per major version below.
import { type Environment, type LibrarySpec, type SearchDir, defineStruct, defineSymbols, versionedDirs } from "../ffi/index.ts";
import { join } from "node:path";

/** CUDA toolkit directories: $CUDA_PATH/$CUDA_HOME, /usr/local/cuda, then /usr/local/cuda-X.Y newest first. */
export function* cudaToolkitDirs(env: Environment): Generator<SearchDir> {
  const roots: SearchDir[] = [];
  for (const name of ["CUDA_PATH", "CUDA_HOME", "CUDA_ROOT"]) if (env[name]) roots.push({ dir: env[name]!, source: `$${name}` });
  roots.push({ dir: "/usr/local/cuda", source: "/usr/local/cuda" });
  for (const dir of versionedDirs("/usr/local", /^cuda-\d+(\.\d+)*$/)) roots.push({ dir, source: "/usr/local/cuda-*" });
  for (const { dir, source } of roots) {
    yield { dir: join(dir, "lib64"), source };
    for (const target of versionedDirs(join(dir, "targets"), /linux/)) yield { dir: join(target, "lib"), source: `${source} (targets)` };
  }
}

export const cudartSpec: LibrarySpec = {
  name: "libcudart",
  sonames: ["libcudart.so.13", "libcudart.so.12", "libcudart.so"],
  envVar: "GPUFFI_CUDART",
  searchDirs: cudaToolkitDirs,
  hint:
    "install the CUDA runtime (the CUDA Toolkit, the nvidia-cuda-runtime-cu12/cu13 pip wheel, or conda's cuda-cudart), " +
    "or set GPUFFI_CUDART to the libcudart.so file or its directory.",
};

const cudartTable = {
  // cudaError_t cudaDeviceSynchronize(void);
  cudaDeviceSynchronize: { parameters: [], result: "i32" },
  // cudaError_t cudaDeviceGetPCIBusId(char *pciBusId, int len, int device);
  cudaDeviceGetPCIBusId: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  // cudaError_t cudaGetLastError(void);
  cudaGetLastError: { parameters: [], result: "i32" },
  // cudaError_t cudaPeekAtLastError(void);
  cudaPeekAtLastError: { parameters: [], result: "i32" },
  // const char* cudaGetErrorName(cudaError_t error);
  cudaGetErrorName: { parameters: ["i32"], result: "cstring" },
  // const char* cudaGetErrorString(cudaError_t error);
  cudaGetErrorString: { parameters: ["i32"], result: "cstring" },
  // cudaError_t cudaGetDeviceCount(int *count);
  cudaGetDeviceCount: { parameters: ["buffer"], result: "i32" },
  // cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device);
  cudaDeviceGetAttribute: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  // cudaError_t cudaSetDevice(int device);
  cudaSetDevice: { parameters: ["i32"], result: "i32" },
  // cudaError_t cudaGetDevice(int *device);
  cudaGetDevice: { parameters: ["buffer"], result: "i32" },
  // The same call writing into C memory (a NativeOut): with only an address to pass it takes the
  // runtimes' fast call paths, where a typed array does not (CudaRuntime.currentDevice).
  cudaGetDeviceAt: { symbol: "cudaGetDevice", parameters: ["ptr"], result: "i32" },
  // cudaError_t cudaStreamCreateWithFlags(cudaStream_t *pStream, unsigned int flags);
  cudaStreamCreateWithFlags: { parameters: ["buffer", "u32"], result: "i32" },
  // cudaError_t cudaStreamDestroy(cudaStream_t stream);
  cudaStreamDestroy: { parameters: ["ptr"], result: "i32" },
  // cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags);
  cudaStreamWaitEvent: { parameters: ["ptr", "ptr", "u32"], result: "i32" },
  // cudaError_t cudaStreamSynchronize(cudaStream_t stream);
  cudaStreamSynchronize: { parameters: ["ptr"], result: "i32", nonblocking: true },
  // cudaError_t cudaStreamQuery(cudaStream_t stream);
  cudaStreamQuery: { parameters: ["ptr"], result: "i32" },
  // cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode);
  cudaStreamBeginCapture: { parameters: ["ptr", "i32"], result: "i32" },
  // cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *pGraph);
  cudaStreamEndCapture: { parameters: ["ptr", "buffer"], result: "i32" },
  // cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned int flags);
  cudaEventCreateWithFlags: { parameters: ["buffer", "u32"], result: "i32" },
  // cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream);
  cudaEventRecord: { parameters: ["ptr", "ptr"], result: "i32" },
  // cudaError_t cudaEventQuery(cudaEvent_t event);
  cudaEventQuery: { parameters: ["ptr"], result: "i32" },
  // cudaError_t cudaEventSynchronize(cudaEvent_t event);
  cudaEventSynchronize: { parameters: ["ptr"], result: "i32", nonblocking: true },
  // cudaError_t cudaEventDestroy(cudaEvent_t event);
  cudaEventDestroy: { parameters: ["ptr"], result: "i32" },
  // cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t start, cudaEvent_t end);
  cudaEventElapsedTime: { parameters: ["buffer", "ptr", "ptr"], result: "i32" },
  // cudaError_t cudaMallocManaged(void **devPtr, size_t size, unsigned int flags);
  cudaMallocManaged: { parameters: ["buffer", "usize", "u32"], result: "i32" },
  // cudaError_t cudaMalloc(void **devPtr, size_t size);
  cudaMalloc: { parameters: ["buffer", "usize"], result: "i32" },
  // cudaError_t cudaMallocPitch(void **devPtr, size_t *pitch, size_t width, size_t height);
  cudaMallocPitch: { parameters: ["buffer", "buffer", "usize", "usize"], result: "i32" },
  // cudaError_t cudaFree(void *devPtr);
  cudaFree: { parameters: ["ptr"], result: "i32" },
  // cudaError_t cudaFreeHost(void *ptr);
  cudaFreeHost: { parameters: ["ptr"], result: "i32" },
  // cudaError_t cudaHostAlloc(void **pHost, size_t size, unsigned int flags);
  cudaHostAlloc: { parameters: ["buffer", "usize", "u32"], result: "i32" },
  // cudaError_t cudaHostRegister(void *ptr, size_t size, unsigned int flags);
  cudaHostRegister: { parameters: ["ptr", "usize", "u32"], result: "i32" },
  // cudaError_t cudaHostUnregister(void *ptr);
  cudaHostUnregister: { parameters: ["ptr"], result: "i32" },
  // cudaError_t cudaMemGetInfo(size_t *free, size_t *total);
  cudaMemGetInfo: { parameters: ["buffer", "buffer"], result: "i32" },
  // cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream);
  cudaMemcpyAsync: { parameters: ["ptr", "ptr", "usize", "i32", "ptr"], result: "i32" },
  // The same call twice more with a JS typed array on the host side: the FFI pins it for the
  // duration of the call. The CUDA docs ("API synchronization behavior") promise that a copy from
  // pageable memory returns once the data is staged, and one to pageable memory once it landed,
  // so the JS memory is free again when the call returns.
  cudaMemcpyAsyncFromJs: { symbol: "cudaMemcpyAsync", parameters: ["ptr", "buffer", "usize", "i32", "ptr"], result: "i32" },
  cudaMemcpyAsyncToJs: { symbol: "cudaMemcpyAsync", parameters: ["buffer", "ptr", "usize", "i32", "ptr"], result: "i32" },
  // cudaError_t cudaMemcpyPeerAsync(void *dst, int dstDevice, const void *src, int srcDevice, size_t count, cudaStream_t stream);
  cudaMemcpyPeerAsync: { parameters: ["ptr", "i32", "ptr", "i32", "usize", "ptr"], result: "i32" },
  // cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width, size_t height, enum cudaMemcpyKind kind, cudaStream_t stream);
  cudaMemcpy2DAsync: { parameters: ["ptr", "usize", "ptr", "usize", "usize", "usize", "i32", "ptr"], result: "i32" },
  // cudaError_t cudaMemsetAsync(void *devPtr, int value, size_t count, cudaStream_t stream);
  cudaMemsetAsync: { parameters: ["ptr", "i32", "usize", "ptr"], result: "i32" },
  // cudaError_t cudaMemset2DAsync(void *devPtr, size_t pitch, int value, size_t width, size_t height, cudaStream_t stream);
  cudaMemset2DAsync: { parameters: ["ptr", "usize", "i32", "usize", "usize", "ptr"], result: "i32" },
  // cudaError_t cudaMallocAsync(void **devPtr, size_t size, cudaStream_t hStream);
  cudaMallocAsync: { parameters: ["buffer", "usize", "ptr"], result: "i32" },
  // cudaError_t cudaFreeAsync(void *devPtr, cudaStream_t hStream);
  cudaFreeAsync: { parameters: ["ptr", "ptr"], result: "i32" },
  // cudaError_t cudaDeviceCanAccessPeer(int *canAccessPeer, int device, int peerDevice);
  cudaDeviceCanAccessPeer: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  // cudaError_t cudaDeviceEnablePeerAccess(int peerDevice, unsigned int flags);
  cudaDeviceEnablePeerAccess: { parameters: ["i32", "u32"], result: "i32" },
  // cudaError_t cudaDeviceDisablePeerAccess(int peerDevice);
  cudaDeviceDisablePeerAccess: { parameters: ["i32"], result: "i32" },
  // cudaError_t cudaDriverGetVersion(int *driverVersion);
  cudaDriverGetVersion: { parameters: ["buffer"], result: "i32" },
  // cudaError_t cudaRuntimeGetVersion(int *runtimeVersion);
  cudaRuntimeGetVersion: { parameters: ["buffer"], result: "i32" },
  // cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t *pGraphExec, cudaGraph_t graph, unsigned long long flags);
  // Not cudaGraphInstantiate: CUDA 12 gave that name this signature, and CUDA 11 had another
  // (error node and log buffer) under it; the WithFlags form is the same from 11.4 to 13.
  cudaGraphInstantiateWithFlags: { parameters: ["buffer", "ptr", "u64"], result: "i32" },
  // cudaError_t cudaGraphLaunch(cudaGraphExec_t graphExec, cudaStream_t stream);
  cudaGraphLaunch: { parameters: ["ptr", "ptr"], result: "i32" },
  // cudaError_t cudaGraphExecDestroy(cudaGraphExec_t graphExec);
  cudaGraphExecDestroy: { parameters: ["ptr"], result: "i32" },
  // cudaError_t cudaGraphDestroy(cudaGraph_t graph);
  cudaGraphDestroy: { parameters: ["ptr"], result: "i32" },
} as const;
export const cudartSymbols: typeof cudartTable = defineSymbols(cudartTable);

/** struct cudaMemLocation { enum cudaMemLocationType type; int id; } (CUDA 12.2+). */
export const cudaMemLocation = defineStruct("cudaMemLocation", { type: "i32", id: "i32" });

// CUDA 13 gave cudaMemPrefetchAsync and cudaMemAdvise the signatures of 12.2's `_v2` calls
// (a cudaMemLocation instead of a device ordinal). CUDA 12 keeps the ordinal form under the
// plain names in every 12.x, so it gets that form and needs no struct at all.
export const cudart13Symbols = defineSymbols({
  // cudaError_t cudaMemPrefetchAsync(const void *devPtr, size_t count, struct cudaMemLocation location, unsigned int flags, cudaStream_t stream);
  cudaMemPrefetchAsync: { parameters: ["ptr", "usize", cudaMemLocation, "u32", "ptr"], result: "i32" },
  // cudaError_t cudaMemAdvise(const void *devPtr, size_t count, enum cudaMemoryAdvise advice, struct cudaMemLocation location);
  cudaMemAdvise: { parameters: ["ptr", "usize", "i32", cudaMemLocation], result: "i32" },
});
export const cudart12Symbols = defineSymbols({
  // cudaError_t cudaMemPrefetchAsync(const void *devPtr, size_t count, int dstDevice, cudaStream_t stream);
  cudaMemPrefetchAsync: { parameters: ["ptr", "usize", "i32", "ptr"], result: "i32" },
  // cudaError_t cudaMemAdvise(const void *devPtr, size_t count, enum cudaMemoryAdvise advice, int device);
  cudaMemAdvise: { parameters: ["ptr", "usize", "i32", "i32"], result: "i32" },
});
