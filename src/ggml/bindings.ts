// libggml-base and libggml, the tensor library under llama.cpp: the part of their C API gpuffi
// binds, in the order of ggml/include/ggml.h, ggml-backend.h, ggml-cpu.h and ggml-rpc.h of
// llama.cpp 0.5.0 (ggml 0.25.1, the source bundled by node-llama-cpp 3.22.1). Keep that order: a
// version bump is then a diff of the headers against this file. Struct layouts here are ABI:
// they must match the headers exactly. The files are found next to libllama (src/llama/llama.ts).
import { type StructType, defineStruct, defineSymbols } from "../ffi/index.ts";

/** libggml and libggml-base are looked for next to the libllama that was found. */
export const ggmlSonames = ["libggml.v0.5.0.so", "libggml.so.0", "libggml.so"];
export const ggmlBaseSonames = ["libggml-base.so", "libggml-base.so.0"];

// ----- ggml.h and ggml-backend.h: libggml-base -------------------------------------------------

const ggmlBaseTable = {
  // GGML_API const char * ggml_version(void);
  ggml_version: { parameters: [], result: "cstring" },
  // GGML_API const char * ggml_commit(void);
  ggml_commit: { parameters: [], result: "cstring" },
  // GGML_API void ggml_threadpool_params_init(struct ggml_threadpool_params * p, int n_threads);
  ggml_threadpool_params_init: { parameters: ["buffer", "i32"], result: "void" },
  // GGML_API const char * ggml_backend_dev_name(ggml_backend_dev_t device);
  ggml_backend_dev_name: { parameters: ["ptr"], result: "cstring" },
  // GGML_API const char * ggml_backend_dev_description(ggml_backend_dev_t device);
  ggml_backend_dev_description: { parameters: ["ptr"], result: "cstring" },
  // GGML_API void ggml_backend_dev_memory(ggml_backend_dev_t device, size_t * free, size_t * total);
  ggml_backend_dev_memory: { parameters: ["ptr", "buffer", "buffer"], result: "void" },
  // GGML_API enum ggml_backend_dev_type ggml_backend_dev_type(ggml_backend_dev_t device);
  ggml_backend_dev_type: { parameters: ["ptr"], result: "i32" },
  // GGML_API ggml_backend_reg_t ggml_backend_dev_backend_reg(ggml_backend_dev_t device);
  ggml_backend_dev_backend_reg: { parameters: ["ptr"], result: "ptr" },
  // GGML_API size_t ggml_backend_reg_dev_count(ggml_backend_reg_t reg);
  ggml_backend_reg_dev_count: { parameters: ["ptr"], result: "usize" },
  // GGML_API ggml_backend_dev_t ggml_backend_reg_dev_get(ggml_backend_reg_t reg, size_t index);
  ggml_backend_reg_dev_get: { parameters: ["ptr", "usize"], result: "ptr" },
  // GGML_API void * ggml_backend_reg_get_proc_address(ggml_backend_reg_t reg, const char * name);
  ggml_backend_reg_get_proc_address: { parameters: ["ptr", "cstring"], result: "ptr" },
} as const;
export const ggmlBaseSymbols: typeof ggmlBaseTable = defineSymbols(ggmlBaseTable);

// ----- ggml-backend.h: libggml (the backend registry) ------------------------------------------

const ggmlTable = {
  // GGML_API size_t ggml_backend_dev_count(void);
  ggml_backend_dev_count: { parameters: [], result: "usize" },
  // GGML_API ggml_backend_dev_t ggml_backend_dev_get(size_t index);
  ggml_backend_dev_get: { parameters: ["usize"], result: "ptr" },
  // GGML_API ggml_backend_dev_t ggml_backend_dev_by_type(enum ggml_backend_dev_type type);
  ggml_backend_dev_by_type: { parameters: ["i32"], result: "ptr" },
  // GGML_API void ggml_backend_load_all_from_path(const char * dir_path);
  ggml_backend_load_all_from_path: { parameters: ["cstring"], result: "void" },
} as const;
export const ggmlSymbols: typeof ggmlTable = defineSymbols(ggmlTable);

// enum ggml_backend_dev_type
export const deviceTypes = ["cpu", "gpu", "igpu", "accel", "meta"] as const;

// ----- ggml-cpu.h: the CPU backend ------------------------------------------------------------
// A plugin in node-llama-cpp's packages (one file per microarchitecture, the best one loaded by
// ggml_backend_load_all_from_path), libggml-cpu in a CMake build: Llama finds whichever file
// the registered CPU backend lives in.

// struct ggml_threadpool_params (ggml.h); ggml_threadpool_new copies it, so JS memory serves.
const ggmlThreadpoolParamsFields = {
  cpumask: { array: "bool", length: 512 }, // bool cpumask[GGML_MAX_N_THREADS]
  n_threads: "i32",
  prio: "i32",
  poll: "u32",
  strict_cpu: "bool",
  paused: "bool",
} as const;
export const ggmlThreadpoolParams: StructType<typeof ggmlThreadpoolParamsFields> = defineStruct("ggml_threadpool_params", ggmlThreadpoolParamsFields);

// enum ggml_sched_priority (ggml.h)
export const SchedPriority = { low: -1, normal: 0, medium: 1, high: 2, realtime: 3 } as const;

const ggmlCpuTable = {
  // GGML_BACKEND_API struct ggml_threadpool * ggml_threadpool_new(struct ggml_threadpool_params * params);
  ggml_threadpool_new: { parameters: ["buffer"], result: "ptr" },
  // GGML_BACKEND_API void ggml_threadpool_free(struct ggml_threadpool * threadpool);
  ggml_threadpool_free: { parameters: ["ptr"], result: "void" },
} as const;
export const ggmlCpuSymbols: typeof ggmlCpuTable = defineSymbols(ggmlCpuTable);

// ----- ggml-rpc.h: libggml-rpc ----------------------------------------------------------------

/** RPC_PROTO_MAJOR_VERSION / _MINOR_VERSION of ggml-rpc.h in llama.cpp 0.5.0. */
export const rpcProtocol: Readonly<{ major: number; minor: number }> = Object.freeze({ major: 7, minor: 0 });
/** GGML_RPC_MAX_SERVERS */
export const rpcMaxServers = 16;

const rpcTable = {
  // GGML_BACKEND_API ggml_backend_reg_t ggml_backend_rpc_add_server(const char * endpoint);
  ggml_backend_rpc_add_server: { parameters: ["cstring"], result: "ptr" },
} as const;
export const rpcSymbols: typeof rpcTable = defineSymbols(rpcTable);
export const rpcSonames = ["libggml-rpc.so", "libggml-rpc.so.0"];
