// Where libcublasLt lives, which symbols gpuffi binds (in the order of cublasLt.h, CUDA 13.x,
// whose declarations of these calls are the same in 12.x), the one struct gpuffi lays out, and
// the enum values it passes. The descriptors (cublasLtMatmulDesc_t, cublasLtMatrixLayout_t,
// cublasLtMatmulPreference_t) are made with the Create calls, never the Init ones: their opaque
// sizes changed between CUDA 11 and 12, and only the library knows them.
import { type LibrarySpec, type StructType, defineStruct, defineSymbols } from "../../ffi/index.ts";
import { cudaToolkitDirs } from "../cudart-library.ts";

export const cublasLtSpec: LibrarySpec = {
  name: "libcublasLt",
  sonames: ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"],
  envVar: "GPUFFI_CUBLASLT",
  searchDirs: cudaToolkitDirs,
  hint:
    "libcublasLt ships with libcublas (the CUDA Toolkit, the nvidia-cublas pip wheel, conda's libcublas); install cuBLAS for the same CUDA major version as libcudart, " +
    "or set GPUFFI_CUBLASLT to the libcublasLt.so file or its directory.",
};

// typedef struct { uint64_t data[8]; } cublasLtMatmulAlgo_t;
const cublasLtMatmulAlgoFields = { data: { array: "u64", length: 8 } } as const;
export const cublasLtMatmulAlgo: StructType<typeof cublasLtMatmulAlgoFields> = defineStruct("cublasLtMatmulAlgo_t", cublasLtMatmulAlgoFields);

// typedef struct {
//   cublasLtMatmulAlgo_t algo; size_t workspaceSize; cublasStatus_t state; float wavesCount; int reserved[4];
// } cublasLtMatmulHeuristicResult_t;
const cublasLtMatmulHeuristicResultFields = {
  algo: cublasLtMatmulAlgo,
  workspaceSize: "usize",
  state: "i32",
  wavesCount: "f32",
  reserved: { array: "i32", length: 4 },
} as const;
export const cublasLtMatmulHeuristicResult: StructType<typeof cublasLtMatmulHeuristicResultFields> = defineStruct("cublasLtMatmulHeuristicResult_t", cublasLtMatmulHeuristicResultFields);

const cublasLtTable = {
  // cublasStatus_t cublasLtCreate(cublasLtHandle_t* lightHandle);
  cublasLtCreate: { parameters: ["buffer"], result: "i32" },
  // cublasStatus_t cublasLtDestroy(cublasLtHandle_t lightHandle);
  cublasLtDestroy: { parameters: ["ptr"], result: "i32" },
  // cublasStatus_t cublasLtGetProperty(libraryPropertyType type, int* value);
  cublasLtGetProperty: { parameters: ["i32", "buffer"], result: "i32" },
  // Every parameter is a pointer or a size, so the call converts nothing on any runtime.
  // cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc, const void* alpha,
  //   const void* A, cublasLtMatrixLayout_t Adesc, const void* B, cublasLtMatrixLayout_t Bdesc, const void* beta,
  //   const void* C, cublasLtMatrixLayout_t Cdesc, void* D, cublasLtMatrixLayout_t Ddesc,
  //   const cublasLtMatmulAlgo_t* algo, void* workspace, size_t workspaceSizeInBytes, cudaStream_t stream);
  cublasLtMatmul: { parameters: ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "usize", "ptr"], result: "i32" },
  // cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* matLayout, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld);
  cublasLtMatrixLayoutCreate: { parameters: ["buffer", "i32", "u64", "u64", "i64"], result: "i32" },
  // cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t matLayout);
  cublasLtMatrixLayoutDestroy: { parameters: ["ptr"], result: "i32" },
  // cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* matmulDesc, cublasComputeType_t computeType, cudaDataType_t scaleType);
  cublasLtMatmulDescCreate: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  // cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t matmulDesc);
  cublasLtMatmulDescDestroy: { parameters: ["ptr"], result: "i32" },
  // cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t matmulDesc, cublasLtMatmulDescAttributes_t attr, const void* buf, size_t sizeInBytes);
  cublasLtMatmulDescSetAttribute: { parameters: ["ptr", "i32", "buffer", "usize"], result: "i32" },
  // cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref);
  cublasLtMatmulPreferenceCreate: { parameters: ["buffer"], result: "i32" },
  // cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref);
  cublasLtMatmulPreferenceDestroy: { parameters: ["ptr"], result: "i32" },
  // cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, const void* buf, size_t sizeInBytes);
  cublasLtMatmulPreferenceSetAttribute: { parameters: ["ptr", "i32", "buffer", "usize"], result: "i32" },
  // The results go to C heap memory (a `ptr`), where the chosen algorithm stays for every cublasLtMatmul.
  // cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc,
  //   cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
  //   cublasLtMatmulPreference_t preference, int requestedAlgoCount, cublasLtMatmulHeuristicResult_t heuristicResultsArray[], int* returnAlgoCount);
  cublasLtMatmulAlgoGetHeuristic: { parameters: ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "ptr", "i32", "ptr", "buffer"], result: "i32" },
} as const;
export const cublasLtSymbols: typeof cublasLtTable = defineSymbols(cublasLtTable);

/** cublasLtMatmulDescAttributes_t: CUBLASLT_MATMUL_DESC_TRANSA, _TRANSB (int32_t cublasOperation_t). */
export const CublasLtMatmulDescAttribute = { transa: 3, transb: 4 } as const;

/**
 * cublasLtMatmulPreferenceAttributes_t: CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES (uint64_t) and
 * CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A/B/C/D_BYTES (uint32_t, default 256).
 */
export const CublasLtPreference = { maxWorkspaceBytes: 1, minAlignmentA: 5, minAlignmentB: 6, minAlignmentC: 7, minAlignmentD: 8 } as const;
