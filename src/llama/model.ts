// LlamaModel: a GGUF model loaded by llama.cpp, its metadata and its vocabulary.
import { existsSync } from "node:fs";
import { HostMemory, NativeResource, capabilities, createCallback, writeStructAt, type Pointer } from "../ffi/index.ts";
import { LoadMode, SplitMode, llamaChatMessage, llamaProgressCallback } from "./bindings.ts";
import { LlamaError } from "./errors.ts";
import { Lifetime } from "./lifetime.ts";
import { Llama } from "./llama.ts";
import { type RpcLease, leaseRpcDevices } from "./rpc.ts";
import { readMetadata, readSizedString } from "./strings.ts";

export interface ModelLoadOptions {
  /** The libllama to load with (default: {@link Llama.shared}). */
  readonly llama?: Llama;
  /** Layers to offload to the GPU: a count, or "all" (llama.cpp's default, -1). */
  readonly gpuLayers?: number | "all";
  readonly splitMode?: keyof typeof SplitMode;
  /** The GPU that holds the whole model when `splitMode` is "none". */
  readonly mainGpu?: number;
  /** Proportions of the model per GPU (at most `llama.maxDevices` entries); with `rpcServers`, the servers' devices come first. */
  readonly tensorSplit?: readonly number[];
  /**
   * ggml RPC servers ("host:port", each a running ggml-rpc-server) whose devices take layers
   * before the local GPUs, as llama.cpp's `--rpc`. Needs a libllama built with RPC
   * (`scripts/build-llama.sh --rpc`); each server is checked before ggml connects to it.
   */
  readonly rpcServers?: readonly string[];
  /** Milliseconds each RPC server has to answer the handshake (default 10 000). */
  readonly rpcTimeoutMs?: number;
  /** Memory-map the file (default: llama.cpp decides). */
  readonly useMmap?: boolean;
  /** Load only the vocabulary: enough to tokenize, not to run the model. */
  readonly vocabOnly?: boolean;
  /** Called with 0…1 as llama.cpp loads tensors. On Deno and Node it runs while `load` is awaited. */
  readonly onProgress?: (progress: number) => void;
  /** Aborts loading at the next progress report; `load` then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

export interface TokenizeOptions {
  /** Add BOS/EOS as the model's vocabulary asks (default true). */
  readonly addSpecial?: boolean;
  /** Parse special tokens written as text, e.g. "</s>" (default false: they stay plain text). */
  readonly parseSpecial?: boolean;
}

/** One message of a conversation, as `llama_chat_message`. */
export interface ChatMessage {
  readonly role: string;
  readonly content: string;
}

export interface ChatTemplateOptions {
  /** End with the tokens that open an assistant reply, as a prompt for generation (default true). */
  readonly addAssistant?: boolean;
  /** A template to use instead of the model's: a built-in name ("chatml", "llama3", …) or a Jinja source llama.cpp recognizes. */
  readonly template?: string;
}

export interface DetokenizeOptions {
  /** Drop the BOS/EOS the vocabulary adds (default false). */
  readonly removeSpecial?: boolean;
  /** Render special tokens as their text (default false: they render as nothing). */
  readonly unparseSpecial?: boolean;
}

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

function describeTemplate(template: string): string {
  return template.length <= 40 ? JSON.stringify(template) : `${JSON.stringify(template.slice(0, 40))}… (${template.length} characters)`;
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("The operation was aborted", "AbortError");
}

// tokenPiece's buffer, reused (generation asks for a piece per token): V8 hands C a typed array
// it has seen before far faster than a new one. Grown when a piece is longer.
let pieceScratch = new Uint8Array(64);

/**
 * A model loaded from a GGUF file. Contexts and LoRA adapters keep it alive natively: disposing
 * the model while they live frees it only once the last of them is disposed.
 */
export class LlamaModel extends NativeResource {
  /** @internal The `llama_model *`. */
  readonly ptr: Pointer;
  /** @internal The `llama_vocab *`, valid as long as the model. */
  readonly vocab: Pointer;
  /** @internal Contexts and adapters retain it. */
  readonly lifetime: Lifetime;
  readonly llama: Llama;
  readonly path: string;
  readonly vocabOnly: boolean;
  #metadata: ReadonlyMap<string, string> | undefined;

