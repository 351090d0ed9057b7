// LlamaContext: a llama_context (KV cache, compute buffers) over a model, with its LoRA adapter
// set, decoding, logits/embeddings, KV-cache sequence operations, state and generation.
import { availableParallelism } from "node:os";
import { NativeResource, type Pointer, nativeView } from "../ffi/index.ts";
import type { LoraAdapter } from "./adapter.ts";
import { Batch } from "./batch.ts";
import { CacheType, FlashAttention, LLAMA_TOKEN_NULL, PoolingType } from "./bindings.ts";
import { LlamaError } from "./errors.ts";
import type { LlamaModel, TokenizeOptions } from "./model.ts";
import { LlamaSampler, type SamplerOptions, samplesGreedily } from "./sampler.ts";
import type { LlamaThreadpool } from "./threadpool.ts";

export interface ContextOptions {
  /** Tokens the KV cache holds, over all sequences (0 = the model's training context). */
  readonly contextSize?: number;
  /** Most tokens one decode call takes (default 512). */
  readonly batchSize?: number;
  /** Tokens computed per physical step (default 512). */
  readonly ubatchSize?: number;
  /** Sequences the context keeps apart (default 1). */
  readonly sequences?: number;
  /** CPU threads for single-token decoding (default: the threadpool's, else llama.cpp's 4, at most the cores available). */
  readonly threads?: number;
  readonly threadsBatch?: number;
  /**
   * A threadpool to compute on, as llama-bench attaches one (default: ggml makes one per graph).
   * It must have at least `threads` and `threadsBatch` threads; the context keeps it alive.
   */
  readonly threadpool?: LlamaThreadpool;
  readonly flashAttention?: boolean | "auto";
  /** Also compute embeddings (default false); llama.cpp then outputs every token of a decode. */
  readonly embeddings?: boolean;
  /**
   * How `sequenceEmbeddings` pools a sequence's tokens (default: the model's, "none" for most
   * generative models). llama.cpp pools over one decode's tokens of the sequence.
   */
  readonly pooling?: keyof typeof PoolingType;
  /**
   * One KV cache for all sequences (llama.cpp's kv_unified) instead of one per sequence. Default:
   * on for a pooled-embeddings context of several sequences (with a cache per sequence llama.cpp
   * splits a batch into equal-length pieces and would pool each piece), off otherwise.
   */
  readonly unifiedCache?: boolean;
  /** Element type of the KV cache (default "f16"); "f32" for bit-level comparisons. */
  readonly cacheType?: keyof typeof CacheType;
}

export interface AdapterSetting {
  readonly adapter: LoraAdapter;
  /** Multiplies the adapter's alpha/rank scaling (default 1; 0 leaves the adapter out). */
  readonly scale?: number;
}

export interface EvaluateOptions {
  readonly sequence?: number;
  /** Position of the first token (default: right after what the sequence holds). */
  readonly position?: number;
  /** Keep the logits of every token, not only the last (default false). */
  readonly allLogits?: boolean;
}

export interface GenerateOptions extends SamplerOptions {
  /** Most tokens to generate (default 256). */
  readonly maxTokens?: number;
  /** A sampler to use instead of one built from the sampler options. */
  readonly sampler?: LlamaSampler;
  /** Set this adapter set first ([] = the base model). Default: keep the context's current set. */
  readonly adapters?: readonly AdapterSetting[];
  /** The sequence to generate in (default 0); several may generate concurrently in one context. */
  readonly sequence?: number;
  /** Texts that end generation; they are not part of the output. */
  readonly stop?: readonly string[];
  /** End at an end-of-generation token (default true). */
  readonly stopAtEndOfGeneration?: boolean;
  /** Stops generation before the next token; the iterator then throws the signal's reason. */
  readonly signal?: AbortSignal;
  /** How to tokenize a string prompt (default: add BOS as the model asks). */
  readonly tokenize?: TokenizeOptions;
  /**
   * Greedy sampling (temperature ≤ 0, no grammar, no penalties, no `sampler` of your own) on the
   * device that computes the logits, as part of each decode (llama.cpp's backend sampling, marked
   * experimental in 0.5.0): the token comes back instead of the logits, and no copy of the logits
   * or CPU pass over them sits between two decodes. The same tokens either way. Default: when the
   * model computes its logits on a GPU; on the CPU backend it costs more than it saves (ggml's CPU
   * pad op, which the sampling graph starts with, took a fifth of a tiny model's decode).
   */
  readonly sampleOnDevice?: boolean;
}

