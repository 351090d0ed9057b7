// Llama: one loaded libllama with its ggml libraries, version-checked, backends registered.
import { dirname } from "node:path";
import process from "node:process";
import {
  type Environment,
  type NativeLibrary,
  NativeResource,
  Out,
  type Pointer,
  type StructValue,
  decodeStruct,
  defineSymbols,
  loadLibrary,
  openLibrary,
} from "../ffi/index.ts";
import { Ggml, deviceTypes, ggmlCpuSymbols, ggmlThreadpoolParams } from "../ggml/index.ts";
import { expectedVersions, llamaSpec, llamaSymbols } from "./bindings.ts";
import { LlamaError, LlamaVersionError } from "./errors.ts";
import { Lifetime } from "./lifetime.ts";

export interface LlamaOptions {
  /** A directory holding libllama (or the file itself). Default: `$GPUFFI_LLAMA_DIR`, the node-llama-cpp packages, the system. */
  readonly dir?: string;
  /** Load a libllama of another version than the bindings were written for. Unsafe: struct layouts may differ. */
  readonly allowVersionMismatch?: boolean;
  /** llama.cpp's own log: "silent" (default) or "stderr". */
  readonly log?: "silent" | "stderr";
  /** The environment to read (default: the process's). */
  readonly env?: Environment;
}

export interface LlamaVersions {
  /** `llama_version()`, e.g. "0.5.0-dev". */
  readonly llama: string;
  /** `ggml_version()`. */
  readonly ggml: string;
  /** `ggml_commit()`: the source commit, "unknown" for a build from a tarball. */
  readonly commit: string;
}

export interface LlamaDevice {
  readonly name: string;
  readonly description: string;
  readonly type: (typeof deviceTypes)[number] | "unknown";
  readonly memoryFree: number;
  readonly memoryTotal: number;
}

/**
 * Refuses a llama.cpp whose version differs from the one the bindings were written for.
 * `llama_version()` carries a "-dev" suffix unless llama.cpp was configured with
 * LLAMA_BUILD_IS_DEV=OFF (node-llama-cpp's prebuilt binaries have it); the suffix does not change the ABI.
 */
export function checkVersions(path: string, found: { llama: string; ggml: string }, allowMismatch: boolean): void {
  const llamaMatches = found.llama === expectedVersions.llama || found.llama === `${expectedVersions.llama}-dev`;
  if ((llamaMatches && found.ggml === expectedVersions.ggml) || allowMismatch) return;
  throw new LlamaVersionError(path, expectedVersions, found);
}

type LlamaLibrary = NativeLibrary<typeof llamaSymbols>;

// <stdlib.h> int abs(int): a native function that reads only its first argument and has no
// side effects, used as llama.cpp's log callback to silence it. A JS callback could not serve:
// llama.cpp logs from whichever thread calls it, including Deno's and koffi's worker threads.
const libcAbs = defineSymbols({ abs: { parameters: ["i32"], result: "i32" } });
let silentLogger: number | undefined;

/**
 * One loaded libllama, checked against the version the bindings were written for, with its
 * backends (CPU variants, CUDA) registered. The libraries stay mapped for the life of the
 * process (unloading CUDA libraries is unsafe); `dispose` frees llama.cpp's backend state once
 * every model loaded through this instance is freed.
 */
export class Llama extends NativeResource {
  /** @internal The bound libllama. */
  readonly lib: LlamaLibrary;
  readonly #ggml: Ggml;
  /** @internal Models retain it. */
  readonly lifetime: Lifetime;
  /** The libllama file that was loaded. */
  readonly path: string;
  /** @internal libllama's directory; undefined when the dynamic linker's own search found it. */
  readonly dir: string | undefined;
  readonly versions: LlamaVersions;

  private constructor(options: LlamaOptions) {
    const env = options.env ?? process.env;
    const lib = loadLibrary(llamaSpec, llamaSymbols, { path: options.dir, env });
    const dir = lib.path.includes("/") ? dirname(lib.path) : undefined;
    const ggml = Ggml.open(dir);
    const base = ggml.base.symbols;
    const versions = { llama: lib.symbols.llama_version() ?? "", ggml: base.ggml_version() ?? "", commit: base.ggml_commit() ?? "" };
    checkVersions(lib.path, versions, options.allowVersionMismatch ?? env.GPUFFI_LLAMA_ALLOW_MISMATCH === "1");

    if ((options.log ?? "silent") === "silent") {
      silentLogger ??= openLibrary("libc", "libc.so.6", libcAbs).address("abs");
      lib.symbols.llama_log_set(silentLogger, 0);
    } else {
      lib.symbols.llama_log_set(0, 0);
    }
    // After the log callback is set, so that loading the backend plugins says nothing.
    ggml.registerBackends();
    lib.symbols.llama_backend_init();
    const lifetime = new Lifetime("llama backend", () => lib.symbols.llama_backend_free());
    super("Llama", () => lifetime.release(), false);
    this.lib = lib;
    this.#ggml = ggml;
    this.lifetime = lifetime;
    this.path = lib.path;
    this.dir = dir;
    this.versions = Object.freeze(versions);
  }

