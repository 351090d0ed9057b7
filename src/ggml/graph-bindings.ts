// The part of ggml's C API that builds and runs computation graphs: contexts, tensors, the ops of
// a llama block with their automatic differentiation, the optimizer steps, and the backend
// buffers and scheduler that place and run a graph. Every table follows its header's order
// (ggml.h, ggml-alloc.h, ggml-backend.h, ggml-cpu.h of llama.cpp 0.5.0 / ggml 0.25.1), with the
// C declaration beside each entry. `struct ggml_tensor` is read in place (its layout is below),
// so shapes, strides, names and flags cost no call.
import { type StructType, defineStruct, defineSymbols } from "../ffi/index.ts";

// ----- ggml.h: constants and structs --------------------------------------------------------------

/** #define GGML_MAX_DIMS 4 */
export const GGML_MAX_DIMS = 4;
/** #define GGML_MAX_NAME 64 */
export const GGML_MAX_NAME = 64;
/** #define GGML_MAX_SRC 10 */
export const GGML_MAX_SRC = 10;
/** #define GGML_MAX_OP_PARAMS 64 */
export const GGML_MAX_OP_PARAMS = 64;
/** #define GGML_DEFAULT_GRAPH_SIZE 2048: too small for a llama with backward; graphs here are sized. */
export const GGML_DEFAULT_GRAPH_SIZE = 2048;

// enum ggml_tensor_flag
export const TensorFlag = { input: 1, output: 2, param: 4, loss: 8, compute: 16 } as const;

// enum ggml_op: the ops a graph rewrite recognizes (ComputeGraph.transposeProducts).
export const GgmlOp = { mulMat: 29, outProd: 31, transpose: 39 } as const;

// #define GGML_ROPE_TYPE_NORMAL 0, GGML_ROPE_TYPE_NEOX 2
export const RopeType = { normal: 0, neox: 2 } as const;

// enum ggml_status
export const GgmlStatus = { allocFailed: -2, failed: -1, success: 0, aborted: 1 } as const;

// struct ggml_init_params { size_t mem_size; void * mem_buffer; bool no_alloc; };
const ggmlInitParamsFields = { mem_size: "usize", mem_buffer: "ptr", no_alloc: "bool" } as const;
export const ggmlInitParams: StructType<typeof ggmlInitParamsFields> = defineStruct("ggml_init_params", ggmlInitParamsFields);

// struct ggml_tensor: read in place by Tensor, never passed by value.
const ggmlTensorFields = {
  type: "i32", // enum ggml_type type;
  buffer: "ptr", // struct ggml_backend_buffer * buffer;
  ne: { array: "i64", length: GGML_MAX_DIMS }, // int64_t ne[GGML_MAX_DIMS];
  nb: { array: "usize", length: GGML_MAX_DIMS }, // size_t nb[GGML_MAX_DIMS];
  op: "i32", // enum ggml_op op;
  op_params: { array: "i32", length: GGML_MAX_OP_PARAMS / 4 }, // int32_t op_params[GGML_MAX_OP_PARAMS / sizeof(int32_t)];
  flags: "i32", // int32_t flags;
  src: { array: "ptr", length: GGML_MAX_SRC }, // struct ggml_tensor * src[GGML_MAX_SRC];
  view_src: "ptr", // struct ggml_tensor * view_src;
  view_offs: "usize", // size_t view_offs;
  data: "ptr", // void * data;
  name: { array: "u8", length: GGML_MAX_NAME }, // char name[GGML_MAX_NAME];
  extra: "ptr", // void * extra;
  padding: { array: "u8", length: 8 }, // char padding[8];
} as const;
export const ggmlTensor: StructType<typeof ggmlTensorFields> = defineStruct("ggml_tensor", ggmlTensorFields);

// ----- ggml.h: functions (libggml-base), in header order -------------------------------------------

