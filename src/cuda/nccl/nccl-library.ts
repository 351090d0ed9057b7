// Where libnccl lives and which symbols gpuffi binds, in the order of nccl.h (NCCL 2.x; the C ABI
// of these calls has not changed since 2.12). pip's nvidia-nccl-cu12/cu13 wheels
// (site-packages/nvidia/nccl/lib) are found by the locator's generic search.
import { type LibrarySpec, type StructType, defineStruct, defineSymbols } from "../../ffi/index.ts";

export const ncclSpec: LibrarySpec = {
  name: "libnccl",
  sonames: ["libnccl.so.2", "libnccl.so"],
  envVar: "GPUFFI_NCCL",
  hint:
    "install NCCL (the libnccl2 package, the nvidia-nccl-cu12/cu13 pip wheel, or conda's nccl), " +
    "or set GPUFFI_NCCL to the libnccl.so file or its directory.",
};

/** NCCL_UNIQUE_ID_BYTES. */
export const ncclUniqueIdBytes = 128;

/** typedef struct { char internal[NCCL_UNIQUE_ID_BYTES]; } ncclUniqueId; passed by value to ncclCommInitRank. */
const ncclUniqueIdStructFields = { internal: { array: "u8", length: ncclUniqueIdBytes } } as const;
export const ncclUniqueIdStruct: StructType<typeof ncclUniqueIdStructFields> = defineStruct("ncclUniqueId", ncclUniqueIdStructFields);

const ncclTable = {
  // ncclResult_t ncclGetVersion(int *version);
  ncclGetVersion: { parameters: ["buffer"], result: "i32" },
  // ncclResult_t ncclGetUniqueId(ncclUniqueId* uniqueId);
  ncclGetUniqueId: { parameters: ["buffer"], result: "i32" },
  // ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId commId, int rank);
  ncclCommInitRank: { parameters: ["buffer", "i32", ncclUniqueIdStruct, "i32"], result: "i32" },
  // ncclResult_t ncclCommInitAll(ncclComm_t* comm, int ndev, const int* devlist);
  ncclCommInitAll: { parameters: ["buffer", "i32", "buffer"], result: "i32" },
  // ncclResult_t ncclCommFinalize(ncclComm_t comm);
  ncclCommFinalize: { parameters: ["ptr"], result: "i32" },
  // ncclResult_t ncclCommDestroy(ncclComm_t comm);
  ncclCommDestroy: { parameters: ["ptr"], result: "i32" },
  // ncclResult_t ncclCommAbort(ncclComm_t comm);
  ncclCommAbort: { parameters: ["ptr"], result: "i32" },
  // const char* ncclGetErrorString(ncclResult_t result);
  ncclGetErrorString: { parameters: ["i32"], result: "cstring" },
  // const char* ncclGetLastError(ncclComm_t comm);
  ncclGetLastError: { parameters: ["ptr"], result: "cstring" },
  // ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *asyncError);
  ncclCommGetAsyncError: { parameters: ["ptr", "buffer"], result: "i32" },
  // ncclResult_t ncclCommCount(const ncclComm_t comm, int* count);
  ncclCommCount: { parameters: ["ptr", "buffer"], result: "i32" },
  // ncclResult_t ncclCommCuDevice(const ncclComm_t comm, int* device);
  ncclCommCuDevice: { parameters: ["ptr", "buffer"], result: "i32" },
  // ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank);
  ncclCommUserRank: { parameters: ["ptr", "buffer"], result: "i32" },
  // ncclResult_t ncclReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op, int root, ncclComm_t comm, cudaStream_t stream);
  ncclReduce: { parameters: ["ptr", "ptr", "usize", "i32", "i32", "i32", "ptr", "ptr"], result: "i32" },
  // ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root, ncclComm_t comm, cudaStream_t stream);
  ncclBroadcast: { parameters: ["ptr", "ptr", "usize", "i32", "i32", "ptr", "ptr"], result: "i32" },
  // ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream);
  ncclAllReduce: { parameters: ["ptr", "ptr", "usize", "i32", "i32", "ptr", "ptr"], result: "i32" },
  // ncclResult_t ncclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount, ncclDataType_t datatype, ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream);
  ncclReduceScatter: { parameters: ["ptr", "ptr", "usize", "i32", "i32", "ptr", "ptr"], result: "i32" },
  // ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount, ncclDataType_t datatype, ncclComm_t comm, cudaStream_t stream);
  ncclAllGather: { parameters: ["ptr", "ptr", "usize", "i32", "ptr", "ptr"], result: "i32" },
  // ncclResult_t ncclGroupStart();
  ncclGroupStart: { parameters: [], result: "i32" },
  // ncclResult_t ncclGroupEnd();
  ncclGroupEnd: { parameters: [], result: "i32" },
} as const;
export const ncclSymbols: typeof ncclTable = defineSymbols(ncclTable);