  /** Loads libllama (see {@link LlamaOptions}); throws LlamaVersionError on a version mismatch. */
  static load(options: LlamaOptions = {}): Llama {
    return new Llama(options);
  }

  static #shared: Llama | undefined;
  /** The instance models use when given none, loaded with default options on first use. */
  static shared(): Llama {
    if (Llama.#shared === undefined || Llama.#shared.disposed) Llama.#shared = new Llama({});
    return Llama.#shared;
  }

  /** `llama_print_system_info()`: the CPU features and backends llama.cpp was built with. */
  get systemInfo(): string {
    this.assertLive();
    return this.lib.symbols.llama_print_system_info() ?? "";
  }

  /** Whether layers can be offloaded: a GPU backend is available, or (llama.cpp counts it too) the RPC backend. */
  get supportsGpuOffload(): boolean {
    this.assertLive();
    return this.lib.symbols.llama_supports_gpu_offload();
  }

  /** Whether libllama was built with ggml's RPC backend (`scripts/build-llama.sh --rpc`). */
  get supportsRpc(): boolean {
    this.assertLive();
    return this.lib.symbols.llama_supports_rpc();
  }

  /** `llama_max_devices()`: the length a `tensorSplit` may have. */
  get maxDevices(): number {
    this.assertLive();
    return this.lib.symbols.llama_max_devices();
  }

  /** The devices ggml registered, in the order `mainGpu`/`tensorSplit` count GPUs after the CPU. */
  devices(): LlamaDevice[] {
    return this.deviceHandles().map(({ handle }) => this.describeDevice(handle));
  }

  /** @internal The `ggml_backend_dev_t` of every registered device, in registry order, with its type. */
  deviceHandles(): { handle: Pointer; type: LlamaDevice["type"] }[] {
    this.assertLive();
    const { symbols } = this.#ggml.registry;
    return Array.from({ length: symbols.ggml_backend_dev_count() }, (_, i) => {
      const handle = symbols.ggml_backend_dev_get(i);
      return { handle, type: this.#deviceType(handle) };
    });
  }

  /** @internal The devices of one backend registry (`ggml_backend_reg_t`), e.g. an RPC server's. */
  registryDevices(registry: Pointer): Pointer[] {
    this.assertLive();
    const { symbols } = this.#ggml.base;
    return Array.from({ length: symbols.ggml_backend_reg_dev_count(registry) }, (_, i) => symbols.ggml_backend_reg_dev_get(registry, i));
  }

  /** @internal Name, type and memory of a `ggml_backend_dev_t`. */
  describeDevice(device: Pointer): LlamaDevice {
    this.assertLive();
    const { symbols: base } = this.#ggml.base;
    const [free, total] = [Out.size(), Out.size()];
    base.ggml_backend_dev_memory(device, free.buffer, total.buffer);
    return {
      name: base.ggml_backend_dev_name(device) ?? "",
      description: base.ggml_backend_dev_description(device) ?? "",
      type: this.#deviceType(device),
      memoryFree: free.value,
      memoryTotal: total.value,
    };
  }

  #deviceType(device: Pointer): LlamaDevice["type"] {
    return deviceTypes[this.#ggml.base.symbols.ggml_backend_dev_type(device)] ?? "unknown";
  }

  /**
   * @internal The CPU backend's own functions (ggml-cpu.h), opened from whichever file holds the
   * registered CPU backend: a per-microarchitecture plugin in node-llama-cpp's packages,
   * libggml-cpu in a CMake build. llama-bench finds ggml_threadpool_new the same way.
   */
  cpuBackend(): NativeLibrary<typeof ggmlCpuSymbols> {
    this.assertLive();
    try {
      return this.#ggml.cpuLibrary();
    } catch (error) {
      throw new LlamaError("ERR_LLAMA_THREADPOOL", `the CPU backend registered by ${this.path} does not offer ggml_threadpool_new`, { cause: error });
    }
  }


  /** @internal ggml's default threadpool parameters for `threads` threads (`ggml_threadpool_params_init`). */
  threadpoolDefaults(threads: number): StructValue<typeof ggmlThreadpoolParams.fields> {
    this.assertLive();
    const params = new Uint8Array(ggmlThreadpoolParams.size);
    this.#ggml.base.symbols.ggml_threadpool_params_init(params, threads);
    return decodeStruct(ggmlThreadpoolParams, params);
  }
}
