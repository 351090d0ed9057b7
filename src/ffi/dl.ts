// The dynamic linker, bound through the runtime's own FFI: gpuffi asks dlsym which symbols a
// library really has (bun:ffi would refuse the whole table over one missing optional symbol)
// and takes the addresses the Bun struct shim calls through.
import { backend } from "./backend.ts";
import { defineSymbols } from "./types.ts";

// <dlfcn.h>; in glibc ≥ 2.34 these live in libc.so.6 itself.
export const dlSymbols = defineSymbols({
  // void *dlopen(const char *filename, int flags);
  dlopen: { parameters: ["cstring", "i32"], result: "ptr" },
  // int dlclose(void *handle);
  dlclose: { parameters: ["ptr"], result: "i32" },
  // void *dlsym(void *restrict handle, const char *restrict symbol);
  dlsym: { parameters: ["ptr", "cstring"], result: "ptr" },
  // char *dlerror(void);
  dlerror: { parameters: [], result: "cstring" },
  // int dladdr(const void *addr, Dl_info *info);
  dladdr: { parameters: ["ptr", "buffer"], result: "i32" },
});

const RTLD_NOW = 0x2;
const RTLD_GLOBAL = 0x100;
/** The flags above, for the ABI check (scripts/abi/tables.ts). */
export const dlFlags = { RTLD_NOW, RTLD_GLOBAL } as const;

const libdl = backend.open("libc.so.6", dlSymbols, new Map()).symbols as unknown as {
  dlopen(path: string, flags: number): number;
  dlclose(handle: number): number;
  dlsym(handle: number, name: string): number;
  dlerror(): string | null;
  dladdr(address: number, info: BigUint64Array): number;
};

/**
 * Opens a library with the dynamic linker (RTLD_NOW, so a file with unresolved dependencies is
 * rejected here with the linker's message rather than failing later at a call). GLOBAL because
 * plugin loaders such as ggml's resolve their symbols against libraries opened before them.
 */
export function dlopenHandle(path: string): { handle: number } | { error: string } {
  libdl.dlerror(); // clear a stale message
  const handle = libdl.dlopen(path, RTLD_NOW | RTLD_GLOBAL);
  return handle !== 0 ? { handle } : { error: libdl.dlerror() ?? "dlopen failed" };
}

export function dlsymAddress(handle: number, name: string): number {
  return libdl.dlsym(handle, name);
}

export function dlcloseHandle(handle: number): void {
  libdl.dlclose(handle);
}

/**
 * The file of the loaded library that holds `address` (a function pointer a library handed
 * out, e.g. a plugin's), or `undefined` when no loaded object contains it.
 */
export function libraryPathOf(address: number): string | undefined {
  // Dl_info { const char *dli_fname; void *dli_fbase; const char *dli_sname; void *dli_saddr; }
  const info = new BigUint64Array(4);
  if (address === 0 || libdl.dladdr(address, info) === 0 || info[0] === 0n) return undefined;
  return backend.readCString(Number(info[0]));
}
