// Ggml: libggml-base and libggml opened for building and running graphs, with the backends of
// their directory registered, and the devices those backends offer.
import { type LibrarySpec, type NativeLibrary, type Pointer, libraryPathOf, loadLibrary, openLibrary, setEnvironment } from "../ffi/index.ts";
import { ggmlBaseSonames, ggmlBaseSymbols, ggmlCpuSymbols, ggmlSonames, ggmlSymbols } from "./bindings.ts";
import { GgmlBackend } from "./backend.ts";
import { GgmlError } from "./errors.ts";
import { ggmlBackendSymbols, ggmlCpuBackendSymbols, ggmlGraphSymbols } from "./graph-bindings.ts";

const baseTable = { ...ggmlBaseSymbols, ...ggmlGraphSymbols, ...ggmlBackendSymbols } as const;
// ggml-cpu.h: threadpools (llama.cpp's) and the backend's thread count (graphs').
const cpuTable = { ...ggmlCpuSymbols, ...ggmlCpuBackendSymbols } as const;
/** @internal The functions of libggml-base a graph needs. */
export type GgmlBaseLibrary = NativeLibrary<typeof baseTable>;

// enum ggml_backend_dev_type
const deviceTypeNames = ["cpu", "gpu", "igpu", "accel", "meta"] as const;

/** A device a backend can be started on: `cpu`, or `cuda:N` for the N-th CUDA GPU. */
export type GgmlDeviceName = "cpu" | `cuda:${number}` | (string & {});

export interface GgmlDeviceInfo {
  /** The name to pass to {@link Ggml.backend}: `cpu`, `cuda:0`, … */
  readonly name: string;
  /** ggml's own name, e.g. `CUDA0`. */
  readonly ggmlName: string;
  readonly type: (typeof deviceTypeNames)[number] | "unknown";
  /** @internal ggml_backend_dev_t */
  readonly handle: Pointer;
}

/**
 * Turns ggml's CUDA graphs off for the rest of the process, unless GGML_CUDA_DISABLE_GRAPHS is
 * already in the environment. ggml reads the variable once, at the first graph a CUDA backend
 * runs: after that this changes nothing. For training graphs: with CUDA graphs on, one step in
 * three or four took 2.2× as long on the H200 (re-captured; 14,600 tokens/s against 18,200 off,
 * bench/results/train-h200.md), while token generation gains from them.
 */
export function disableCudaGraphs(): void {
  setEnvironment("GGML_CUDA_DISABLE_GRAPHS", "1", { overwrite: false });
}

/** Loads a library that must sit next to libllama (`dir`: libllama's directory, if it was found in one). */
export function siblingLibrary<T extends Parameters<typeof loadLibrary>[1]>(name: string, sonames: string[], table: T, dir: string | undefined): NativeLibrary<T> {
  const spec: LibrarySpec = { name, sonames, envVar: "GPUFFI_LLAMA_DIR", hint: `${name} must sit next to libllama` };
  // Found by the linker's own search (no directory): its dependencies were found the same way.
  return loadLibrary(spec, table, dir === undefined ? { env: {} } : { path: dir });
}

// ggml_backend_load_all_from_path registers every backend it finds each time it is called:
// twice for one directory would list each device twice.
const backendDirsLoaded = new Set<string>();
const opened = new Map<string, Ggml>();

/**
 * libggml-base and libggml of one directory (the one libllama was found in), with every backend
 * plugin of that directory registered. The libraries stay mapped for the life of the process.
 */
export class Ggml {
  /** @internal */
  readonly base: GgmlBaseLibrary;
  /** @internal */
  readonly registry: NativeLibrary<typeof ggmlSymbols>;
  #cpu: NativeLibrary<typeof cpuTable> | undefined;

  private constructor(readonly dir: string | undefined) {
    this.base = siblingLibrary("libggml-base", ggmlBaseSonames, baseTable, dir);
    this.registry = siblingLibrary("libggml", ggmlSonames, ggmlSymbols, dir);
  }

