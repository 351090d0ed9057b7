// Where libcudart lives and which symbols gpuffi binds, in the order of cuda_runtime_api.h.
// Issue #4 grows this table; it starts with the calls that work without a GPU.
import { type Environment, type LibrarySpec, type SearchDir, defineSymbols, versionedDirs } from "../ffi/index.ts";
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

export const cudartSymbols = defineSymbols({
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
  // cudaError_t cudaGetDevice(int *device);
  cudaGetDevice: { parameters: ["buffer"], result: "i32" },
  // cudaError_t cudaDriverGetVersion(int *driverVersion);
  cudaDriverGetVersion: { parameters: ["buffer"], result: "i32" },
  // cudaError_t cudaRuntimeGetVersion(int *runtimeVersion);
  cudaRuntimeGetVersion: { parameters: ["buffer"], result: "i32" },
});
