// The registry of the ABI check: every C library gpuffi binds, the headers that declare it, its
// symbol tables, the struct layouts gpuffi encodes, and the constants the bindings hard-code with
// the C name each must equal. A new table, struct or constant goes here; nothing else in
// scripts/abi/ knows any library. `npm run check:abi` checks them all (scripts/check-abi.ts).
import { type AbiLibrary, constantsOf } from "./model.ts";
import { cudaHeaders, llamaHeaders, systemHeaders } from "./headers.ts";
import { dlFlags, dlSymbols } from "../../src/ffi/dl.ts";
import { libcMemory } from "../../src/ffi/memory.ts";
import { libcEnvironment } from "../../src/ffi/environment.ts";
import { libcMapping, mappingConstants } from "../../src/ffi/mapped-file.ts";
import { libcReads } from "../../src/ffi/file-reads.ts";
import {
  CacheType, FlashAttention, LLAMA_DEFAULT_SEED, LLAMA_TOKEN_NULL, LoadMode, PoolingType, SplitMode,
  llamaBatch, llamaContextParams, llamaModelParams, llamaSamplerChainParams, llamaSymbols,
} from "../../src/llama/bindings.ts";
import {
  SchedPriority, deviceTypes, ggmlBaseSymbols, ggmlCpuSymbols, ggmlSymbols, ggmlThreadpoolParams,
  rpcMaxServers as maxServers, rpcProtocol, rpcSymbols,
} from "../../src/ggml/bindings.ts";
import {
  GGML_DEFAULT_GRAPH_SIZE, GGML_MAX_DIMS, GGML_MAX_NAME, GGML_MAX_OP_PARAMS, GGML_MAX_SRC, GgmlOp, GgmlStatus, RopeType, TensorFlag, ggmlBackendSymbols,
  ggmlCpuBackendSymbols, ggmlGraphSymbols, ggmlInitParams, ggmlTensor,
} from "../../src/ggml/graph-bindings.ts";
import { cudaMemLocation, cudart12Symbols, cudart13Symbols, cudartSymbols } from "../../src/cuda/cudart-library.ts";
import { CudaStatus } from "../../src/cuda/errors.ts";
import { DeviceAttribute } from "../../src/cuda/device.ts";
import { ManagedAdvice } from "../../src/cuda/memory.ts";
import { hostRegisterFlags } from "../../src/cuda/registered-memory.ts";
import { CuMem, cuMemAccessDesc, cuMemAllocationProp, cuMemLocation, libcudaSymbols } from "../../src/cuda/driver-library.ts";
import {
  CublasCompute, CublasMath, CublasOperation, CublasPointerMode, CublasStatus, CudaDataType, LibraryProperty, cublasGemmDefault, cublasSymbols,
} from "../../src/cuda/blas/cublas-library.ts";
import { CublasLtMatmulDescAttribute, CublasLtPreference, cublasLtMatmulAlgo, cublasLtMatmulHeuristicResult, cublasLtSymbols } from "../../src/cuda/blas/cublaslt-library.ts";
import { ncclSymbols, ncclUniqueIdBytes, ncclUniqueIdStruct } from "../../src/cuda/nccl/nccl-library.ts";
import { NcclDataType, NcclReduceOp } from "../../src/cuda/nccl/nccl-types.ts";
import { NcclResult } from "../../src/cuda/nccl/nccl-errors.ts";
import { NvmlClock, nvmlMemory, nvmlMemoryV2, nvmlPciInfo, nvmlProcessInfo, nvmlSymbols, nvmlTemperatureGpu, nvmlUtilization } from "../../src/cuda/nvml/library.ts";
import { NvmlReturn } from "../../src/cuda/nvml/errors.ts";
import { NvrtcStatus, nvrtcSymbols } from "../../src/cuda/kernels/nvrtc-library.ts";

const same = <const T extends Readonly<Record<string, number>>>(values: T): { [K in keyof T]: string } =>
  Object.fromEntries(Object.keys(values).map((k) => [k, k])) as { [K in keyof T]: string };
const prefixed = <const T extends Readonly<Record<string, number>>>(prefix: string, values: T): { [K in keyof T]: string } =>
  Object.fromEntries(Object.keys(values).map((k) => [k, `${prefix}${k[0]!.toUpperCase()}${k.slice(1)}`])) as { [K in keyof T]: string };
