// Ggml: libggml-base and libggml opened for building and running graphs, with the backends of
// their directory registered, and the devices those backends offer.
import { type NativeLibrary, type Pointer, libraryPathOf, loadLibrary, openLibrary } from "../ffi/index.ts";
import { ggmlBaseSonames, ggmlBaseSymbols, ggmlSonames, ggmlSymbols } from "./bindings.ts";
import { GgmlBackend } from "./backend.ts";
import { GgmlError } from "./errors.ts";
import { ggmlBackendSymbols, ggmlCpuBackendSymbols, ggmlGraphSymbols } from "./graph-bindings.ts";

const baseTable = { ...ggmlBaseSymbols, ...ggmlGraphSymbols, ...ggmlBackendSymbols } as const;
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
  #cpu: NativeLibrary<typeof ggmlCpuBackendSymbols> | undefined;

  private constructor(readonly dir: string | undefined) {
    const from = (name: string, sonames: string[]) => ({ name, sonames, envVar: "GPUFFI_LLAMA_DIR", hint: `${name} sits next to libllama: set GPUFFI_LLAMA_DIR` });
    const where = dir === undefined ? { env: {} } : { path: dir };
    this.base = loadLibrary(from("libggml-base", ggmlBaseSonames), baseTable, where);
    this.registry = loadLibrary(from("libggml", ggmlSonames), ggmlSymbols, where);
    if (dir !== undefined && !backendDirsLoaded.has(dir)) {
      this.registry.symbols.ggml_backend_load_all_from_path(dir);
      backendDirsLoaded.add(dir);
    }
  }

  /**
   * The ggml libraries in `dir` (undefined: the dynamic linker's search). Opening one directory
   * twice returns the same object, and registers its backends once.
   */
  static open(dir: string | undefined): Ggml {
    const key = dir ?? "";
    let ggml = opened.get(key);
    if (ggml === undefined) opened.set(key, (ggml = new Ggml(dir)));
    return ggml;
  }

  /** Every device the registered backends offer, GPUs numbered `cuda:N` in registry order. */
  devices(): GgmlDeviceInfo[] {
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

  // The CPU backend is a plugin in node-llama-cpp's packages (one file per microarchitecture)
  // and libggml-cpu in a CMake build: open whichever file the registered CPU backend lives in.
  private cpuLibrary(): NativeLibrary<typeof ggmlCpuBackendSymbols> {
    if (this.#cpu === undefined) {
      const { base, registry } = this;
      const device = registry.symbols.ggml_backend_dev_by_type(deviceTypeNames.indexOf("cpu"));
      const address = device === 0 ? 0 : base.symbols.ggml_backend_reg_get_proc_address(base.symbols.ggml_backend_dev_backend_reg(device), "ggml_backend_set_n_threads");
      const path = libraryPathOf(address);
      if (path === undefined) throw new GgmlError("ERR_GGML_DEVICE", "the registered CPU backend does not offer ggml_backend_cpu_set_n_threads");
      this.#cpu = openLibrary("libggml-cpu", path, ggmlCpuBackendSymbols);
    }
    return this.#cpu;
  }
}