export interface GeneratedToken {
  /** The token id; -1 for a final chunk that only carries text held back while matching a stop text. */
  readonly token: number;
  /** The text this token made visible (empty while a multi-byte character or a possible stop text is incomplete). */
  readonly text: string;
}

/** A snapshot of a context's state, tied to the adapter set it was computed under. */
export interface ContextState {
  readonly data: Uint8Array;
  /** The adapter set at save time; restoring under another set is refused. */
  readonly adapterSet: string;
  /** The sequence it holds, or `undefined` for the whole context. */
  readonly sequence?: number;
}

/** A token of generate() decoded and not sampled yet: its sampler, and the token once sampled. */
interface UnsampledStep {
  readonly sampler: Pointer;
  token: number;
}

// setImmediate gives other tasks a turn without the ≥1 ms clamp of Node's setTimeout(…, 0).
const nextTurn = (): Promise<void> =>
  new Promise((resolve) => (typeof setImmediate === "function" ? setImmediate(resolve) : setTimeout(resolve, 0)));

const decodeFailures: Record<number, string> = {
  1: "no KV-cache slot for the batch (the context is full: enlarge contextSize or free sequences)",
  2: "aborted",
  [-1]: "invalid batch",
};

/**
 * A context over a model. LoRA adapters apply to the whole context (every sequence), so
 * changing the adapter set empties the KV cache: nothing computed under one set is ever reused
 * under another. Several contexts may share one model, each with its own adapters.
 */
export class LlamaContext extends NativeResource {
  /** @internal The `llama_context *`. */
  readonly ptr: Pointer;
  readonly model: LlamaModel;
  readonly #memory: Pointer;
  readonly #batch: Batch;
  // Read once: the context may outlive the JS model object's disposal (it holds the model natively).
  readonly #vocabSize: number;
  readonly #embeddingSize: number;
  // Floats per pooled embedding (n_cls_out scores for "rank"), 0 when the context does not pool.
  readonly #pooledSize: number;
  // What the context holds natively, in an object the release closure shares (it must not capture
  // `this`): the adapters set, and the greedy chains attached to sequences for sampling on the device.
  readonly #held: { adapters: readonly AdapterSetting[]; deviceSamplers: Map<number, LlamaSampler> };
  #adapterSet = "";
  // False once llama.cpp refused a device sampler: this context samples on the CPU from then on.
  #deviceSampling = true;
  // The last decode sampled its outputs on the device, so llama.cpp copied no logits back.
  #logitsOnDevice = false;
  // The step of a generation decoded but not sampled yet (see generate).
  #unsampled: UnsampledStep | undefined;
  // What each sequence's KV cache holds, from position 0, as far as generate() knows it; a
  // sequence touched any other way is absent and starts from scratch at its next generate().
  readonly #cached = new Map<number, number[]>();
  #generating = 0;

  private constructor(model: LlamaModel, ptr: Pointer, threadpool: LlamaThreadpool | undefined, pooledSize: number) {
    const { symbols } = model.llama.lib;
    model.lifetime.retain();
    const modelLifetime = model.lifetime;
    const threadpoolLifetime = threadpool?.lifetime;
    threadpoolLifetime?.retain();
    const batch = new Batch(model.llama, symbols.llama_n_batch(ptr), symbols.llama_n_seq_max(ptr));
    const held: { adapters: readonly AdapterSetting[]; deviceSamplers: Map<number, LlamaSampler> } = { adapters: [], deviceSamplers: new Map() };
    super("LlamaContext", () => {
      symbols.llama_free(ptr);
      // After llama_free: the context used them until then.
      for (const sampler of held.deviceSamplers.values()) if (!sampler.disposed) sampler.dispose();
      if (!batch.disposed) batch.dispose();
      for (const { adapter } of held.adapters) adapter.lifetime.release();
      threadpoolLifetime?.release();
      modelLifetime.release();
    });
    this.model = model;
    this.ptr = ptr;
    this.#memory = symbols.llama_get_memory(ptr);
    this.#vocabSize = symbols.llama_vocab_n_tokens(model.vocab);
    this.#embeddingSize = symbols.llama_model_n_embd_out(model.ptr);
    this.#pooledSize = pooledSize;
    this.#batch = batch;
    this.#held = held;
  }

