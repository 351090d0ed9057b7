// Read-only memory maps of whole files, through libc. A mapping hands the page cache itself to
// code that reads memory (cudaHostRegister lets the GPU copy straight from it), with no copy
// through read() into a buffer of our own.
import { statSync } from "node:fs";
import { FfiArgumentError, SystemCallError } from "./errors.ts";
import { type NativeLibrary, openLibrary } from "./library.ts";
import { nativeView } from "./memory.ts";
import { NativeResource } from "./resource.ts";
import { type Pointer, defineSymbols } from "./types.ts";

export const libcMapping = defineSymbols({
  // <fcntl.h> int open(const char *pathname, int flags, ...);
  // (variadic only for the mode, which glibc reads only with O_CREAT or O_TMPFILE)
  open: { parameters: ["cstring", "i32"], result: "i32" },
  // <unistd.h> int close(int fd);
  close: { parameters: ["i32"], result: "i32" },
  // <unistd.h> off_t lseek(int fd, off_t offset, int whence);
  lseek: { parameters: ["i32", "isize", "i32"], result: "isize" },
  // <unistd.h> long sysconf(int name);
  sysconf: { parameters: ["i32"], result: "isize" },
  // <sys/mman.h> void *mmap(void *addr, size_t length, int prot, int flags, int fd, off_t offset);
  // The result as ssize_t: MAP_FAILED, (void *)-1, then reads -1 rather than 2^64 - 1.
  mmap: { parameters: ["ptr", "usize", "i32", "i32", "i32", "isize"], result: "isize" },
  // <sys/mman.h> int munmap(void *addr, size_t length);
  munmap: { parameters: ["ptr", "usize"], result: "i32" },
  // <errno.h> int *__errno_location(void);  (what the errno macro expands to in glibc)
  __errno_location: { parameters: [], result: "ptr" },
  // <string.h> char *strerror(int errnum);
  strerror: { parameters: ["i32"], result: "cstring" },
});

const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;
const SEEK_END = 2;
const _SC_PAGESIZE = 30;
const PROT_READ = 1;
// MAP_SHARED: the file's own page-cache pages, never private copies of them.
const MAP_SHARED = 1;
/** The libc constants above, for the ABI check (scripts/abi/tables.ts). */
export const mappingConstants = { O_RDONLY, O_CLOEXEC, SEEK_END, _SC_PAGESIZE, PROT_READ, MAP_SHARED } as const;

let libc: NativeLibrary<typeof libcMapping> | undefined;
/** libc's calls above, opened at first use (once a process, also for openFileReads on Deno). */
export const libcMappingSymbols = () => (libc ??= openLibrary("libc", "libc.so.6", libcMapping)).symbols;

/** Throws a SystemCallError with errno's value, read right after the failed call (on the JS thread). */
export function failedCall(call: string, subject: string): never {
  const c = libcMappingSymbols();
  const errno = new Int32Array(nativeView(c.__errno_location(), 4))[0]!;
  throw new SystemCallError(call, errno, subject, c.strerror(errno) ?? "unknown error");
}

/** The size of a memory page (sysconf(_SC_PAGESIZE)): mapping offsets and pinned ranges are multiples of it. */
export function pageSize(): number {
  return libcMappingSymbols().sysconf(_SC_PAGESIZE);
}

/**
 * A whole file mapped read-only (PROT_READ, MAP_SHARED). The mapping stays valid after the file
 * is closed (the descriptor is closed at once) until dispose, which unmaps it. An empty file
 * maps to nothing (`ptr` 0). If the file shrinks while mapped, touching the lost pages raises
 * SIGBUS: map files that nothing truncates meanwhile.
 */
export class MappedFile extends NativeResource {
  private constructor(
    readonly path: string,
    /** The mapping's address (page-aligned), 0 for an empty file. */
    readonly ptr: Pointer,
    /** The file's size; the mapping covers it rounded up to whole pages. */
    readonly byteLength: number,
  ) {
    super(`MappedFile ${path}`, () => {
      if (byteLength > 0) libcMappingSymbols().munmap(ptr, byteLength);
    });
  }

  static open(path: string): MappedFile {
    if (typeof path !== "string" || path === "") throw new FfiArgumentError(`MappedFile.open: expected a file path, got ${JSON.stringify(path)}`);
    // A directory or a device opens fine and then fails at mmap with a message that names neither.
    if (!statSync(path).isFile()) throw new FfiArgumentError(`MappedFile.open: ${path} is not a regular file`);
    const c = libcMappingSymbols();
    const fd = c.open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) failedCall("open", path);
    try {
      const size = c.lseek(fd, 0, SEEK_END);
      if (size < 0) failedCall("lseek", path);
      if (size === 0) return new MappedFile(path, 0, 0);
      const ptr = c.mmap(0, size, PROT_READ, MAP_SHARED, fd, 0);
      if (ptr === -1) failedCall("mmap", path);
      return new MappedFile(path, ptr, size);
    } finally {
      c.close(fd);
    }
  }

  /** A zero-copy view of `[offset, offset + byteLength)`; valid until dispose. */
  bytes(offset = 0, length?: number): Uint8Array {
    this.assertLive();
    const byteLength = length ?? this.byteLength - offset;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(byteLength) || offset < 0 || byteLength < 0 || offset + byteLength > this.byteLength) {
      throw new FfiArgumentError(`MappedFile.bytes: [${offset}, ${offset + byteLength}) is outside the ${this.byteLength} bytes of ${this.path}`);
    }
    return byteLength === 0 ? new Uint8Array(0) : new Uint8Array(nativeView(this.ptr + offset, byteLength));
  }
}