const ggmlGraphTable = {
  // GGML_API int64_t ggml_nelements (const struct ggml_tensor * tensor);
  ggml_nelements: { parameters: ["ptr"], result: "i64" },
  // GGML_API size_t  ggml_nbytes    (const struct ggml_tensor * tensor);
  ggml_nbytes: { parameters: ["ptr"], result: "usize" },
  // GGML_API int64_t ggml_blck_size(enum ggml_type type);
  ggml_blck_size: { parameters: ["i32"], result: "i64" },
  // GGML_API size_t  ggml_type_size(enum ggml_type type);
  ggml_type_size: { parameters: ["i32"], result: "usize" },
  // GGML_API size_t  ggml_row_size (enum ggml_type type, int64_t ne);
  ggml_row_size: { parameters: ["i32", "i64"], result: "usize" },
  // GGML_API const char * ggml_type_name(enum ggml_type type);
  ggml_type_name: { parameters: ["i32"], result: "cstring" },
  // GGML_API const char * ggml_op_desc(const struct ggml_tensor * t); // unary or op name
  ggml_op_desc: { parameters: ["ptr"], result: "cstring" },
  // GGML_API size_t ggml_tensor_overhead(void);
  ggml_tensor_overhead: { parameters: [], result: "usize" },
  // GGML_API struct ggml_context * ggml_init (struct ggml_init_params params);
  ggml_init: { parameters: [ggmlInitParams], result: "ptr" },
  // GGML_API void                  ggml_free (struct ggml_context * ctx);
  ggml_free: { parameters: ["ptr"], result: "void" },
  // GGML_API size_t  ggml_used_mem(const struct ggml_context * ctx);
  ggml_used_mem: { parameters: ["ptr"], result: "usize" },
  // GGML_API struct ggml_tensor * ggml_new_tensor_1d(struct ggml_context * ctx, enum ggml_type type, int64_t ne0);
  ggml_new_tensor_1d: { parameters: ["ptr", "i32", "i64"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_new_tensor_2d(struct ggml_context * ctx, enum ggml_type type, int64_t ne0, int64_t ne1);
  ggml_new_tensor_2d: { parameters: ["ptr", "i32", "i64", "i64"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_new_tensor_3d(struct ggml_context * ctx, enum ggml_type type, int64_t ne0, int64_t ne1, int64_t ne2);
  ggml_new_tensor_3d: { parameters: ["ptr", "i32", "i64", "i64", "i64"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_new_tensor_4d(struct ggml_context * ctx, enum ggml_type type, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3);
  ggml_new_tensor_4d: { parameters: ["ptr", "i32", "i64", "i64", "i64", "i64"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_get_first_tensor(const struct ggml_context * ctx);
  ggml_get_first_tensor: { parameters: ["ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_get_next_tensor (const struct ggml_context * ctx, struct ggml_tensor * tensor);
  ggml_get_next_tensor: { parameters: ["ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_set_name   (      struct ggml_tensor * tensor, const char * name);
  ggml_set_name: { parameters: ["ptr", "cstring"], result: "ptr" },
  // GGML_API void ggml_set_input(struct ggml_tensor * tensor);
  ggml_set_input: { parameters: ["ptr"], result: "void" },
  // GGML_API void ggml_set_output(struct ggml_tensor * tensor);
  ggml_set_output: { parameters: ["ptr"], result: "void" },
  // GGML_API void ggml_set_param(struct ggml_tensor * tensor);
  ggml_set_param: { parameters: ["ptr"], result: "void" },
  // GGML_API void ggml_set_loss(struct ggml_tensor * tensor);
  ggml_set_loss: { parameters: ["ptr"], result: "void" },
  // GGML_API struct ggml_tensor * ggml_add(struct ggml_context * ctx, struct ggml_tensor * a, struct ggml_tensor * b);
  ggml_add: { parameters: ["ptr", "ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_mul(struct ggml_context * ctx, struct ggml_tensor * a, struct ggml_tensor * b);
  ggml_mul: { parameters: ["ptr", "ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_div(struct ggml_context * ctx, struct ggml_tensor * a, struct ggml_tensor * b);
  ggml_div: { parameters: ["ptr", "ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_sqr(struct ggml_context * ctx, struct ggml_tensor * a);
  ggml_sqr: { parameters: ["ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_sqrt(struct ggml_context * ctx, struct ggml_tensor * a);
  ggml_sqrt: { parameters: ["ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_log(struct ggml_context * ctx, struct ggml_tensor * a);
  ggml_log: { parameters: ["ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_sum(struct ggml_context * ctx, struct ggml_tensor * a);
  ggml_sum: { parameters: ["ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_sum_rows(struct ggml_context * ctx, struct ggml_tensor * a);
  ggml_sum_rows: { parameters: ["ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_repeat(struct ggml_context * ctx, struct ggml_tensor * a, struct ggml_tensor * b);
  ggml_repeat: { parameters: ["ptr", "ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_silu(struct ggml_context * ctx, struct ggml_tensor * a);
  ggml_silu: { parameters: ["ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_rms_norm(struct ggml_context * ctx, struct ggml_tensor * a, float eps);
  ggml_rms_norm: { parameters: ["ptr", "ptr", "f32"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_mul_mat(struct ggml_context * ctx, struct ggml_tensor * a, struct ggml_tensor * b);
  ggml_mul_mat: { parameters: ["ptr", "ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_scale(struct ggml_context * ctx, struct ggml_tensor * a, float s);
  ggml_scale: { parameters: ["ptr", "ptr", "f32"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_scale_bias(struct ggml_context * ctx, struct ggml_tensor * a, float s, float b);
  ggml_scale_bias: { parameters: ["ptr", "ptr", "f32", "f32"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_cpy(struct ggml_context * ctx, struct ggml_tensor * a, struct ggml_tensor * b);
  ggml_cpy: { parameters: ["ptr", "ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_cast(struct ggml_context * ctx, struct ggml_tensor * a, enum ggml_type type);
  ggml_cast: { parameters: ["ptr", "ptr", "i32"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_cont(struct ggml_context * ctx, struct ggml_tensor * a);
  ggml_cont: { parameters: ["ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_reshape_1d(struct ggml_context * ctx, struct ggml_tensor * a, int64_t ne0);
  ggml_reshape_1d: { parameters: ["ptr", "ptr", "i64"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_reshape_2d(struct ggml_context * ctx, struct ggml_tensor * a, int64_t ne0, int64_t ne1);
  ggml_reshape_2d: { parameters: ["ptr", "ptr", "i64", "i64"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_reshape_3d(struct ggml_context * ctx, struct ggml_tensor * a, int64_t ne0, int64_t ne1, int64_t ne2);
  ggml_reshape_3d: { parameters: ["ptr", "ptr", "i64", "i64", "i64"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_reshape_4d(struct ggml_context * ctx, struct ggml_tensor * a, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3);
  ggml_reshape_4d: { parameters: ["ptr", "ptr", "i64", "i64", "i64", "i64"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_view_1d(struct ggml_context * ctx, struct ggml_tensor * a, int64_t ne0, size_t offset);
  ggml_view_1d: { parameters: ["ptr", "ptr", "i64", "usize"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_view_2d(struct ggml_context * ctx, struct ggml_tensor * a, int64_t ne0, int64_t ne1, size_t nb1, size_t offset);
  ggml_view_2d: { parameters: ["ptr", "ptr", "i64", "i64", "usize", "usize"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_view_3d(struct ggml_context * ctx, struct ggml_tensor * a, int64_t ne0, int64_t ne1, int64_t ne2, size_t nb1, size_t nb2, size_t offset);
  ggml_view_3d: { parameters: ["ptr", "ptr", "i64", "i64", "i64", "usize", "usize", "usize"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_view_4d(struct ggml_context * ctx, struct ggml_tensor * a, int64_t ne0, int64_t ne1, int64_t ne2, int64_t ne3, size_t nb1, size_t nb2, size_t nb3, size_t offset);
  ggml_view_4d: { parameters: ["ptr", "ptr", "i64", "i64", "i64", "i64", "usize", "usize", "usize", "usize"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_permute(struct ggml_context * ctx, struct ggml_tensor * a, int axis0, int axis1, int axis2, int axis3);
  ggml_permute: { parameters: ["ptr", "ptr", "i32", "i32", "i32", "i32"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_transpose(struct ggml_context * ctx, struct ggml_tensor * a);
  ggml_transpose: { parameters: ["ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_get_rows(struct ggml_context * ctx, struct ggml_tensor * a, struct ggml_tensor * b);
  ggml_get_rows: { parameters: ["ptr", "ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_set_rows(struct ggml_context * ctx, struct ggml_tensor * a, struct ggml_tensor * b, struct ggml_tensor * c);
  ggml_set_rows: { parameters: ["ptr", "ptr", "ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_diag_mask_inf(struct ggml_context * ctx, struct ggml_tensor * a, int n_past);
  ggml_diag_mask_inf: { parameters: ["ptr", "ptr", "i32"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_clamp(struct ggml_context * ctx, struct ggml_tensor * a, float min, float max);
  ggml_clamp: { parameters: ["ptr", "ptr", "f32", "f32"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_soft_max_ext(struct ggml_context * ctx, struct ggml_tensor * a, struct ggml_tensor * mask, float scale, float max_bias);
  ggml_soft_max_ext: { parameters: ["ptr", "ptr", "ptr", "f32", "f32"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_rope_ext(struct ggml_context * ctx, struct ggml_tensor * a, struct ggml_tensor * b, struct ggml_tensor * c,
  //     int n_dims, int mode, int n_ctx_orig, float freq_base, float freq_scale, float ext_factor, float attn_factor, float beta_fast, float beta_slow);
  ggml_rope_ext: { parameters: ["ptr", "ptr", "ptr", "ptr", "i32", "i32", "i32", "f32", "f32", "f32", "f32", "f32", "f32"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_cross_entropy_loss(struct ggml_context * ctx, struct ggml_tensor * a, struct ggml_tensor * b);
  ggml_cross_entropy_loss: { parameters: ["ptr", "ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_opt_step_adamw(struct ggml_context * ctx, struct ggml_tensor * a, struct ggml_tensor * grad,
  //     struct ggml_tensor * m, struct ggml_tensor * v, struct ggml_tensor * adamw_params);
  ggml_opt_step_adamw: { parameters: ["ptr", "ptr", "ptr", "ptr", "ptr", "ptr"], result: "ptr" },
  // GGML_API struct ggml_tensor * ggml_opt_step_sgd(struct ggml_context * ctx, struct ggml_tensor * a, struct ggml_tensor * grad, struct ggml_tensor * sgd_params);
  ggml_opt_step_sgd: { parameters: ["ptr", "ptr", "ptr", "ptr"], result: "ptr" },
  // GGML_API void ggml_build_forward_expand(struct ggml_cgraph * cgraph, struct ggml_tensor * tensor);
  ggml_build_forward_expand: { parameters: ["ptr", "ptr"], result: "void" },
  // GGML_API void ggml_build_backward_expand(struct ggml_context * ctx, struct ggml_cgraph * cgraph, struct ggml_tensor ** grad_accs);
  ggml_build_backward_expand: { parameters: ["ptr", "ptr", "buffer"], result: "void" },
  // GGML_API struct ggml_cgraph * ggml_new_graph_custom(struct ggml_context * ctx, size_t size, bool grads);
  ggml_new_graph_custom: { parameters: ["ptr", "usize", "bool"], result: "ptr" },
  // GGML_API int                   ggml_graph_size   (struct ggml_cgraph * cgraph);
  ggml_graph_size: { parameters: ["ptr"], result: "i32" },
  // GGML_API struct ggml_tensor *  ggml_graph_node   (struct ggml_cgraph * cgraph, int i); // if i < 0, returns nodes[n_nodes + i]
  ggml_graph_node: { parameters: ["ptr", "i32"], result: "ptr" },
  // GGML_API int                   ggml_graph_n_nodes(struct ggml_cgraph * cgraph);
  ggml_graph_n_nodes: { parameters: ["ptr"], result: "i32" },
  // GGML_API size_t ggml_graph_overhead_custom(size_t size, bool grads);
  ggml_graph_overhead_custom: { parameters: ["usize", "bool"], result: "usize" },
  // GGML_API struct ggml_tensor * ggml_graph_get_grad    (const struct ggml_cgraph * cgraph, const struct ggml_tensor * node);
  ggml_graph_get_grad: { parameters: ["ptr", "ptr"], result: "ptr" },
} as const;
export const ggmlGraphSymbols: typeof ggmlGraphTable = defineSymbols(ggmlGraphTable);

// ----- ggml-alloc.h and ggml-backend.h (libggml-base), in header order ------------------------------

const ggmlBackendTable = {
  // GGML_API struct ggml_backend_buffer * ggml_backend_alloc_ctx_tensors(struct ggml_context * ctx, ggml_backend_t backend);
  ggml_backend_alloc_ctx_tensors: { parameters: ["ptr", "ptr"], result: "ptr" },
  // GGML_API void                           ggml_backend_buffer_free          (ggml_backend_buffer_t buffer);
  ggml_backend_buffer_free: { parameters: ["ptr"], result: "void" },
  // GGML_API void *                         ggml_backend_buffer_get_base      (ggml_backend_buffer_t buffer);
  ggml_backend_buffer_get_base: { parameters: ["ptr"], result: "ptr" },
  // GGML_API size_t                         ggml_backend_buffer_get_size      (ggml_backend_buffer_t buffer);
  ggml_backend_buffer_get_size: { parameters: ["ptr"], result: "usize" },
  // GGML_API void                           ggml_backend_buffer_clear         (ggml_backend_buffer_t buffer, uint8_t value);
  ggml_backend_buffer_clear: { parameters: ["ptr", "u8"], result: "void" },
  // GGML_API const char * ggml_backend_name(ggml_backend_t backend);
  ggml_backend_name: { parameters: ["ptr"], result: "cstring" },
  // GGML_API void         ggml_backend_free(ggml_backend_t backend);
  ggml_backend_free: { parameters: ["ptr"], result: "void" },
  // GGML_API void ggml_backend_tensor_set   (      struct ggml_tensor * tensor, const void * data, size_t offset, size_t size);
  ggml_backend_tensor_set: { parameters: ["ptr", "buffer", "usize", "usize"], result: "void" },
  // GGML_API void ggml_backend_tensor_get   (const struct ggml_tensor * tensor,       void * data, size_t offset, size_t size);
  ggml_backend_tensor_get: { parameters: ["ptr", "buffer", "usize", "usize"], result: "void" },
  // GGML_API void ggml_backend_tensor_memset(      struct ggml_tensor * tensor,     uint8_t value, size_t offset, size_t size);
  ggml_backend_tensor_memset: { parameters: ["ptr", "u8", "usize", "usize"], result: "void" },
  // GGML_API void ggml_backend_synchronize(ggml_backend_t backend);
  ggml_backend_synchronize: { parameters: ["ptr"], result: "void" },
  // GGML_API ggml_backend_dev_t ggml_backend_get_device(ggml_backend_t backend);
  ggml_backend_get_device: { parameters: ["ptr"], result: "ptr" },
  // GGML_API ggml_backend_t                ggml_backend_dev_init(ggml_backend_dev_t device, const char * params);
  ggml_backend_dev_init: { parameters: ["ptr", "cstring"], result: "ptr" },
  // GGML_API ggml_backend_sched_t ggml_backend_sched_new(ggml_backend_t * backends, ggml_backend_buffer_type_t * bufts, int n_backends, size_t graph_size, bool parallel, bool op_offload);
  ggml_backend_sched_new: { parameters: ["buffer", "ptr", "i32", "usize", "bool", "bool"], result: "ptr" },
  // GGML_API void                 ggml_backend_sched_free(ggml_backend_sched_t sched);
  ggml_backend_sched_free: { parameters: ["ptr"], result: "void" },
  // GGML_API void                 ggml_backend_sched_reserve_size(ggml_backend_sched_t sched, struct ggml_cgraph * measure_graph, size_t * sizes);
  ggml_backend_sched_reserve_size: { parameters: ["ptr", "ptr", "buffer"], result: "void" },
  // GGML_API bool                 ggml_backend_sched_reserve(ggml_backend_sched_t sched, struct ggml_cgraph * measure_graph); // returns success
  ggml_backend_sched_reserve: { parameters: ["ptr", "ptr"], result: "bool" },
  // GGML_API int                  ggml_backend_sched_get_n_splits(ggml_backend_sched_t sched);
  ggml_backend_sched_get_n_splits: { parameters: ["ptr"], result: "i32" },
  // GGML_API size_t               ggml_backend_sched_get_buffer_size(ggml_backend_sched_t sched, ggml_backend_t backend);
  ggml_backend_sched_get_buffer_size: { parameters: ["ptr", "ptr"], result: "usize" },
  // GGML_API bool                 ggml_backend_sched_alloc_graph(ggml_backend_sched_t sched, struct ggml_cgraph * graph); // returns success
  ggml_backend_sched_alloc_graph: { parameters: ["ptr", "ptr"], result: "bool" },
  // GGML_API enum ggml_status     ggml_backend_sched_graph_compute(ggml_backend_sched_t sched, struct ggml_cgraph * graph);
  ggml_backend_sched_graph_compute: { parameters: ["ptr", "ptr"], result: "i32", nonblocking: true },
  // GGML_API void                 ggml_backend_sched_reset(ggml_backend_sched_t sched);
  ggml_backend_sched_reset: { parameters: ["ptr"], result: "void" },
} as const;
export const ggmlBackendSymbols: typeof ggmlBackendTable = defineSymbols(ggmlBackendTable);

// ----- ggml-cpu.h (the CPU backend's own file) ------------------------------------------------------

const ggmlCpuBackendTable = {
  // GGML_BACKEND_API void ggml_backend_cpu_set_n_threads     (ggml_backend_t backend_cpu, int n_threads);
  ggml_backend_cpu_set_n_threads: { parameters: ["ptr", "i32"], result: "void" },
} as const;
export const ggmlCpuBackendSymbols: typeof ggmlCpuBackendTable = defineSymbols(ggmlCpuBackendTable);