  /**
   * @internal llama.cpp computes this model's output layer, the logits, on a GPU (it offloads
   * layers from the last, the output first): where generate() samples greedily on the device by default.
   */
  readonly outputOnGpu: boolean;

  private constructor(llama: Llama, ptr: Pointer, path: string, vocabOnly: boolean, rpc: RpcLease | undefined, outputOnGpu: boolean) {
    const { lib } = llama;
    llama.lifetime.retain();
    const llamaLifetime = llama.lifetime;
    const lifetime = new Lifetime(`model ${path}`, () => {
      lib.symbols.llama_model_free(ptr);
      rpc?.release();
      llamaLifetime.release();
    });
    super("LlamaModel", () => lifetime.release());
    this.llama = llama;
    this.ptr = ptr;
    this.vocab = lib.symbols.llama_model_get_vocab(ptr);
    this.lifetime = lifetime;
    this.path = path;
    this.vocabOnly = vocabOnly;
    this.outputOnGpu = outputOnGpu;
  }

  /**
   * Loads a GGUF model. On Deno and Node the load runs off the JS thread and progress arrives
   * while it is awaited; Bun has no off-thread calls, so there the load blocks the JS thread
   * (progress callbacks still run, synchronously, and may abort through the signal).
   */
  static async load(path: string, options: ModelLoadOptions = {}): Promise<LlamaModel> {
    const llama = options.llama ?? Llama.shared();
    const { lib } = llama;
    if (!existsSync(path)) throw new LlamaError("ERR_LLAMA_MODEL_LOAD", `no model file at ${path}`);
    const { signal, onProgress } = options;
    signal?.throwIfAborted();

    let tensorSplit: HostMemory | undefined;
    if (options.tensorSplit !== undefined) {
      const split = new Float32Array(lib.symbols.llama_max_devices());
      if (options.tensorSplit.length > split.length) {
        throw new LlamaError("ERR_LLAMA_ARGUMENT", `tensorSplit has ${options.tensorSplit.length} entries; this build takes at most ${split.length}`);
      }
      split.set(options.tensorSplit);
      tensorSplit = HostMemory.from(split);
    }
    // The callback returns false to make llama.cpp stop loading.
    const progress = signal || onProgress
      ? createCallback(llamaProgressCallback, (value) => {
        onProgress?.(value);
        return !signal?.aborted;
      }, { threadSafe: capabilities.nonblockingCalls })
      : undefined;
    const defaults = lib.symbols.llama_model_default_params();
    const gpuLayers = options.gpuLayers === "all" ? -1 : options.gpuLayers;
    const params = {
      ...defaults,
      n_gpu_layers: gpuLayers ?? defaults.n_gpu_layers,
      split_mode: options.splitMode === undefined ? defaults.split_mode : SplitMode[options.splitMode],
      main_gpu: options.mainGpu ?? defaults.main_gpu,
      tensor_split: tensorSplit?.ptr ?? 0,
      load_mode: options.useMmap === undefined ? defaults.load_mode : options.useMmap ? LoadMode.mmap : LoadMode.none,
      vocab_only: options.vocabOnly ?? false,
      progress_callback: progress?.ptr ?? 0,
    };
    let ptr: Pointer = 0;
    let rpc: RpcLease | undefined;
    try {
      if (options.rpcServers !== undefined) rpc = await leaseRpcDevices(llama, options.rpcServers, options.rpcTimeoutMs);
      const withDevices = rpc ? { ...params, devices: rpc.devices.ptr } : params;
      ptr = capabilities.nonblockingCalls
        ? await lib.async.llama_model_load_from_file(path, withDevices)
        : lib.symbols.llama_model_load_from_file(path, withDevices);
    } finally {
      progress?.dispose();
      tensorSplit?.dispose();
      rpc?.devices.dispose();
      if (ptr === 0) rpc?.release();
    }
    if (ptr === 0) {
      if (signal?.aborted) throw abortReason(signal);
      throw new LlamaError("ERR_LLAMA_MODEL_LOAD", `llama.cpp could not load the model ${path} (Llama.load({ log: "stderr" }) shows why)`);
    }
    // Layers go to the GPUs from the output down (n_gpu_layers < 0: all of them).
    const onGpu = params.n_gpu_layers !== 0 && (rpc !== undefined || llama.devices().some((d) => d.type === "gpu" || d.type === "igpu"));
    return new LlamaModel(llama, ptr, path, params.vocab_only, rpc, onGpu && !params.vocab_only);
  }