  static create(model: LlamaModel, options: ContextOptions = {}): LlamaContext {
    if (model.disposed) throw new LlamaError("ERR_LLAMA_CONTEXT", "cannot create a context: the model was disposed");
    if (model.vocabOnly) throw new LlamaError("ERR_LLAMA_CONTEXT", `${model.path} was loaded with vocabOnly: it has no weights to run`);
    const { symbols } = model.llama.lib;
    const defaults = symbols.llama_context_default_params();
    const flash = options.flashAttention;
    const { threadpool } = options;
    // ggml's workers spin while they wait: more threads than cores makes decoding many times slower.
    const cores = availableParallelism();
    const threads = options.threads ?? threadpool?.threads ?? Math.min(defaults.n_threads, cores);
    const threadsBatch = options.threadsBatch ?? options.threads ?? threadpool?.threads ?? Math.min(defaults.n_threads_batch, cores);
    if (threadpool !== undefined) checkThreadpool(threadpool, model, Math.max(threads, threadsBatch));
    const embeddings = options.embeddings ?? false;
    const sequences = options.sequences ?? defaults.n_seq_max;
    const params = {
      ...defaults,
      n_ctx: options.contextSize ?? defaults.n_ctx,
      n_batch: options.batchSize ?? defaults.n_batch,
      n_ubatch: options.ubatchSize ?? defaults.n_ubatch,
      n_seq_max: sequences,
      n_threads: threads,
      n_threads_batch: threadsBatch,
      flash_attn_type: flash === undefined ? defaults.flash_attn_type : flash === "auto" ? FlashAttention.auto : flash ? FlashAttention.enabled : FlashAttention.disabled,
      embeddings,
      kv_unified: options.unifiedCache ?? (embeddings && sequences > 1 && options.pooling !== "none"),
      pooling_type: options.pooling === undefined ? defaults.pooling_type : PoolingType[options.pooling],
      type_k: options.cacheType === undefined ? defaults.type_k : CacheType[options.cacheType],
      type_v: options.cacheType === undefined ? defaults.type_v : CacheType[options.cacheType],
    };
    const ptr = symbols.llama_init_from_model(model.ptr, params);
    if (ptr === 0) throw new LlamaError("ERR_LLAMA_CONTEXT", `llama.cpp could not create a context for ${model.path} (out of memory? Llama.load({ log: "stderr" }) shows why)`);
    const pooled = embeddings ? pooledSize(model, ptr) : 0;
    if (pooled > 0 && !params.kv_unified && symbols.llama_n_seq_max(ptr) > 1) {
      symbols.llama_free(ptr);
      throw new LlamaError("ERR_LLAMA_CONTEXT", "pooled embeddings of several sequences need unifiedCache: a cache per sequence makes llama.cpp split a batch into equal-length pieces and pool each piece");
    }
    // The same pool for single-token and batch decoding (a NULL batch pool means the first), as llama-bench does.
    if (threadpool !== undefined) symbols.llama_attach_threadpool(ptr, threadpool.ptr, 0);
    return new LlamaContext(model, ptr, threadpool, pooled);
  }

