// LlamaThreadpool: a ggml CPU threadpool that contexts compute on (llama_attach_threadpool), as
// llama-bench attaches one to every context it measures.
import { NativeResource, type Pointer, encodeStruct } from "../ffi/index.ts";
import { SchedPriority, ggmlThreadpoolParams } from "../ggml/index.ts";
import { LlamaError } from "./errors.ts";
import { Lifetime } from "./lifetime.ts";
import { Llama } from "./llama.ts";

/** GGML_MAX_N_THREADS: the length of ggml's CPU mask, and the most threads a pool may have. */
const maxThreads = ggmlThreadpoolParams.fields.cpumask.length;

export interface ThreadpoolOptions {
  /** The libllama whose CPU backend runs the pool (default: {@link Llama.shared}). */
  readonly llama?: Llama;
  /** Threads, the one that calls llama_decode included (1…512). */
  readonly threads: number;
  /** How long idle workers poll for work before they sleep: 0 (at once) … 100 (default 50, ggml's and llama-bench's). */
  readonly poll?: number;
  /** Scheduling priority of the workers (default "normal"; above it needs the privilege to raise priorities). */
  readonly priority?: keyof typeof SchedPriority;
  /** CPUs the workers may run on (default: wherever the OS schedules them). */
  readonly cpus?: readonly number[];
  /** Give each worker one CPU of `cpus` in turn instead of all of them (default false). */
  readonly strictCpu?: boolean;
}

function checkInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    throw new LlamaError("ERR_LLAMA_ARGUMENT", `threadpool ${name} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
  return value;
}

/**
 * A ggml CPU threadpool (`ggml_threadpool_new`). Without one, ggml makes a pool for every graph it
 * computes (in a build without OpenMP that means starting and joining threads on every decode);
 * an attached pool keeps its workers between decodes. Contexts given it in
 * `LlamaContext.create(model, { threadpool })` keep it alive natively until they are disposed.
 */
export class LlamaThreadpool extends NativeResource {
  /** @internal The `ggml_threadpool *`. */
  readonly ptr: Pointer;
  /** @internal Contexts that compute on the pool retain it. */
  readonly lifetime: Lifetime;
  readonly llama: Llama;
  readonly threads: number;

  private constructor(llama: Llama, ptr: Pointer, threads: number, free: (ptr: Pointer) => void) {
    const lifetime = Lifetime.dependent("ggml threadpool", llama.lifetime, () => free(ptr));
    super("LlamaThreadpool", () => lifetime.release());
    this.ptr = ptr;
    this.lifetime = lifetime;
    this.llama = llama;
    this.threads = threads;
  }

  static create(options: ThreadpoolOptions): LlamaThreadpool {
    const threads = checkInteger(options.threads, "threads", 1, maxThreads);
    const priority = options.priority ?? "normal";
    if (!Object.hasOwn(SchedPriority, priority)) {
      throw new LlamaError("ERR_LLAMA_ARGUMENT", `threadpool priority must be one of ${Object.keys(SchedPriority).join(", ")}, got ${String(priority)}`);
    }
    const cpumask = new Array<boolean>(maxThreads).fill(false);
    for (const cpu of options.cpus ?? []) cpumask[checkInteger(cpu, "cpus entry", 0, maxThreads - 1)] = true;
    const llama = options.llama ?? Llama.shared();
    const params = {
      ...llama.threadpoolDefaults(threads),
      cpumask,
      prio: SchedPriority[priority],
      strict_cpu: options.strictCpu ?? false,
      ...(options.poll === undefined ? {} : { poll: checkInteger(options.poll, "poll", 0, 100) }),
    };
    const cpu = llama.cpuBackend();
    const ptr = cpu.symbols.ggml_threadpool_new(encodeStruct(ggmlThreadpoolParams, params));
    if (ptr === 0) throw new LlamaError("ERR_LLAMA_THREADPOOL", `ggml could not create a threadpool of ${threads} threads`);
    return new LlamaThreadpool(llama, ptr, threads, (p) => cpu.symbols.ggml_threadpool_free(p));
  }
}
