// Where libllama lives, and the part of its C API gpuffi binds, in the order of llama.cpp
// 0.5.0's include/llama.h (the source bundled by node-llama-cpp 3.22.1). Keep that order: a
// version bump is then a diff of the header against this file. Struct layouts here are ABI: they
// must match the header exactly. The ggml libraries beside it are bound in src/ggml/bindings.ts.
import { type LibrarySpec, type SearchDir, type StructType, defineCallback, defineStruct, defineSymbols, nodeModulesDirs } from "../ffi/index.ts";

/** The llama.cpp these bindings were written against; `llama_version()` must report it. */
export const expectedVersions = Object.freeze({ llama: "0.5.0", ggml: "0.25.1" });

/** npm packages of node-llama-cpp prebuilt binaries, CUDA first: the first one installed is used. */
function* prebuiltDirs(): Generator<SearchDir> {
  yield* nodeModulesDirs("@node-llama-cpp/linux-x64-cuda", "bins/linux-x64-cuda");
  yield* nodeModulesDirs("@node-llama-cpp/linux-x64", "bins/linux-x64");
}

// node-llama-cpp's prebuilt files carry the version in the name; a CMake build uses the soname.
export const llamaSpec: LibrarySpec = {
  name: "libllama",
  sonames: ["libllama.v0.5.0.so", "libllama.so.0", "libllama.so"],
  envVar: "GPUFFI_LLAMA_DIR",
  searchDirs: prebuiltDirs,
  hint:
    "install the optional dependency @node-llama-cpp/linux-x64 (CPU) or @node-llama-cpp/linux-x64-cuda (CUDA), " +
    "build one with scripts/build-llama.sh --out DIR, or set GPUFFI_LLAMA_DIR to a directory holding libllama.",
};

// ----- structs (llama.h) ------------------------------------------------------------------------

// typedef struct llama_token_data_array { llama_token_data * data; size_t size; int64_t selected; bool sorted; }
// is not bound: sampling stays inside llama.cpp (llama_sampler_sample), so no candidate array crosses.

// typedef struct llama_batch { ... } llama_batch;
const llamaBatchFields = {
  n_tokens: "i32",
  token: "ptr",
  embd: "ptr",
  pos: "ptr",
  n_seq_id: "ptr",
  seq_id: "ptr",
  logits: "ptr",
} as const;
export const llamaBatch: StructType<typeof llamaBatchFields> = defineStruct("llama_batch", llamaBatchFields);

// struct llama_model_params
const llamaModelParamsFields = {
  devices: "ptr",
  tensor_buft_overrides: "ptr",
  n_gpu_layers: "i32",
  split_mode: "i32",
  load_mode: "i32",
  lazy_mode: "i32",
  main_gpu: "i32",
  tensor_split: "ptr",
  progress_callback: "ptr",
  progress_callback_user_data: "ptr",
  kv_overrides: "ptr",
  vocab_only: "bool",
  check_tensors: "bool",
  use_extra_bufts: "bool",
  no_host: "bool",
  no_alloc: "bool",
  load_mtp: "bool",
} as const;
export const llamaModelParams: StructType<typeof llamaModelParamsFields> = defineStruct("llama_model_params", llamaModelParamsFields);

// struct llama_context_params
const llamaContextParamsFields = {
  n_ctx: "u32",
  n_batch: "u32",
  n_ubatch: "u32",
  n_seq_max: "u32",
  n_rs_seq: "u32",
  n_outputs_max: "u32",
  n_outputs_max_per_seq: "u32",
  n_threads: "i32",
  n_threads_batch: "i32",
  ctx_type: "i32",
  rope_scaling_type: "i32",
  pooling_type: "i32",
  attention_type: "i32",
  flash_attn_type: "i32",
  rope_freq_base: "f32",
  rope_freq_scale: "f32",
  yarn_ext_factor: "f32",
  yarn_attn_factor: "f32",
  yarn_beta_fast: "f32",
  yarn_beta_slow: "f32",
  yarn_orig_ctx: "u32",
  defrag_thold: "f32",
  cb_eval: "ptr",
  cb_eval_user_data: "ptr",
  type_k: "i32",
  type_v: "i32",
  abort_callback: "ptr",
  abort_callback_data: "ptr",
  embeddings: "bool",
  offload_kqv: "bool",
  no_perf: "bool",
  op_offload: "bool",
  swa_full: "bool",
  kv_unified: "bool",
  samplers: "ptr",
  n_samplers: "usize",
  ctx_other: "ptr",
} as const;
export const llamaContextParams: StructType<typeof llamaContextParamsFields> = defineStruct("llama_context_params", llamaContextParamsFields);