  /**
   * Registers the backend plugins of the directory (prebuilt packages ship the CPU backend as
   * per-microarchitecture plugins and CUDA as a plugin); once per directory, whoever asks first.
   */
  registerBackends(): void {
    if (this.dir !== undefined && !backendDirsLoaded.has(this.dir)) {
      this.registry.symbols.ggml_backend_load_all_from_path(this.dir);
      backendDirsLoaded.add(this.dir);
    }
  }

  /** The ggml libraries in `dir` (undefined: the dynamic linker's search); one object per directory. */
  static open(dir: string | undefined): Ggml {
    const key = dir ?? "";
    let ggml = opened.get(key);
    if (ggml === undefined) opened.set(key, (ggml = new Ggml(dir)));
    return ggml;
  }

  /** Every device the registered backends offer, GPUs numbered `cuda:N` in registry order. */
  devices(): GgmlDeviceInfo[] {
    this.registerBackends();
    const { base, registry } = this;
    let gpus = 0;
    return Array.from({ length: registry.symbols.ggml_backend_dev_count() }, (_, i) => {
      const handle = registry.symbols.ggml_backend_dev_get(i);
      const type = deviceTypeNames[base.symbols.ggml_backend_dev_type(handle)] ?? "unknown";
      const ggmlName = base.symbols.ggml_backend_dev_name(handle) ?? "";
      const name = type === "cpu" ? "cpu" : ggmlName.startsWith("CUDA") ? `cuda:${gpus++}` : ggmlName.toLowerCase();
      return { name, ggmlName, type, handle };
    });
  }

  /** Starts a backend on `device` (`cpu`, `cuda:N`); `threads` sets the CPU backend's threads. */
  backend(device: GgmlDeviceName = "cpu", options: { threads?: number } = {}): GgmlBackend {
    const devices = this.devices();
    const found = devices.find((d) => d.name === device);
    if (found === undefined) {
      throw new GgmlError("ERR_GGML_DEVICE", `no ggml device "${device}"; this build offers ${devices.map((d) => d.name).join(", ") || "none"}`);
    }
    const handle = this.base.symbols.ggml_backend_dev_init(found.handle, null);
    if (handle === 0) throw new GgmlError("ERR_GGML_DEVICE", `ggml could not start a backend on ${device} (${found.ggmlName})`);
    const backend = new GgmlBackend(this, handle, found);
    if (found.type === "cpu" && options.threads !== undefined) this.setThreads(backend, options.threads);
    return backend;
  }

  /** @internal */
  setThreads(backend: GgmlBackend, threads: number): void {
    if (!Number.isSafeInteger(threads) || threads < 1) throw new GgmlError("ERR_GGML_ARGUMENT", `threads must be a positive integer, got ${threads}`);
    this.cpuLibrary().symbols.ggml_backend_cpu_set_n_threads(backend.handle, threads);
  }

  /**
   * @internal The CPU backend's own functions (ggml-cpu.h). The CPU backend is a plugin in
   * node-llama-cpp's packages (one file per microarchitecture) and libggml-cpu in a CMake build:
   * this opens whichever file the registered CPU backend lives in, as llama-bench finds
   * ggml_threadpool_new.
   */
  cpuLibrary(): NativeLibrary<typeof cpuTable> {
    if (this.#cpu === undefined) {
      this.registerBackends();
      const { base, registry } = this;
      const device = registry.symbols.ggml_backend_dev_by_type(deviceTypeNames.indexOf("cpu"));
      const address = device === 0 ? 0 : base.symbols.ggml_backend_reg_get_proc_address(base.symbols.ggml_backend_dev_backend_reg(device), "ggml_threadpool_new");
      const path = libraryPathOf(address);
      if (path === undefined) throw new GgmlError("ERR_GGML_DEVICE", "the registered CPU backend does not offer ggml_threadpool_new");
      this.#cpu = openLibrary("libggml-cpu", path, cpuTable);
    }
    return this.#cpu;
  }
}