  get #symbols() {
    return this.model.llama.lib.symbols;
  }

  /** The actual sizes llama.cpp chose (they may differ from what was asked). */
  get contextSize(): number {
    this.assertLive();
    return this.#symbols.llama_n_ctx(this.ptr);
  }
  get batchSize(): number {
    this.assertLive();
    return this.#symbols.llama_n_batch(this.ptr);
  }
  get ubatchSize(): number {
    this.assertLive();
    return this.#symbols.llama_n_ubatch(this.ptr);
  }
  get sequences(): number {
    this.assertLive();
    return this.#symbols.llama_n_seq_max(this.ptr);
  }
  get threads(): number {
    this.assertLive();
    return this.#symbols.llama_n_threads(this.ptr);
  }

  // ----- LoRA -----------------------------------------------------------------------------------

  /** The adapter set in effect (zero-scale entries are left out, as llama.cpp leaves them out). */
  get adapters(): readonly AdapterSetting[] {
    this.assertLive();
    return this.#held.adapters;
  }

  /**
   * Replaces the whole adapter set (`llama_set_adapters_lora`); [] returns to the base model.
   * A different set empties the KV cache of every sequence; the same set again is a no-op.
   * Returns whether the set changed.
   */
  setAdapters(settings: readonly AdapterSetting[]): boolean {
    this.assertLive();
    const active = settings.map(({ adapter, scale = 1 }) => ({ adapter, scale: Math.fround(scale) })).filter(({ scale }) => scale !== 0);
    for (const { adapter } of active) {
      if (adapter.disposed) throw new LlamaError("ERR_LLAMA_ADAPTER", `the LoRA adapter ${adapter.path} was disposed`);
      if (adapter.model !== this.model) throw new LlamaError("ERR_LLAMA_ADAPTER", `the LoRA adapter ${adapter.path} was loaded for ${adapter.model.path}, not for this context's model`);
    }
    if (new Set(active.map(({ adapter }) => adapter)).size !== active.length) throw new LlamaError("ERR_LLAMA_ADAPTER", "an adapter appears twice in the set");
    const key = active.map(({ adapter, scale }) => `${adapter.id}:${scale}`).sort().join(",");
    if (key === this.#adapterSet) return false;
    if (this.#generating > 0) throw new LlamaError("ERR_LLAMA_ADAPTER", "the adapter set cannot change while a generation runs on this context");

    const adapters = new BigUint64Array(active.map(({ adapter }) => BigInt(adapter.ptr)));
    const scales = Float32Array.from(active, ({ scale }) => scale);
    this.#symbols.llama_set_adapters_lora(this.ptr, adapters, active.length, scales);
    // Everything in the KV cache was computed under the old set (ggml-org/llama.cpp#26207).
    this.#symbols.llama_memory_clear(this.#memory, false);
    this.#cached.clear();
    for (const { adapter } of active) adapter.lifetime.retain();
    for (const { adapter } of this.#held.adapters) adapter.lifetime.release();
    this.#held.adapters = Object.freeze(active);
    this.#adapterSet = key;
    return true;
  }

  // ----- decoding -------------------------------------------------------------------------------

  /** Runs `llama_decode` on a batch the caller filled. */
  decode(batch: Batch): void {
    this.assertLive();
    this.#checkPooled(batch.count);
    const sequences = batch.sequences();
    for (const sequence of sequences) this.#cached.delete(sequence);
    this.#detachSamplers(sequences);
    this.#decode(batch);
  }

  // llama.cpp pools each sequence per physical step (ubatch): a decode larger than one would
  // pool only its last part, silently.
  #checkPooled(tokens: number): void {
    const ubatch = this.#symbols.llama_n_ubatch(this.ptr);
    if (this.#pooledSize > 0 && tokens > ubatch) {
      throw new LlamaError("ERR_LLAMA_ARGUMENT", `pooled embeddings need a decode to fit one ubatch: ${tokens} tokens > ubatchSize ${ubatch}`);
    }
  }

  /** @param onDevice The batch's outputs are sampled on the device (their logits stay there). */
  #decode(batch: Batch, onDevice = false): void {
    this.#settleStep();
    this.#logitsOnDevice = onDevice;
    const result = this.#symbols.llama_decode(this.ptr, { ...batch.struct, n_tokens: batch.count });
    if (result !== 0) throw new LlamaError("ERR_LLAMA_DECODE", `llama_decode failed (${result}): ${decodeFailures[result] ?? "fatal error"}`);
  }

  // ----- sampling on the device -----------------------------------------------------------------
  // llama.cpp's backend sampling (llama_set_sampler, marked experimental in 0.5.0) adds a sequence's
  // sampler chain to the decode graph: the argmax runs where the logits are computed, only the token
  // comes back, and llama_sampler_sample returns it. For greedy generation that takes a CPU pass over
  // n_vocab logits and their copy from the device off the path of every token. A chain can be
  // attached once in its life, and attaching or detaching makes the next decode plan its graph again,
  // so a sequence keeps its chain between generations and loses it only when something else decodes
  // it (those decodes want logits).

  /** The greedy chain sampling `sequence` on the device, attached on first use; undefined where llama.cpp refuses one. */
  #deviceSampler(sequence: number): LlamaSampler | undefined {
    const held = this.#held.deviceSamplers;
    const attached = held.get(sequence);
    if (attached !== undefined || !this.#deviceSampling) return attached;
    // Another generation's step is sampled first: attaching changes what the next decode computes.
    this.#settleStep();
    const sampler = LlamaSampler.create(this.model, { temperature: 0 });
    if (!this.#symbols.llama_set_sampler(this.ptr, sequence, sampler.ptr)) {
      sampler.dispose();
      this.#deviceSampling = false;
      return undefined;
    }
    held.set(sequence, sampler);
    return sampler;
  }

  /**
   * Samples the step of a generation decoded but not sampled yet, if any: before another decode
   * (llama.cpp keeps the outputs of the last decode only) and before a sampler is attached or detached.
   */
  #settleStep(): void {
    const step = this.#unsampled;
    if (step === undefined) return;
    this.#unsampled = undefined;
    step.token = this.#symbols.llama_sampler_sample(step.sampler, this.ptr, -1);
  }

  /** Detaches the device samplers of `sequences`, so that their next decodes give logits again. */
  #detachSamplers(sequences: Iterable<number>): void {
    const held = this.#held.deviceSamplers;
    if (held.size === 0) return;
    this.#settleStep();
    for (const sequence of sequences) {
      const sampler = held.get(sequence);
      if (sampler === undefined) continue;
      this.#symbols.llama_set_sampler(this.ptr, sequence, 0);
      held.delete(sequence);
      sampler.dispose();
    }
  }

  /** Waits for the backend to finish the last decode (decodes on a GPU return before it has). */
  synchronize(): void {
    this.assertLive();
    this.#symbols.llama_synchronize(this.ptr);
  }

  /** Decodes `tokens` into one sequence, in chunks of the batch size; logits of the last (or all) kept. */
  evaluate(tokens: ArrayLike<number>, options: EvaluateOptions = {}): void {
    this.assertLive();
    const sequence = options.sequence ?? 0;
    this.#cached.delete(sequence);
    const start = options.position ?? this.#symbols.llama_memory_seq_pos_max(this.#memory, sequence) + 1;
    if (options.allLogits && tokens.length > this.#batch.capacity) {
      throw new LlamaError("ERR_LLAMA_ARGUMENT", `allLogits keeps one decode's outputs: at most ${this.#batch.capacity} tokens`);
    }
    this.#checkPooled(tokens.length);
    this.#detachSamplers([sequence]);
    this.#evaluateChunks(tokens, start, sequence, options.allLogits ?? false);
  }

  #evaluateChunks(tokens: ArrayLike<number>, start: number, sequence: number, allLogits: boolean, onDevice = false): void {
    const batch = this.#batch;
    for (let from = 0; from < tokens.length; from += batch.capacity) {
      batch.clear();
      const to = Math.min(tokens.length, from + batch.capacity);
      for (let i = from; i < to; i++) batch.add(tokens[i]!, start + i, sequence, allLogits || i === tokens.length - 1);
      this.#decode(batch, onDevice);
    }
  }

  /**
   * The logits of output `index` of the last decode (-1: the last), `n_vocab` floats. A copy by
   * default; `{ view: true }` gives a zero-copy view, valid until the next decode.
   */
  logits(index = -1, options: { view?: boolean } = {}): Float32Array {
    this.assertLive();
    if (this.#logitsOnDevice) {
      throw new LlamaError("ERR_LLAMA_OUTPUT", "the last decode sampled its token on the device (a greedy generate()), so llama.cpp kept no logits: evaluate the tokens to read their logits, or generate with sampleOnDevice: false");
    }
    return this.#floats(this.#symbols.llama_get_logits_ith(this.ptr, index), this.#vocabSize, `no logits for output ${index}`, options.view);
  }

  /** The embedding of output `index` of the last decode (needs `embeddings: true`). */
  embeddings(index = -1, options: { view?: boolean } = {}): Float32Array {
    this.assertLive();
    return this.#floats(this.#symbols.llama_get_embeddings_ith(this.ptr, index), this.#embeddingSize, `no embeddings for output ${index} (was the context created with embeddings: true?)`, options.view);
  }

  /**
   * The pooled embedding of a sequence over the tokens the last decode gave it (needs
   * `embeddings: true` and a pooling type other than "none"; "rank" gives the model's classifier scores).
   */
  sequenceEmbeddings(sequence = 0, options: { view?: boolean } = {}): Float32Array {
    this.assertLive();
    const pointer = this.#pooledSize === 0 ? 0 : this.#symbols.llama_get_embeddings_seq(this.ptr, sequence);
    return this.#floats(pointer, this.#pooledSize, `no pooled embeddings for sequence ${sequence} (was the context created with embeddings: true and a pooling other than "none"?)`, options.view);
  }

  #floats(ptr: Pointer, count: number, missing: string, view = false): Float32Array {
    if (ptr === 0) throw new LlamaError("ERR_LLAMA_OUTPUT", missing);
    const floats = new Float32Array(nativeView(ptr, count * 4));
    return view ? floats : floats.slice();
  }

  // ----- KV cache -------------------------------------------------------------------------------

  /** Empties every sequence. */
  clearMemory(): void {
    this.assertLive();
    this.#cached.clear();
    this.#symbols.llama_memory_clear(this.#memory, false);
  }

  /** Removes a sequence's tokens at positions [from, to) (-1: any sequence / to the end). */
  removeTokens(sequence: number, from = 0, to = -1): boolean {
    this.assertLive();
    this.#forget(sequence);
    return this.#symbols.llama_memory_seq_rm(this.#memory, sequence, from, to);
  }

  /** Makes `destination` share `source`'s tokens at positions [from, to). */
  copySequence(source: number, destination: number, from = 0, to = -1): void {
    this.assertLive();
    this.#cached.delete(destination);
    this.#symbols.llama_memory_seq_cp(this.#memory, source, destination, from, to);
  }

  /** Removes every sequence but `sequence`. */
  keepSequence(sequence: number): void {
    this.assertLive();
    for (const other of this.#cached.keys()) if (other !== sequence) this.#cached.delete(other);
    this.#symbols.llama_memory_seq_keep(this.#memory, sequence);
  }

  /** Adds `delta` to the positions [from, to) of a sequence (context shifting). */
  shiftPositions(sequence: number, from: number, to: number, delta: number): void {
    this.assertLive();
    this.#forget(sequence);
    this.#symbols.llama_memory_seq_add(this.#memory, sequence, from, to, delta);
  }

  /** The lowest and highest position a sequence holds; -1 for both when it is empty. */
  sequencePositions(sequence = 0): { min: number; max: number } {
    this.assertLive();
    return { min: this.#symbols.llama_memory_seq_pos_min(this.#memory, sequence), max: this.#symbols.llama_memory_seq_pos_max(this.#memory, sequence) };
  }

  #forget(sequence: number): void {
    if (sequence < 0) this.#cached.clear();
    else this.#cached.delete(sequence);
  }

  // ----- state ----------------------------------------------------------------------------------

  /** Saves the whole context (logits, embeddings, KV cache), or one sequence's KV cache. */
  saveState(sequence?: number): ContextState {
    this.assertLive();
    const s = this.#symbols;
    const size = sequence === undefined ? s.llama_state_get_size(this.ptr) : s.llama_state_seq_get_size(this.ptr, sequence);
    const data = new Uint8Array(size);
    const written = sequence === undefined ? s.llama_state_get_data(this.ptr, data, size) : s.llama_state_seq_get_data(this.ptr, data, size, sequence);
    return { data: data.subarray(0, written), adapterSet: this.#adapterSet, sequence };
  }

  /** Restores a saved state (a sequence's into `into`, default its own). Refused under another adapter set. */
  restoreState(state: ContextState, into = state.sequence): void {
    this.assertLive();
    if (state.adapterSet !== this.#adapterSet) {
      throw new LlamaError("ERR_LLAMA_STATE", "the state was computed under another LoRA adapter set; set those adapters again before restoring it");
    }
    const s = this.#symbols;
    const read = into === undefined ? s.llama_state_set_data(this.ptr, state.data, state.data.length) : s.llama_state_seq_set_data(this.ptr, state.data, state.data.length, into);
    if (into === undefined) this.#cached.clear();
    else this.#cached.delete(into);
    if (read === 0) throw new LlamaError("ERR_LLAMA_STATE", "llama.cpp could not restore the state (saved from another model or context size?)");
  }

  // ----- generation -----------------------------------------------------------------------------

  /**
   * Generates from `prompt` as an async iterator of tokens and the text each made visible.
   * The longest prefix of the prompt that the sequence already holds (from an earlier
   * generate under the same adapter set) is reused. Between tokens the iterator yields to the
   * event loop, so timers, I/O and an abort signal get their turn on every runtime.
   */
  async *generate(prompt: string | ArrayLike<number>, options: GenerateOptions = {}): AsyncGenerator<GeneratedToken, void, undefined> {
    this.assertLive();
    if (options.adapters !== undefined) this.setAdapters(options.adapters);
    const { signal } = options;
    signal?.throwIfAborted();
    const model = this.model;
    const sequence = options.sequence ?? 0;
    const tokens = typeof prompt === "string" ? model.tokenize(prompt, options.tokenize) : Int32Array.from(prompt);
    if (tokens.length === 0) throw new LlamaError("ERR_LLAMA_ARGUMENT", "the prompt has no tokens");
    const maxTokens = options.maxTokens ?? 256;
    const stopAtEog = options.stopAtEndOfGeneration ?? true;
    const stops = (options.stop ?? []).filter((stop) => stop.length > 0);
    let onDevice = options.sampler === undefined && (options.sampleOnDevice ?? model.outputOnGpu) && samplesGreedily(options) ? this.#deviceSampler(sequence) : undefined;
    // A device sampler left attached would keep the logits a sampler on the CPU reads.
    if (onDevice === undefined) this.#detachSamplers([sequence]);
    let sampler = onDevice ?? options.sampler ?? LlamaSampler.create(model, options);
    const s = this.#symbols;
    let step: UnsampledStep | undefined;
    this.#generating++;
    try {
      // At least the last prompt token is decoded again: its logits are needed.
      const cached = this.#cached.get(sequence) ?? [];
      let reuse = 0;
      while (reuse < cached.length && reuse < tokens.length - 1 && cached[reuse] === tokens[reuse]) reuse++;
      this.#cached.delete(sequence);
      s.llama_memory_seq_rm(this.#memory, sequence, reuse, -1);
      const history = Array.from(tokens.subarray(0, reuse));
      const rest = tokens.subarray(reuse);
      // Decode the prompt, then sample at once: another sequence's decode must not come in between.
      this.#evaluateChunks(rest, reuse, sequence, false, onDevice !== undefined);
      history.push(...rest);
      this.#cached.set(sequence, history);
      if (onDevice !== undefined && s.llama_get_sampled_token_ith(this.ptr, -1) === LLAMA_TOKEN_NULL) {
        // llama.cpp attached the chain but its device cannot run the sampler, and kept no logits:
        // this context samples on the CPU from now on, after decoding the last prompt token again.
        this.#detachSamplers([sequence]);
        this.#deviceSampling = false;
        onDevice = undefined;
        sampler = LlamaSampler.create(model, options);
        const last = history.length - 1;
        s.llama_memory_seq_rm(this.#memory, sequence, last, -1);
        this.#evaluateChunks([history[last]!], last, sequence, false);
      }
      let token = s.llama_sampler_sample(sampler.ptr, this.ptr, -1);

      const text = new TextDecoder();
      let pending = "";
      for (let produced = 0; ; ) {
        if (stopAtEog && model.isEndOfGeneration(token)) break;
        const last = ++produced >= maxTokens;
        // The token is decoded before its text is made and before it is handed out: a GPU
        // computes the next step while the text, the consumer and the event loop have their turn
        // (llama_decode returns once the work is queued), and the token is sampled when the
        // generator resumes. A token whose text holds a stop is decoded for nothing, once.
        if (!last) {
          this.#cached.delete(sequence);
          this.#batch.clear();
          this.#batch.add(token, history.length, sequence, true);
          this.#decode(this.#batch, onDevice !== undefined);
          history.push(token);
          this.#cached.set(sequence, history);
          step = { sampler: sampler.ptr, token: LLAMA_TOKEN_NULL };
          this.#unsampled = step;
        }
        pending += text.decode(model.tokenPiece(token), { stream: true });
        const stopAt = stops.reduce((first, stop) => {
          const at = pending.indexOf(stop);
          return at >= 0 && (first < 0 || at < first) ? at : first;
        }, -1);
        if (stopAt >= 0) {
          yield { token, text: pending.slice(0, stopAt) };
          pending = "";
          break;
        }
        const held = heldBack(pending, stops);
        const chunk = { token, text: pending.slice(0, pending.length - held) };
        pending = pending.slice(pending.length - held);
        yield chunk;
        if (last) break;
        await nextTurn();
        if (signal?.aborted) throw signal.reason;
        this.assertLive();
        token = this.#sampled(step!);
      }
      pending += text.decode();
      if (pending.length > 0) yield { token: -1, text: pending };
    } finally {
      this.#generating--;
      if (step !== undefined && this.#unsampled === step) this.#unsampled = undefined;
      if (options.sampler === undefined && onDevice === undefined) sampler.dispose();
    }
  }

  /** The token of a step of generate(): sampled now, or earlier by a decode that came in between. */
  #sampled(step: UnsampledStep): number {
    if (this.#unsampled !== step) return step.token;
    this.#unsampled = undefined;
    return this.#symbols.llama_sampler_sample(step.sampler, this.ptr, -1);
  }

  /** Runs {@link generate} to the end and returns the text and the tokens. */
  async generateText(prompt: string | ArrayLike<number>, options: GenerateOptions = {}): Promise<{ text: string; tokens: number[] }> {
    let text = "";
    const tokens: number[] = [];
    for await (const chunk of this.generate(prompt, options)) {
      text += chunk.text;
      if (chunk.token >= 0) tokens.push(chunk.token);
    }
    return { text, tokens };
  }
}

/** Floats per pooled embedding of an embeddings context: n_embd_out, n_cls_out for "rank", 0 without pooling. */
function pooledSize(model: LlamaModel, context: Pointer): number {
  const { symbols } = model.llama.lib;
  switch (symbols.llama_pooling_type(context)) {
    case PoolingType.none:
      return 0;
    case PoolingType.rank:
      return symbols.llama_model_n_cls_out(model.ptr);
    default:
      return symbols.llama_model_n_embd_out(model.ptr);
  }
}

// ggml computes with a context's thread count on an attached pool's workers: more threads than
// the pool has would index past its workers (OpenMP builds) or be cut down with a warning.
function checkThreadpool(threadpool: LlamaThreadpool, model: LlamaModel, threads: number): void {
  if (threadpool.disposed) throw new LlamaError("ERR_LLAMA_CONTEXT", "the threadpool was disposed");
  if (threadpool.llama !== model.llama) throw new LlamaError("ERR_LLAMA_CONTEXT", `the threadpool belongs to ${threadpool.llama.path}, not to the libllama of ${model.path}`);
  if (threads > threadpool.threads) {
    throw new LlamaError("ERR_LLAMA_CONTEXT", `the context asks for ${threads} threads but the threadpool has ${threadpool.threads}`);
  }
}

/** How many characters at the end of `text` could begin a stop text, and so must wait. */
function heldBack(text: string, stops: readonly string[]): number {
  let held = 0;
  for (const stop of stops) {
    for (let n = Math.min(stop.length - 1, text.length); n > held; n--) {
      if (text.endsWith(stop.slice(0, n))) {
        held = n;
        break;
      }
    }
  }
  return held;
}