/** NVML_SUCCESS, NVML_ERROR_INVALID_ARGUMENT from { success, invalidArgument }: status enums in upper snake case. */
const statusNames = <const T extends Readonly<Record<string, number>>>(prefix: string, values: T): { [K in keyof T]: string } =>
  Object.fromEntries(
    Object.keys(values).map((k) => [k, `${prefix}_${k === "success" ? "SUCCESS" : `ERROR_${k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`}`]),
  ) as { [K in keyof T]: string };

export const libllama: AbiLibrary = {
  name: "libllama",
  headers: ["llama.h"],
  includeDirs: llamaHeaders,
  tables: [{ name: "llamaSymbols", symbols: llamaSymbols }],
  structs: [
    { type: llamaBatch, c: "struct llama_batch" },
    { type: llamaModelParams, c: "struct llama_model_params" },
    { type: llamaContextParams, c: "struct llama_context_params" },
    { type: llamaSamplerChainParams, c: "struct llama_sampler_chain_params" },
  ],
  constants: [
    ...constantsOf("SplitMode", SplitMode, { none: "LLAMA_SPLIT_MODE_NONE", layer: "LLAMA_SPLIT_MODE_LAYER", row: "LLAMA_SPLIT_MODE_ROW", tensor: "LLAMA_SPLIT_MODE_TENSOR" }),
    ...constantsOf("LoadMode", LoadMode, { auto: "LLAMA_LOAD_MODE_AUTO", none: "LLAMA_LOAD_MODE_NONE", mmap: "LLAMA_LOAD_MODE_MMAP" }),
    ...constantsOf("FlashAttention", FlashAttention, { auto: "LLAMA_FLASH_ATTN_TYPE_AUTO", disabled: "LLAMA_FLASH_ATTN_TYPE_DISABLED", enabled: "LLAMA_FLASH_ATTN_TYPE_ENABLED" }),
    ...constantsOf("PoolingType", PoolingType, {
      unspecified: "LLAMA_POOLING_TYPE_UNSPECIFIED", none: "LLAMA_POOLING_TYPE_NONE", mean: "LLAMA_POOLING_TYPE_MEAN",
      cls: "LLAMA_POOLING_TYPE_CLS", last: "LLAMA_POOLING_TYPE_LAST", rank: "LLAMA_POOLING_TYPE_RANK",
    }),
    ...constantsOf("", { LLAMA_DEFAULT_SEED, LLAMA_TOKEN_NULL }, { LLAMA_DEFAULT_SEED: "LLAMA_DEFAULT_SEED", LLAMA_TOKEN_NULL: "LLAMA_TOKEN_NULL" }),
  ],
};

export const libggml: AbiLibrary = {
  name: "libggml",
  headers: ["ggml.h", "ggml-alloc.h", "ggml-backend.h", "ggml-cpu.h", "ggml-rpc.h"],
  includeDirs: llamaHeaders,
  tables: [
    { name: "ggmlBaseSymbols", symbols: ggmlBaseSymbols },
    { name: "ggmlSymbols", symbols: ggmlSymbols },
    { name: "ggmlCpuSymbols", symbols: ggmlCpuSymbols },
    { name: "rpcSymbols", symbols: rpcSymbols },
    { name: "ggmlGraphSymbols", symbols: ggmlGraphSymbols },
    { name: "ggmlBackendSymbols", symbols: ggmlBackendSymbols },
    { name: "ggmlCpuBackendSymbols", symbols: ggmlCpuBackendSymbols },
  ],
  structs: [
    { type: ggmlThreadpoolParams, c: "struct ggml_threadpool_params" },
    { type: ggmlTensor, c: "struct ggml_tensor" },
    { type: ggmlInitParams, c: "struct ggml_init_params" },
  ],
  constants: [
    ...constantsOf("CacheType", CacheType, { f32: "GGML_TYPE_F32", f16: "GGML_TYPE_F16", q8_0: "GGML_TYPE_Q8_0" }),
    ...constantsOf("deviceTypes", Object.fromEntries(deviceTypes.map((name, i) => [name, i])) as Record<(typeof deviceTypes)[number], number>, {
      cpu: "GGML_BACKEND_DEVICE_TYPE_CPU", gpu: "GGML_BACKEND_DEVICE_TYPE_GPU", igpu: "GGML_BACKEND_DEVICE_TYPE_IGPU",
      accel: "GGML_BACKEND_DEVICE_TYPE_ACCEL", meta: "GGML_BACKEND_DEVICE_TYPE_META",
    }),
    ...constantsOf("SchedPriority", SchedPriority, {
      low: "GGML_SCHED_PRIO_LOW", normal: "GGML_SCHED_PRIO_NORMAL", medium: "GGML_SCHED_PRIO_MEDIUM", high: "GGML_SCHED_PRIO_HIGH", realtime: "GGML_SCHED_PRIO_REALTIME",
    }),
    ...constantsOf("ggmlThreadpoolParams.fields.cpumask", { length: ggmlThreadpoolParams.fields.cpumask.length }, { length: "GGML_MAX_N_THREADS" }),
    ...constantsOf("rpcProtocol", rpcProtocol, { major: "RPC_PROTO_MAJOR_VERSION", minor: "RPC_PROTO_MINOR_VERSION" }),
    ...constantsOf("rpc", { maxServers }, { maxServers: "GGML_RPC_MAX_SERVERS" }),
    ...constantsOf("", { GGML_MAX_DIMS, GGML_MAX_NAME, GGML_MAX_SRC, GGML_MAX_OP_PARAMS, GGML_DEFAULT_GRAPH_SIZE }, {
      GGML_MAX_DIMS: "GGML_MAX_DIMS", GGML_MAX_NAME: "GGML_MAX_NAME", GGML_MAX_SRC: "GGML_MAX_SRC", GGML_MAX_OP_PARAMS: "GGML_MAX_OP_PARAMS", GGML_DEFAULT_GRAPH_SIZE: "GGML_DEFAULT_GRAPH_SIZE",
    }),
    ...constantsOf("TensorFlag", TensorFlag, {
      input: "GGML_TENSOR_FLAG_INPUT", output: "GGML_TENSOR_FLAG_OUTPUT", param: "GGML_TENSOR_FLAG_PARAM", loss: "GGML_TENSOR_FLAG_LOSS", compute: "GGML_TENSOR_FLAG_COMPUTE",
    }),
    ...constantsOf("RopeType", RopeType, { normal: "GGML_ROPE_TYPE_NORMAL", neox: "GGML_ROPE_TYPE_NEOX" }),
    ...constantsOf("GgmlStatus", GgmlStatus, { allocFailed: "GGML_STATUS_ALLOC_FAILED", failed: "GGML_STATUS_FAILED", success: "GGML_STATUS_SUCCESS", aborted: "GGML_STATUS_ABORTED" }),
    ...constantsOf("GgmlOp", GgmlOp, { mulMat: "GGML_OP_MUL_MAT", outProd: "GGML_OP_OUT_PROD", transpose: "GGML_OP_TRANSPOSE" }),
  ],
};

export const libcudart: AbiLibrary = {
  name: "libcudart",
  headers: ["cuda_runtime_api.h"],
  includeDirs: cudaHeaders("cuda_runtime_api.h"),
  version: "CUDART_VERSION",
  tables: [
    { name: "cudartSymbols", symbols: cudartSymbols },
    { name: "cudart13Symbols", symbols: cudart13Symbols, guard: "CUDART_VERSION >= 13000" },
    { name: "cudart12Symbols", symbols: cudart12Symbols, guard: "CUDART_VERSION < 13000" },
  ],
  structs: [{ type: cudaMemLocation, c: "struct cudaMemLocation", guard: "CUDART_VERSION >= 12020" }],
  constants: [
    ...constantsOf("CudaStatus", CudaStatus, {
      success: "cudaSuccess", memoryAllocation: "cudaErrorMemoryAllocation", insufficientDriver: "cudaErrorInsufficientDriver",
      noDevice: "cudaErrorNoDevice", notReady: "cudaErrorNotReady",
    }),
    ...constantsOf("DeviceAttribute", DeviceAttribute, prefixed("cudaDevAttr", DeviceAttribute)),
    ...constantsOf("ManagedAdvice", ManagedAdvice, prefixed("cudaMemAdvise", ManagedAdvice)),
    ...constantsOf("hostRegisterFlags", hostRegisterFlags, same(hostRegisterFlags)),
  ],
};

export const libcuda: AbiLibrary = {
  name: "libcuda",
  headers: ["cuda.h"],
  includeDirs: cudaHeaders("cuda.h"),
  version: "CUDA_VERSION",
  tables: [{ name: "libcudaSymbols", symbols: libcudaSymbols }],
  structs: [
    { type: cuMemLocation, c: "CUmemLocation" },
    { type: cuMemAllocationProp, c: "CUmemAllocationProp" },
    { type: cuMemAccessDesc, c: "CUmemAccessDesc" },
  ],
  constants: constantsOf("CuMem", CuMem, {
    errorOutOfMemory: "CUDA_ERROR_OUT_OF_MEMORY", attributeVmmSupported: "CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED",
    allocationPinned: "CU_MEM_ALLOCATION_TYPE_PINNED", locationDevice: "CU_MEM_LOCATION_TYPE_DEVICE",
    accessReadWrite: "CU_MEM_ACCESS_FLAGS_PROT_READWRITE", granularityMinimum: "CU_MEM_ALLOC_GRANULARITY_MINIMUM",
  }),
  addressTypes: ["CUdeviceptr"],
};

export const libcublas: AbiLibrary = {
  name: "libcublas",
  headers: ["cublas_api.h"],
  includeDirs: cudaHeaders("cublas_api.h"),
  version: "CUBLAS_VERSION",
  tables: [{ name: "cublasSymbols", symbols: cublasSymbols }],
  constants: [
    ...constantsOf("CublasStatus", CublasStatus, {
      success: "CUBLAS_STATUS_SUCCESS", notInitialized: "CUBLAS_STATUS_NOT_INITIALIZED", allocFailed: "CUBLAS_STATUS_ALLOC_FAILED",
      invalidValue: "CUBLAS_STATUS_INVALID_VALUE", archMismatch: "CUBLAS_STATUS_ARCH_MISMATCH", mappingError: "CUBLAS_STATUS_MAPPING_ERROR",
      executionFailed: "CUBLAS_STATUS_EXECUTION_FAILED", internalError: "CUBLAS_STATUS_INTERNAL_ERROR", notSupported: "CUBLAS_STATUS_NOT_SUPPORTED",
      licenseError: "CUBLAS_STATUS_LICENSE_ERROR",
    }),
    ...constantsOf("CublasOperation", CublasOperation, { N: "CUBLAS_OP_N", T: "CUBLAS_OP_T" }),
    ...constantsOf("CublasPointerMode", CublasPointerMode, { host: "CUBLAS_POINTER_MODE_HOST", device: "CUBLAS_POINTER_MODE_DEVICE" }),
    ...constantsOf("CublasMath", CublasMath, { default: "CUBLAS_DEFAULT_MATH", tf32: "CUBLAS_TF32_TENSOR_OP_MATH" }),
    ...constantsOf("CublasCompute", CublasCompute, { f32: "CUBLAS_COMPUTE_32F", f32FastTf32: "CUBLAS_COMPUTE_32F_FAST_TF32" }),
    ...constantsOf("", { cublasGemmDefault }, { cublasGemmDefault: "CUBLAS_GEMM_DEFAULT" }),
    ...constantsOf("CudaDataType", CudaDataType, { f32: "CUDA_R_32F", f16: "CUDA_R_16F", bf16: "CUDA_R_16BF" }),
    ...constantsOf("LibraryProperty", LibraryProperty, { major: "MAJOR_VERSION", minor: "MINOR_VERSION", patch: "PATCH_LEVEL" }),
  ],
};

export const libcublasLt: AbiLibrary = {
  name: "libcublasLt",
  headers: ["cublasLt.h"],
  includeDirs: cudaHeaders("cublasLt.h"),
  version: "CUBLAS_VERSION",
  tables: [{ name: "cublasLtSymbols", symbols: cublasLtSymbols }],
  structs: [
    { type: cublasLtMatmulAlgo, c: "cublasLtMatmulAlgo_t" },
    { type: cublasLtMatmulHeuristicResult, c: "cublasLtMatmulHeuristicResult_t" },
  ],
  constants: [
    ...constantsOf("CublasLtMatmulDescAttribute", CublasLtMatmulDescAttribute, { transa: "CUBLASLT_MATMUL_DESC_TRANSA", transb: "CUBLASLT_MATMUL_DESC_TRANSB" }),
    ...constantsOf("CublasLtPreference", CublasLtPreference, {
      maxWorkspaceBytes: "CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES", minAlignmentA: "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES",
      minAlignmentB: "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES", minAlignmentC: "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES",
      minAlignmentD: "CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES",
    }),
  ],
};

export const libnccl: AbiLibrary = {
  name: "libnccl",
  headers: ["nccl.h"],
  includeDirs: cudaHeaders("nccl.h"),
  version: "NCCL_VERSION_CODE",
  tables: [{ name: "ncclSymbols", symbols: ncclSymbols }],
  structs: [{ type: ncclUniqueIdStruct, c: "ncclUniqueId" }],
  constants: [
    ...constantsOf("", { ncclUniqueIdBytes }, { ncclUniqueIdBytes: "NCCL_UNIQUE_ID_BYTES" }),
    ...constantsOf("NcclDataType", Object.fromEntries(Object.entries(NcclDataType).map(([k, t]) => [k, t.code])) as Record<keyof typeof NcclDataType, number>, {
      int8: "ncclInt8", uint8: "ncclUint8", int32: "ncclInt32", uint32: "ncclUint32", int64: "ncclInt64", uint64: "ncclUint64",
      float16: "ncclFloat16", float32: "ncclFloat32", float64: "ncclFloat64", bfloat16: "ncclBfloat16", float8e4m3: "ncclFloat8e4m3", float8e5m2: "ncclFloat8e5m2",
    }),
    ...constantsOf("NcclReduceOp", NcclReduceOp, { sum: "ncclSum", prod: "ncclProd", max: "ncclMax", min: "ncclMin", avg: "ncclAvg" }),
    ...constantsOf("NcclResult", NcclResult, prefixed("nccl", NcclResult)),
  ],
};

// nvmlProcessInfo_r535_t is gpuffi's name for a layout some r535 drivers used without a header.
export const libnvml: AbiLibrary = {
  name: "libnvidia-ml",
  headers: ["nvml.h"],
  includeDirs: cudaHeaders("nvml.h"),
  version: "NVML_API_VERSION",
  tables: [{ name: "nvmlSymbols", symbols: nvmlSymbols }],
  structs: [
    { type: nvmlPciInfo, c: "nvmlPciInfo_t" },
    { type: nvmlMemory, c: "nvmlMemory_t" },
    { type: nvmlMemoryV2, c: "nvmlMemory_v2_t" },
    { type: nvmlUtilization, c: "nvmlUtilization_t" },
    { type: nvmlProcessInfo, c: "nvmlProcessInfo_t" },
  ],
  constants: [
    ...constantsOf("NvmlReturn", NvmlReturn, statusNames("NVML", NvmlReturn)),
    ...constantsOf("NvmlClock", NvmlClock, { graphics: "NVML_CLOCK_GRAPHICS", sm: "NVML_CLOCK_SM", memory: "NVML_CLOCK_MEM", video: "NVML_CLOCK_VIDEO" }),
    ...constantsOf("", { nvmlTemperatureGpu }, { nvmlTemperatureGpu: "NVML_TEMPERATURE_GPU" }),
  ],
};

export const libnvrtc: AbiLibrary = {
  name: "libnvrtc",
  headers: ["nvrtc.h"],
  includeDirs: cudaHeaders("nvrtc.h"),
  tables: [{ name: "nvrtcSymbols", symbols: nvrtcSymbols }],
  constants: [
    ...constantsOf("NvrtcStatus", NvrtcStatus, statusNames("NVRTC", NvrtcStatus)),
  ],
};

export const libc: AbiLibrary = {
  name: "libc",
  defines: ["_GNU_SOURCE"],
  headers: ["<dlfcn.h>", "<stdlib.h>", "<fcntl.h>", "<unistd.h>", "<sys/mman.h>", "<errno.h>", "<string.h>"],
  includeDirs: systemHeaders,
  tables: [
    { name: "dlSymbols", symbols: dlSymbols },
    { name: "libcMemory", symbols: libcMemory },
    { name: "libcEnvironment", symbols: libcEnvironment },
    { name: "libcMapping", symbols: libcMapping },
    { name: "libcReads", symbols: libcReads },
  ],
  constants: [...constantsOf("dlFlags", dlFlags, same(dlFlags)), ...constantsOf("mappingConstants", mappingConstants, same(mappingConstants))],
  exceptions: [{ symbol: "mmap", position: "result", reason: "void * bound as ssize_t so that MAP_FAILED reads -1" }],
};

/** Every library, in the order the report lists them. */
export const abiLibraries: readonly AbiLibrary[] = [libllama, libggml, libcudart, libcuda, libcublas, libcublasLt, libnccl, libnvml, libnvrtc, libc];
