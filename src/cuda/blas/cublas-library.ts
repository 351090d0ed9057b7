// Where libcublas lives, which symbols gpuffi binds (in the order of cublas_api.h, CUDA 13.x,
// whose declarations of these calls are the same in 12.x), and the enum values gpuffi passes.
// The `_v2` names are the ones cublas_v2.h maps the plain names to: libcublas exports both,
// and the unsuffixed ones are the legacy API with another signature.
import { type LibrarySpec, defineSymbols } from "../../ffi/index.ts";
import { cudaToolkitDirs } from "../cudart-library.ts";

export const cublasSpec: LibrarySpec = {
  name: "libcublas",
  sonames: ["libcublas.so.13", "libcublas.so.12", "libcublas.so"],
  envVar: "GPUFFI_CUBLAS",
  searchDirs: cudaToolkitDirs,
  hint:
    "install cuBLAS (the CUDA Toolkit, the nvidia-cublas-cu12 / nvidia-cublas pip wheel, or conda's libcublas) for the same CUDA major version as libcudart, " +
    "or set GPUFFI_CUBLAS to the libcublas.so file or its directory.",
};

const cublasTable = {
  // cublasStatus_t cublasCreate_v2(cublasHandle_t* handle);
  cublasCreate_v2: { parameters: ["buffer"], result: "i32" },
  // cublasStatus_t cublasDestroy_v2(cublasHandle_t handle);
  cublasDestroy_v2: { parameters: ["ptr"], result: "i32" },
  // cublasStatus_t cublasGetVersion_v2(cublasHandle_t handle, int* version);
  cublasGetVersion_v2: { parameters: ["ptr", "buffer"], result: "i32" },
  // cublasStatus_t cublasGetProperty(libraryPropertyType type, int* value);
  cublasGetProperty: { parameters: ["i32", "buffer"], result: "i32" },
  // cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace, size_t workspaceSizeInBytes);
  cublasSetWorkspace_v2: { parameters: ["ptr", "ptr", "usize"], result: "i32" },
  // cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId);
  cublasSetStream_v2: { parameters: ["ptr", "ptr"], result: "i32" },
  // cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t mode);
  cublasSetPointerMode_v2: { parameters: ["ptr", "i32"], result: "i32" },
  // cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode);
  cublasSetMathMode: { parameters: ["ptr", "i32"], result: "i32" },
  // const char* cublasGetStatusName(cublasStatus_t status);
  cublasGetStatusName: { parameters: ["i32"], result: "cstring" },
  // const char* cublasGetStatusString(cublasStatus_t status);
  cublasGetStatusString: { parameters: ["i32"], result: "cstring" },
  // Scalars (alpha, beta) are pointers: host memory in CUBLAS_POINTER_MODE_HOST, device memory
  // in CUBLAS_POINTER_MODE_DEVICE. gpuffi keeps the host ones in C heap memory of the handle,
  // so every parameter below is a plain number and no call converts a typed array.
  // cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
  //   const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta, float* C, int ldc);
  cublasSgemm_v2: { parameters: ["ptr", "i32", "i32", "i32", "i32", "i32", "ptr", "ptr", "i32", "ptr", "i32", "ptr", "ptr", "i32"], result: "i32" },
  // cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
  //   const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B, cudaDataType Btype, int ldb,
  //   const void* beta, void* C, cudaDataType Ctype, int ldc, cublasComputeType_t computeType, cublasGemmAlgo_t algo);
  cublasGemmEx: {
    parameters: ["ptr", "i32", "i32", "i32", "i32", "i32", "ptr", "ptr", "i32", "i32", "ptr", "i32", "i32", "ptr", "ptr", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  // cublasStatus_t cublasGemmBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
  //   const void* alpha, const void* const Aarray[], cudaDataType Atype, int lda, const void* const Barray[], cudaDataType Btype, int ldb,
  //   const void* beta, void* const Carray[], cudaDataType Ctype, int ldc, int batchCount, cublasComputeType_t computeType, cublasGemmAlgo_t algo);
  cublasGemmBatchedEx: {
    parameters: ["ptr", "i32", "i32", "i32", "i32", "i32", "ptr", "ptr", "i32", "i32", "ptr", "i32", "i32", "ptr", "ptr", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  // `long long int` strides are isize: 64-bit, and passed as a JS number like every other size.
  // cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
  //   const void* alpha, const void* A, cudaDataType Atype, int lda, long long int strideA, const void* B, cudaDataType Btype, int ldb,
  //   long long int strideB, const void* beta, void* C, cudaDataType Ctype, int ldc, long long int strideC, int batchCount,
  //   cublasComputeType_t computeType, cublasGemmAlgo_t algo);
  cublasGemmStridedBatchedEx: {
    parameters: ["ptr", "i32", "i32", "i32", "i32", "i32", "ptr", "ptr", "i32", "i32", "isize", "ptr", "i32", "i32", "isize", "ptr", "ptr", "i32", "i32", "isize", "i32", "i32", "i32"],
    result: "i32",
  },
} as const;
export const cublasSymbols: typeof cublasTable = defineSymbols(cublasTable);

/** cublasStatus_t (cublas_api.h). */
export const CublasStatus = {
  success: 0,
  notInitialized: 1,
  allocFailed: 3,
  invalidValue: 7,
  archMismatch: 8,
  mappingError: 11,
  executionFailed: 13,
  internalError: 14,
  notSupported: 15,
  licenseError: 16,
} as const;

/** cublasOperation_t. */
export const CublasOperation = { N: 0, T: 1 } as const;
/** cublasPointerMode_t. */
export const CublasPointerMode = { host: 0, device: 1 } as const;
/** cublasMath_t: CUBLAS_DEFAULT_MATH, CUBLAS_TF32_TENSOR_OP_MATH. */
export const CublasMath = { default: 0, tf32: 3 } as const;
/** cublasComputeType_t: CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_TF32. */
export const CublasCompute = { f32: 68, f32FastTf32: 77 } as const;
/** cublasGemmAlgo_t CUBLAS_GEMM_DEFAULT: cuBLAS's heuristics pick the kernel (tensor cores included). */
export const cublasGemmDefault = -1;
/** cudaDataType_t (library_types.h): CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF. */
export const CudaDataType = { f32: 0, f16: 2, bf16: 14 } as const;
/** libraryPropertyType (library_types.h). */
export const LibraryProperty = { major: 0, minor: 1, patch: 2 } as const;