// typedef struct llama_sampler_chain_params { bool no_perf; } llama_sampler_chain_params;
const llamaSamplerChainParamsFields = { no_perf: "bool" } as const;
export const llamaSamplerChainParams: StructType<typeof llamaSamplerChainParamsFields> = defineStruct("llama_sampler_chain_params", llamaSamplerChainParamsFields);

// typedef struct llama_chat_message { const char * role; const char * content; } llama_chat_message;
const llamaChatMessageFields = { role: "ptr", content: "ptr" } as const;
export const llamaChatMessage: StructType<typeof llamaChatMessageFields> = defineStruct("llama_chat_message", llamaChatMessageFields);

// typedef bool (*llama_progress_callback)(float progress, void * user_data);
export const llamaProgressCallback = defineCallback({ parameters: ["f32", "ptr"], result: "bool" });

// enum llama_split_mode, enum llama_load_mode, enum llama_flash_attn_type, enum llama_pooling_type
export const SplitMode = { none: 0, layer: 1, row: 2, tensor: 3 } as const;
export const LoadMode = { auto: -1, none: 0, mmap: 1 } as const;
export const FlashAttention = { auto: -1, disabled: 0, enabled: 1 } as const;
// enum ggml_type (ggml.h), the KV-cache element types worth offering
export const CacheType = { f32: 0, f16: 1, q8_0: 8 } as const;
export const PoolingType = { unspecified: -1, none: 0, mean: 1, cls: 2, last: 3, rank: 4 } as const;
/** #define LLAMA_DEFAULT_SEED 0xFFFFFFFF: a random seed per sampler. */
export const LLAMA_DEFAULT_SEED = 0xffffffff;
/** #define LLAMA_TOKEN_NULL -1: no token (nothing was sampled on the device for an output). */
export const LLAMA_TOKEN_NULL = -1;

// ----- functions (llama.h, in header order) -----------------------------------------------------