  /** Every GGUF metadata scalar, rendered as a string by llama.cpp (arrays are left out). */
  get metadata(): ReadonlyMap<string, string> {
    this.assertLive();
    const { symbols } = this.llama.lib;
    this.#metadata ??= readMetadata(
      symbols.llama_model_meta_count(this.ptr),
      (i, b, n) => symbols.llama_model_meta_key_by_index(this.ptr, i, b, n),
      (i, b, n) => symbols.llama_model_meta_val_str_by_index(this.ptr, i, b, n),
    );
    return this.#metadata;
  }

  /** `llama_model_desc`, e.g. "llama ?B all F32". */
  get description(): string {
    this.assertLive();
    return readSizedString((b, n) => this.llama.lib.symbols.llama_model_desc(this.ptr, b, n)) ?? "";
  }

  /** Sizes and counts of the architecture. */
  get shape(): { contextTrain: number; embedding: number; layers: number; heads: number; headsKv: number; vocab: number; parameters: number; bytes: number } {
    this.assertLive();
    // llama.cpp leaves the per-layer sizes unset on a vocab-only load, and llama_model_n_head aborts the process then.
    if (this.vocabOnly) throw new LlamaError("ERR_LLAMA_VOCAB_ONLY", `the model ${this.path} was loaded with vocabOnly: it has a vocabulary (vocabSize) but no shape`);
    const s = this.llama.lib.symbols;
    return {
      contextTrain: s.llama_model_n_ctx_train(this.ptr),
      embedding: s.llama_model_n_embd(this.ptr),
      layers: s.llama_model_n_layer(this.ptr),
      heads: s.llama_model_n_head(this.ptr),
      headsKv: s.llama_model_n_head_kv(this.ptr),
      vocab: s.llama_vocab_n_tokens(this.vocab),
      parameters: Number(s.llama_model_n_params(this.ptr)),
      bytes: Number(s.llama_model_size(this.ptr)),
    };
  }

  /** Tokens in the vocabulary; also on a model loaded with `vocabOnly`. */
  get vocabSize(): number {
    this.assertLive();
    return this.llama.lib.symbols.llama_vocab_n_tokens(this.vocab);
  }

  /** The model's default chat template (Jinja source), or `undefined` when it has none. */
  chatTemplate(name?: string): string | undefined {
    this.assertLive();
    return this.llama.lib.symbols.llama_model_chat_template(this.ptr, name ?? null) ?? undefined;
  }

  /**
   * Renders a conversation with a chat template (`llama_chat_apply_template`): the model's own
   * by default. llama.cpp does not run Jinja here: it recognizes the template among the formats it
   * knows (chatml, llama2/3, mistral, gemma, phi, …) and renders that format.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    this.assertLive();
    const template = options.template ?? this.chatTemplate();
    if (template === undefined) {
      throw new LlamaError("ERR_LLAMA_CHAT_TEMPLATE", `the model ${this.path} has no chat template (tokenizer.chat_template); pass { template } (e.g. "chatml")`);
    }
    // llama_chat_message points at C strings: the structs and every string live in one block.
    const strings = messages.flatMap((m, i) => [m.role, m.content].map((text, j) => {
      if (typeof text !== "string") throw new LlamaError("ERR_LLAMA_ARGUMENT", `message ${i}: ${j === 0 ? "role" : "content"} must be a string`);
      if (text.includes("\0")) throw new LlamaError("ERR_LLAMA_ARGUMENT", `message ${i}: ${j === 0 ? "role" : "content"} contains a NUL character, which ends a C string`);
      return utf8Encoder.encode(text);
    }));
    const arrayBytes = messages.length * llamaChatMessage.size;
    using block = HostMemory.alloc(arrayBytes + strings.reduce((sum, s) => sum + s.length + 1, 0));
    const bytes = block.bytes();
    const addresses: Pointer[] = [];
    let offset = arrayBytes;
    for (const s of strings) {
      bytes.set(s, offset); // calloc'd: the NUL after it is already there
      addresses.push(block.ptr + offset);
      offset += s.length + 1;
    }
    for (let i = 0; i < messages.length; i++) {
      writeStructAt(llamaChatMessage, block.ptr + i * llamaChatMessage.size, { role: addresses[2 * i]!, content: addresses[2 * i + 1]! });
    }
    const apply = this.llama.lib.symbols.llama_chat_apply_template;
    const addAssistant = options.addAssistant ?? true;
    // The recommended size is twice the characters of all messages; readSizedString grows it once if short.
    const text = readSizedString((b, n) => apply(template, messages.length === 0 ? 0 : block.ptr, messages.length, addAssistant, b, n), Math.max(256, 2 * offset));
    if (text === undefined) throw new LlamaError("ERR_LLAMA_CHAT_TEMPLATE", `llama.cpp does not support the chat template ${describeTemplate(template)}`);
    return text;
  }

  /** Special tokens; -1 where the vocabulary has none. */
  get specialTokens(): { bos: number; eos: number; eot: number; nl: number } {
    this.assertLive();
    const s = this.llama.lib.symbols;
    return { bos: s.llama_vocab_bos(this.vocab), eos: s.llama_vocab_eos(this.vocab), eot: s.llama_vocab_eot(this.vocab), nl: s.llama_vocab_nl(this.vocab) };
  }

  /** Whether `token` ends generation (EOS, EOT, …). */
  isEndOfGeneration(token: number): boolean {
    this.assertLive();
    return this.llama.lib.symbols.llama_vocab_is_eog(this.vocab, token);
  }

  /** The token's text in the vocabulary (SentencePiece pieces keep their "▁"). */
  tokenText(token: number): string {
    this.assertLive();
    return this.llama.lib.symbols.llama_vocab_get_text(this.vocab, token) ?? "";
  }

  /** UTF-8 text → token ids. The text may contain any character, NUL included. */
  tokenize(text: string | Uint8Array, options: TokenizeOptions = {}): Int32Array {
    this.assertLive();
    const bytes = typeof text === "string" ? utf8Encoder.encode(text) : text;
    const tokenize = this.llama.lib.symbols.llama_tokenize;
    const addSpecial = options.addSpecial ?? true;
    const parseSpecial = options.parseSpecial ?? false;
    // A token covers at least one byte; BOS and EOS may come on top.
    let tokens = new Int32Array(bytes.length + 2);
    let count = tokenize(this.vocab, bytes, bytes.length, tokens, tokens.length, addSpecial, parseSpecial);
    if (count < 0) {
      if (count === -0x80000000) throw new LlamaError("ERR_LLAMA_TOKENIZE", "the text has more tokens than an int32 counts");
      tokens = new Int32Array(-count);
      count = tokenize(this.vocab, bytes, bytes.length, tokens, tokens.length, addSpecial, parseSpecial);
    }
    return tokens.slice(0, count);
  }

  /** Token ids → UTF-8 bytes, exactly as llama.cpp renders them. */
  detokenizeBytes(tokens: ArrayLike<number>, options: DetokenizeOptions = {}): Uint8Array {
    this.assertLive();
    const ids = tokens instanceof Int32Array ? tokens : Int32Array.from(tokens);
    const detokenize = this.llama.lib.symbols.llama_detokenize;
    const removeSpecial = options.removeSpecial ?? false;
    const unparseSpecial = options.unparseSpecial ?? false;
    let text = new Uint8Array(ids.length * 8 + 16);
    let length = detokenize(this.vocab, ids, ids.length, text, text.length, removeSpecial, unparseSpecial);
    if (length < 0) {
      text = new Uint8Array(-length);
      length = detokenize(this.vocab, ids, ids.length, text, text.length, removeSpecial, unparseSpecial);
    }
    return text.slice(0, length);
  }

  /** Token ids → text (invalid UTF-8 from partial byte tokens becomes U+FFFD). */
  detokenize(tokens: ArrayLike<number>, options: DetokenizeOptions = {}): string {
    return utf8Decoder.decode(this.detokenizeBytes(tokens, options));
  }

  /**
   * One token's bytes as generation streams them. A byte-fallback token may hold part of a UTF-8
   * character: decode a stream of pieces with `TextDecoder#decode(piece, { stream: true })`.
   */
  tokenPiece(token: number, special = false): Uint8Array {
    this.assertLive();
    const toPiece = this.llama.lib.symbols.llama_token_to_piece;
    let length = toPiece(this.vocab, token, pieceScratch, pieceScratch.length, 0, special);
    if (length < 0) {
      pieceScratch = new Uint8Array(-length);
      length = toPiece(this.vocab, token, pieceScratch, pieceScratch.length, 0, special);
    }
    return pieceScratch.slice(0, length);
  }
}
