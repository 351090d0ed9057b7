// LlamaSampler: a llama.cpp sampler chain. Sampling runs inside llama.cpp on its own copy of the
// logits, so no per-token logits cross into JS.
import { NativeResource, type Pointer } from "../ffi/index.ts";
import { LLAMA_DEFAULT_SEED } from "./bindings.ts";
import { LlamaError } from "./errors.ts";
import type { LlamaModel } from "./model.ts";

export interface SamplerOptions {
  /** 0 or below: greedy (argmax). Default 0.8. */
  readonly temperature?: number;
  /** Keep the k most likely tokens (0 disables). Default 40. */
  readonly topK?: number;
  /** Nucleus sampling (1 disables). Default 0.95. */
  readonly topP?: number;
  /** Drop tokens less likely than minP × the most likely one (0 disables). Default 0.05. */
  readonly minP?: number;
  /** Repetition penalty over the last `penaltyLastN` tokens (1 disables). Default 1. */
  readonly repeatPenalty?: number;
  readonly frequencyPenalty?: number;
  readonly presencePenalty?: number;
  /** Default 64. */
  readonly penaltyLastN?: number;
  /** RNG seed; a fixed seed makes generation reproducible. Default: random. */
  readonly seed?: number;
  /** A GBNF grammar that every generated text must match. */
  readonly grammar?: string;
  /** The grammar's start symbol (default "root"). */
  readonly grammarRoot?: string;
}

/** The options ask for no penalty at all (the defaults). */
function withoutPenalties(options: SamplerOptions): boolean {
  return (options.repeatPenalty ?? 1) === 1 && (options.frequencyPenalty ?? 0) === 0 && (options.presencePenalty ?? 0) === 0;
}

/**
 * The options make a chain of llama.cpp's greedy sampler alone (temperature ≤ 0, no grammar, no
 * penalties): the argmax of the logits, which llama.cpp can also take on the device that
 * computed them (LlamaContext.generate does).
 */
export function samplesGreedily(options: SamplerOptions): boolean {
  return (options.temperature ?? 0.8) <= 0 && options.grammar === undefined && withoutPenalties(options);
}

/** A sampler chain built from {@link SamplerOptions}, in llama.cpp's usual order. */
export class LlamaSampler extends NativeResource {
  /** @internal The `llama_sampler *` chain. */
  readonly ptr: Pointer;
  readonly model: LlamaModel;

  private constructor(model: LlamaModel, ptr: Pointer) {
    const { symbols } = model.llama.lib;
    model.lifetime.retain();
    const modelLifetime = model.lifetime;
    super("LlamaSampler", () => {
      symbols.llama_sampler_free(ptr);
      modelLifetime.release();
    });
    this.model = model;
    this.ptr = ptr;
  }

  static create(model: LlamaModel, options: SamplerOptions = {}): LlamaSampler {
    // llama.cpp reads an empty grammar as none at all: refused rather than leave the output unconstrained.
    if (options.grammar?.trim() === "") throw new LlamaError("ERR_LLAMA_SAMPLER", "the grammar is empty");
    const s = model.llama.lib.symbols;
    const chain = s.llama_sampler_chain_init(s.llama_sampler_chain_default_params());
    // The chain owns what is added to it, so a failure frees the chain alone.
    const add = (sampler: Pointer, what: string): void => {
      if (sampler === 0) {
        s.llama_sampler_free(chain);
        throw new LlamaError("ERR_LLAMA_SAMPLER", `llama.cpp could not create the ${what} sampler`);
      }
      s.llama_sampler_chain_add(chain, sampler);
    };
    if (options.grammar !== undefined) {
      const root = options.grammarRoot ?? "root";
      add(s.llama_sampler_init_grammar(model.vocab, options.grammar, root), `grammar (is the GBNF valid, without left recursion, with a rule named "${root}"?)`);
    }
    if (!withoutPenalties(options)) {
      const { repeatPenalty = 1, frequencyPenalty = 0, presencePenalty = 0 } = options;
      add(s.llama_sampler_init_penalties(s.llama_vocab_n_tokens(model.vocab), options.penaltyLastN ?? 64, repeatPenalty, frequencyPenalty, presencePenalty), "penalties");
    }
    const temperature = options.temperature ?? 0.8;
    if (temperature <= 0) {
      add(s.llama_sampler_init_greedy(), "greedy");
    } else {
      const topK = options.topK ?? 40;
      const topP = options.topP ?? 0.95;
      const minP = options.minP ?? 0.05;
      if (topK > 0) add(s.llama_sampler_init_top_k(topK), "top-k");
      if (topP < 1) add(s.llama_sampler_init_top_p(topP, 1), "top-p");
      if (minP > 0) add(s.llama_sampler_init_min_p(minP, 1), "min-p");
      add(s.llama_sampler_init_temp(temperature), "temperature");
      add(s.llama_sampler_init_dist(options.seed === undefined ? LLAMA_DEFAULT_SEED : options.seed >>> 0), "dist");
    }
    return new LlamaSampler(model, chain);
  }

  /** The seed the chain's RNG uses (the random one llama.cpp drew when none was given). */
  get seed(): number {
    this.assertLive();
    return this.model.llama.lib.symbols.llama_sampler_get_seed(this.ptr);
  }

  /** Forgets accepted tokens (penalties, grammar state) and restarts the RNG sequence. */
  reset(): void {
    this.assertLive();
    this.model.llama.lib.symbols.llama_sampler_reset(this.ptr);
  }

  /** Feeds a token the sampler did not pick itself (e.g. a prompt token, for penalties and grammar). */
  accept(token: number): void {
    this.assertLive();
    this.model.llama.lib.symbols.llama_sampler_accept(this.ptr, token);
  }
}