const llamaTable = {
  // LLAMA_API const char * llama_version(void);
  llama_version: { parameters: [], result: "cstring" },
  // LLAMA_API struct llama_model_params llama_model_default_params(void);
  llama_model_default_params: { parameters: [], result: llamaModelParams },
  // LLAMA_API struct llama_context_params llama_context_default_params(void);
  llama_context_default_params: { parameters: [], result: llamaContextParams },
  // LLAMA_API struct llama_sampler_chain_params llama_sampler_chain_default_params(void);
  llama_sampler_chain_default_params: { parameters: [], result: llamaSamplerChainParams },
  // LLAMA_API void llama_backend_init(void);
  llama_backend_init: { parameters: [], result: "void" },
  // LLAMA_API void llama_backend_free(void);
  llama_backend_free: { parameters: [], result: "void" },
  // LLAMA_API void llama_attach_threadpool(struct llama_context * ctx, ggml_threadpool_t threadpool, ggml_threadpool_t threadpool_batch);
  llama_attach_threadpool: { parameters: ["ptr", "ptr", "ptr"], result: "void" },
  // LLAMA_API struct llama_model * llama_model_load_from_file(const char * path_model, struct llama_model_params params);
  llama_model_load_from_file: { parameters: ["cstring", llamaModelParams], result: "ptr", nonblocking: true },
  // LLAMA_API void llama_model_free(struct llama_model * model);
  llama_model_free: { parameters: ["ptr"], result: "void" },
  // LLAMA_API struct llama_context * llama_init_from_model(struct llama_model * model, struct llama_context_params params);
  llama_init_from_model: { parameters: ["ptr", llamaContextParams], result: "ptr" },
  // LLAMA_API void llama_free(struct llama_context * ctx);
  llama_free: { parameters: ["ptr"], result: "void" },
  // LLAMA_API size_t llama_max_devices(void);
  llama_max_devices: { parameters: [], result: "usize" },
  // LLAMA_API bool llama_supports_gpu_offload(void);
  llama_supports_gpu_offload: { parameters: [], result: "bool" },
  // LLAMA_API bool llama_supports_rpc        (void);
  llama_supports_rpc: { parameters: [], result: "bool" },
  // LLAMA_API uint32_t llama_n_ctx(const struct llama_context * ctx);
  llama_n_ctx: { parameters: ["ptr"], result: "u32" },
  // LLAMA_API uint32_t llama_n_batch(const struct llama_context * ctx);
  llama_n_batch: { parameters: ["ptr"], result: "u32" },
  // LLAMA_API uint32_t llama_n_ubatch(const struct llama_context * ctx);
  llama_n_ubatch: { parameters: ["ptr"], result: "u32" },
  // LLAMA_API uint32_t llama_n_seq_max(const struct llama_context * ctx);
  llama_n_seq_max: { parameters: ["ptr"], result: "u32" },
  // LLAMA_API llama_memory_t llama_get_memory(const struct llama_context * ctx);
  llama_get_memory: { parameters: ["ptr"], result: "ptr" },
  // LLAMA_API enum llama_pooling_type llama_pooling_type(const struct llama_context * ctx);
  llama_pooling_type: { parameters: ["ptr"], result: "i32" },
  // LLAMA_API const struct llama_vocab * llama_model_get_vocab(const struct llama_model * model);
  llama_model_get_vocab: { parameters: ["ptr"], result: "ptr" },
  // LLAMA_API int32_t llama_model_n_ctx_train(const struct llama_model * model);
  llama_model_n_ctx_train: { parameters: ["ptr"], result: "i32" },
  // LLAMA_API int32_t llama_model_n_embd(const struct llama_model * model);
  llama_model_n_embd: { parameters: ["ptr"], result: "i32" },
  // LLAMA_API int32_t llama_model_n_embd_out(const struct llama_model * model);
  llama_model_n_embd_out: { parameters: ["ptr"], result: "i32" },
  // LLAMA_API int32_t llama_model_n_layer(const struct llama_model * model);
  llama_model_n_layer: { parameters: ["ptr"], result: "i32" },
  // LLAMA_API int32_t llama_model_n_head(const struct llama_model * model);
  llama_model_n_head: { parameters: ["ptr"], result: "i32" },
  // LLAMA_API int32_t llama_model_n_head_kv(const struct llama_model * model);
  llama_model_n_head_kv: { parameters: ["ptr"], result: "i32" },
  // LLAMA_API uint32_t llama_model_n_cls_out(const struct llama_model * model);
  llama_model_n_cls_out: { parameters: ["ptr"], result: "u32" },
  // LLAMA_API int32_t llama_vocab_n_tokens(const struct llama_vocab * vocab);
  llama_vocab_n_tokens: { parameters: ["ptr"], result: "i32" },
  // LLAMA_API int32_t llama_model_meta_count(const struct llama_model * model);
  llama_model_meta_count: { parameters: ["ptr"], result: "i32" },
  // LLAMA_API int32_t llama_model_meta_key_by_index(const struct llama_model * model, int32_t i, char * buf, size_t buf_size);
  llama_model_meta_key_by_index: { parameters: ["ptr", "i32", "buffer", "usize"], result: "i32" },
  // LLAMA_API int32_t llama_model_meta_val_str_by_index(const struct llama_model * model, int32_t i, char * buf, size_t buf_size);
  llama_model_meta_val_str_by_index: { parameters: ["ptr", "i32", "buffer", "usize"], result: "i32" },
  // LLAMA_API int32_t llama_model_desc(const struct llama_model * model, char * buf, size_t buf_size);
  llama_model_desc: { parameters: ["ptr", "buffer", "usize"], result: "i32" },
  // LLAMA_API uint64_t llama_model_size(const struct llama_model * model);
  llama_model_size: { parameters: ["ptr"], result: "u64" },
  // LLAMA_API const char * llama_model_chat_template(const struct llama_model * model, const char * name);
  llama_model_chat_template: { parameters: ["ptr", "cstring"], result: "cstring" },
  // LLAMA_API uint64_t llama_model_n_params(const struct llama_model * model);
  llama_model_n_params: { parameters: ["ptr"], result: "u64" },
  // LLAMA_API struct llama_adapter_lora * llama_adapter_lora_init(struct llama_model * model, const char * path_lora);
  llama_adapter_lora_init: { parameters: ["ptr", "cstring"], result: "ptr" },
  // LLAMA_API struct llama_adapter_lora * llama_adapter_lora_init_from_file_ptr(struct llama_model * model, FILE * file);
  // Reads the header from the stream's position, then every tensor's data at its offset from the
  // stream's start (llama_file seeks there), all before it returns: the stream can be closed after.
  llama_adapter_lora_init_from_file_ptr: { parameters: ["ptr", "ptr"], result: "ptr" },
  // LLAMA_API int32_t llama_adapter_meta_count(const struct llama_adapter_lora * adapter);
  llama_adapter_meta_count: { parameters: ["ptr"], result: "i32" },
  // LLAMA_API int32_t llama_adapter_meta_key_by_index(const struct llama_adapter_lora * adapter, int32_t i, char * buf, size_t buf_size);
  llama_adapter_meta_key_by_index: { parameters: ["ptr", "i32", "buffer", "usize"], result: "i32" },
  // LLAMA_API int32_t llama_adapter_meta_val_str_by_index(const struct llama_adapter_lora * adapter, int32_t i, char * buf, size_t buf_size);
  llama_adapter_meta_val_str_by_index: { parameters: ["ptr", "i32", "buffer", "usize"], result: "i32" },
  // LLAMA_API void llama_adapter_lora_free(struct llama_adapter_lora * adapter);
  llama_adapter_lora_free: { parameters: ["ptr"], result: "void" },
  // LLAMA_API uint64_t llama_adapter_get_alora_n_invocation_tokens(const struct llama_adapter_lora * adapter);
  llama_adapter_get_alora_n_invocation_tokens: { parameters: ["ptr"], result: "u64" },
  // LLAMA_API const llama_token * llama_adapter_get_alora_invocation_tokens(const struct llama_adapter_lora * adapter);
  llama_adapter_get_alora_invocation_tokens: { parameters: ["ptr"], result: "ptr" },
  // LLAMA_API int32_t llama_set_adapters_lora(struct llama_context * ctx, struct llama_adapter_lora ** adapters, size_t n_adapters, float * scales);
  llama_set_adapters_lora: { parameters: ["ptr", "buffer", "usize", "buffer"], result: "i32" },
  // LLAMA_API void llama_memory_clear(llama_memory_t mem, bool data);
  llama_memory_clear: { parameters: ["ptr", "bool"], result: "void" },
  // LLAMA_API bool llama_memory_seq_rm(llama_memory_t mem, llama_seq_id seq_id, llama_pos p0, llama_pos p1);
  llama_memory_seq_rm: { parameters: ["ptr", "i32", "i32", "i32"], result: "bool" },
  // LLAMA_API void llama_memory_seq_cp(llama_memory_t mem, llama_seq_id seq_id_src, llama_seq_id seq_id_dst, llama_pos p0, llama_pos p1);
  llama_memory_seq_cp: { parameters: ["ptr", "i32", "i32", "i32", "i32"], result: "void" },
  // LLAMA_API void llama_memory_seq_keep(llama_memory_t mem, llama_seq_id seq_id);
  llama_memory_seq_keep: { parameters: ["ptr", "i32"], result: "void" },
  // LLAMA_API void llama_memory_seq_add(llama_memory_t mem, llama_seq_id seq_id, llama_pos p0, llama_pos p1, llama_pos delta);
  llama_memory_seq_add: { parameters: ["ptr", "i32", "i32", "i32", "i32"], result: "void" },
  // LLAMA_API llama_pos llama_memory_seq_pos_min(llama_memory_t mem, llama_seq_id seq_id);
  llama_memory_seq_pos_min: { parameters: ["ptr", "i32"], result: "i32" },
  // LLAMA_API llama_pos llama_memory_seq_pos_max(llama_memory_t mem, llama_seq_id seq_id);
  llama_memory_seq_pos_max: { parameters: ["ptr", "i32"], result: "i32" },
  // LLAMA_API size_t llama_state_get_size(struct llama_context * ctx);
  llama_state_get_size: { parameters: ["ptr"], result: "usize" },
  // LLAMA_API size_t llama_state_get_data(struct llama_context * ctx, uint8_t * dst, size_t size);
  llama_state_get_data: { parameters: ["ptr", "buffer", "usize"], result: "usize" },
  // LLAMA_API size_t llama_state_set_data(struct llama_context * ctx, const uint8_t * src, size_t size);
  llama_state_set_data: { parameters: ["ptr", "buffer", "usize"], result: "usize" },
  // LLAMA_API size_t llama_state_seq_get_size(struct llama_context * ctx, llama_seq_id seq_id);
  llama_state_seq_get_size: { parameters: ["ptr", "i32"], result: "usize" },
  // LLAMA_API size_t llama_state_seq_get_data(struct llama_context * ctx, uint8_t * dst, size_t size, llama_seq_id seq_id);
  llama_state_seq_get_data: { parameters: ["ptr", "buffer", "usize", "i32"], result: "usize" },
  // LLAMA_API size_t llama_state_seq_set_data(struct llama_context * ctx, const uint8_t * src, size_t size, llama_seq_id dest_seq_id);
  llama_state_seq_set_data: { parameters: ["ptr", "buffer", "usize", "i32"], result: "usize" },
  // LLAMA_API struct llama_batch llama_batch_init(int32_t n_tokens, int32_t embd, int32_t n_seq_max);
  llama_batch_init: { parameters: ["i32", "i32", "i32"], result: llamaBatch },
  // LLAMA_API void llama_batch_free(struct llama_batch batch);
  llama_batch_free: { parameters: [llamaBatch], result: "void" },
  // LLAMA_API int32_t llama_decode(struct llama_context * ctx, struct llama_batch batch);
  llama_decode: { parameters: ["ptr", llamaBatch], result: "i32" },
  // LLAMA_API int32_t llama_n_threads(struct llama_context * ctx);
  llama_n_threads: { parameters: ["ptr"], result: "i32" },
  // LLAMA_API void llama_synchronize(struct llama_context * ctx);
  llama_synchronize: { parameters: ["ptr"], result: "void" },
  // LLAMA_API float * llama_get_logits_ith(struct llama_context * ctx, int32_t i);
  llama_get_logits_ith: { parameters: ["ptr", "i32"], result: "ptr" },
  // LLAMA_API float * llama_get_embeddings_ith(struct llama_context * ctx, int32_t i);
  llama_get_embeddings_ith: { parameters: ["ptr", "i32"], result: "ptr" },
  // LLAMA_API float * llama_get_embeddings_seq(struct llama_context * ctx, llama_seq_id seq_id);
  llama_get_embeddings_seq: { parameters: ["ptr", "i32"], result: "ptr" },
  // [EXPERIMENTAL] LLAMA_API llama_token llama_get_sampled_token_ith(struct llama_context * ctx, int32_t i);
  llama_get_sampled_token_ith: { parameters: ["ptr", "i32"], result: "i32" },
  // LLAMA_API const char * llama_vocab_get_text(const struct llama_vocab * vocab, llama_token token);
  llama_vocab_get_text: { parameters: ["ptr", "i32"], result: "cstring" },
  // LLAMA_API bool llama_vocab_is_eog(const struct llama_vocab * vocab, llama_token token);
  llama_vocab_is_eog: { parameters: ["ptr", "i32"], result: "bool" },
  // LLAMA_API llama_token llama_vocab_bos(const struct llama_vocab * vocab);
  llama_vocab_bos: { parameters: ["ptr"], result: "i32" },
  // LLAMA_API llama_token llama_vocab_eos(const struct llama_vocab * vocab);
  llama_vocab_eos: { parameters: ["ptr"], result: "i32" },
  // LLAMA_API llama_token llama_vocab_eot(const struct llama_vocab * vocab);
  llama_vocab_eot: { parameters: ["ptr"], result: "i32" },
  // LLAMA_API llama_token llama_vocab_nl(const struct llama_vocab * vocab);
  llama_vocab_nl: { parameters: ["ptr"], result: "i32" },
  // LLAMA_API int32_t llama_tokenize(const struct llama_vocab * vocab, const char * text, int32_t text_len, llama_token * tokens, int32_t n_tokens_max, bool add_special, bool parse_special);
  llama_tokenize: { parameters: ["ptr", "buffer", "i32", "buffer", "i32", "bool", "bool"], result: "i32" },
  // LLAMA_API int32_t llama_token_to_piece(const struct llama_vocab * vocab, llama_token token, char * buf, int32_t length, int32_t lstrip, bool special);
  llama_token_to_piece: { parameters: ["ptr", "i32", "buffer", "i32", "i32", "bool"], result: "i32" },
  // LLAMA_API int32_t llama_detokenize(const struct llama_vocab * vocab, const llama_token * tokens, int32_t n_tokens, char * text, int32_t text_len_max, bool remove_special, bool unparse_special);
  llama_detokenize: { parameters: ["ptr", "buffer", "i32", "buffer", "i32", "bool", "bool"], result: "i32" },
  // LLAMA_API int32_t llama_chat_apply_template(const char * tmpl, const struct llama_chat_message * chat, size_t n_msg, bool add_ass, char * buf, int32_t length);
  llama_chat_apply_template: { parameters: ["cstring", "ptr", "usize", "bool", "buffer", "i32"], result: "i32" },
  // [EXPERIMENTAL] LLAMA_API bool llama_set_sampler(struct llama_context * ctx, llama_seq_id seq_id, struct llama_sampler * smpl);
  llama_set_sampler: { parameters: ["ptr", "i32", "ptr"], result: "bool" },
  // LLAMA_API void llama_sampler_accept(struct llama_sampler * smpl, llama_token token);
  llama_sampler_accept: { parameters: ["ptr", "i32"], result: "void" },
  // LLAMA_API void llama_sampler_reset(struct llama_sampler * smpl);
  llama_sampler_reset: { parameters: ["ptr"], result: "void" },
  // LLAMA_API void llama_sampler_free(struct llama_sampler * smpl);
  llama_sampler_free: { parameters: ["ptr"], result: "void" },
  // LLAMA_API struct llama_sampler * llama_sampler_chain_init(struct llama_sampler_chain_params params);
  llama_sampler_chain_init: { parameters: [llamaSamplerChainParams], result: "ptr" },
  // LLAMA_API void llama_sampler_chain_add(struct llama_sampler * chain, struct llama_sampler * smpl);
  llama_sampler_chain_add: { parameters: ["ptr", "ptr"], result: "void" },
  // LLAMA_API struct llama_sampler * llama_sampler_init_greedy(void);
  llama_sampler_init_greedy: { parameters: [], result: "ptr" },
  // LLAMA_API struct llama_sampler * llama_sampler_init_dist(uint32_t seed);
  llama_sampler_init_dist: { parameters: ["u32"], result: "ptr" },
  // LLAMA_API struct llama_sampler * llama_sampler_init_top_k(int32_t k);
  llama_sampler_init_top_k: { parameters: ["i32"], result: "ptr" },
  // LLAMA_API struct llama_sampler * llama_sampler_init_top_p(float p, size_t min_keep);
  llama_sampler_init_top_p: { parameters: ["f32", "usize"], result: "ptr" },
  // LLAMA_API struct llama_sampler * llama_sampler_init_min_p(float p, size_t min_keep);
  llama_sampler_init_min_p: { parameters: ["f32", "usize"], result: "ptr" },
  // LLAMA_API struct llama_sampler * llama_sampler_init_temp(float t);
  llama_sampler_init_temp: { parameters: ["f32"], result: "ptr" },
  // LLAMA_API struct llama_sampler * llama_sampler_init_grammar(const struct llama_vocab * vocab, const char * grammar_str, const char * grammar_root);
  llama_sampler_init_grammar: { parameters: ["ptr", "cstring", "cstring"], result: "ptr" },
  // LLAMA_API struct llama_sampler * llama_sampler_init_penalties(int32_t n_vocab, int32_t penalty_last_n, float penalty_repeat, float penalty_freq, float penalty_present);
  llama_sampler_init_penalties: { parameters: ["i32", "i32", "f32", "f32", "f32"], result: "ptr" },
  // LLAMA_API uint32_t llama_sampler_get_seed(const struct llama_sampler * smpl);
  llama_sampler_get_seed: { parameters: ["ptr"], result: "u32" },
  // LLAMA_API llama_token llama_sampler_sample(struct llama_sampler * smpl, struct llama_context * ctx, int32_t idx);
  llama_sampler_sample: { parameters: ["ptr", "ptr", "i32"], result: "i32" },
  // LLAMA_API const char * llama_print_system_info(void);
  llama_print_system_info: { parameters: [], result: "cstring" },
  // LLAMA_API void llama_log_set(ggml_log_callback log_callback, void * user_data);
  llama_log_set: { parameters: ["ptr", "ptr"], result: "void" },
} as const;
export const llamaSymbols: typeof llamaTable = defineSymbols(llamaTable);
