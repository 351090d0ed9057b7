// cuBLAS and cuBLASLt on the CUDA runtime: handles, GEMMs (called, prepared, captured), Matrix
// descriptions of device memory and the planning that maps row-major GEMMs onto cuBLAS.
export { CublasHandle, type CublasHandleOptions, type GemmOptions, type StridedBatchedGemmOptions, type MathMode, type PointerMode, type Scalar } from "./cublas.ts";
export { type CublasApi, CublasError, type CublasVersion, type CublasSymbols, checkCublasRuntime, cublasSpecFor, cublasVersion, loadCublas } from "./cublas-api.ts";
export { cublasSpec, cublasSymbols, CublasStatus, CublasOperation, CublasMath, CublasCompute, CudaDataType } from "./cublas-library.ts";
export { PreparedGemm, type PreparedGemmOptions, type CublasLtApi, type CublasLtSymbols, cublasLtSpecFor, cublasLtVersion, loadCublasLt } from "./cublaslt.ts";
export { cublasLtSpec, cublasLtSymbols, cublasLtMatmulAlgo, cublasLtMatmulHeuristicResult, CublasLtMatmulDescAttribute, CublasLtPreference } from "./cublaslt-library.ts";
export { type GemmPlan, type StridedBatch, planGemm, describeGemm } from "./gemm-plan.ts";
export { Matrix, type MatrixDtype, type MatrixLayout, type MatrixOptions, type MatrixAllocOptions, type MatrixCopyOptions, matrixElementSize } from "./matrix.ts";
