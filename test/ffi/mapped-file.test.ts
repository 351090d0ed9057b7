// Files into native memory: read-only maps of whole files through libc's open/mmap/munmap, and
// reads many at once (openFileReads: on Bun through a file handle per read in flight, on Deno
// through pread calls off the JS thread, on Node through gpuffi's reader threads; every runtime's
// node:fs handles too, as the upload benchmark compares them).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { test } from "../harness.ts";
import { DisposedError, FfiArgumentError, HostMemory, MappedFile, SystemCallError, openFileReads, pageSize } from "../../src/ffi/index.ts";

async function inTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "gpuffi-mapped-"));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true });
  }
}

test("pageSize is the system's page size: a power of two of at least 4 KiB", () => {
  const page = pageSize();
  assert.ok(page >= 4096 && (page & (page - 1)) === 0, String(page));
});

test("a mapped file shows the file's bytes at a page-aligned address, any size (property)", () => inTempDir(async (dir) => {
  const path = join(dir, "data.bin");
  await fc.assert(fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 3 * pageSize() + 17 }), async (data) => {
    await writeFile(path, data);
    using file = MappedFile.open(path);
    assert.equal(file.byteLength, data.length);
    assert.equal(file.ptr % pageSize(), 0);
    assert.deepEqual(file.bytes(), data);
    assert.deepEqual(file.bytes(1, data.length - 1), data.subarray(1));
  }), { numRuns: 20 });
}));

test("an empty file maps to nothing; views outside the file and use after dispose throw", () => inTempDir(async (dir) => {
  const empty = join(dir, "empty");
  await writeFile(empty, new Uint8Array(0));
  const nothing = MappedFile.open(empty);
  assert.equal(nothing.ptr, 0);
  assert.equal(nothing.bytes().length, 0);
  nothing.dispose();
  const path = join(dir, "ten");
  await writeFile(path, new Uint8Array(10));
  const file = MappedFile.open(path);
  assert.throws(() => file.bytes(5, 6), (e) => e instanceof FfiArgumentError && /\[5, 11\) is outside the 10 bytes/.test(e.message));
  file.dispose();
  assert.throws(() => file.bytes(), DisposedError);
  assert.throws(() => file.dispose(), DisposedError);
}));

test("what cannot be mapped gets a clear error: a directory, a missing file, an empty path", () => inTempDir(async (dir) => {
  assert.throws(() => MappedFile.open(dir), (e) => e instanceof FfiArgumentError && e.message.includes("is not a regular file"));
  assert.throws(() => MappedFile.open(join(dir, "missing")), (e) => (e as { code?: string }).code === "ENOENT");
  assert.throws(() => MappedFile.open(""), FfiArgumentError);
}));

// sysfs attributes are regular files that open but cannot be mapped: mmap fails with ENODEV.
const sysfsFile = "/sys/kernel/mm/transparent_hugepage/enabled";
test("a failing mmap reports the call, the file and errno's text", () => {
  assert.throws(() => MappedFile.open(sysfsFile), (e) =>
    e instanceof SystemCallError && e.call === "mmap" && e.errno === 19 && e.message === `mmap failed for ${sysfsFile}: No such device (errno 19)`);
}, { skip: existsSync(sysfsFile) ? undefined : `${sysfsFile} does not exist here` });

// ----- openFileReads ------------------------------------------------------------------------------

function pattern(length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (i * 131 + (i >> 8)) & 0xff;
  return bytes;
}

test("many reads at once land the file's bytes where each asked, in any order; the end of the file reads short", () => inTempDir(async (dir) => {
  const path = join(dir, "data.bin");
  const data = pattern(3 * 2 ** 20 + 123);
  await writeFile(path, data);
  const chunk = 64 * 1024 + 7;
  using memory = HostMemory.alloc(data.length + chunk);
  for (const [concurrency, method] of [[1, "default"], [3, "default"], [16, "default"], [3, "handles"]] as const) {
    memory.bytes().fill(0);
    await using file = await openFileReads(path, concurrency, method);
    const offsets = Array.from({ length: Math.ceil(data.length / chunk) }, (_, i) => i * chunk).reverse();
    const read = await Promise.all(offsets.map((at) => file.read(memory.ptr + at, chunk, at)));
    assert.deepEqual(read, offsets.map((at) => Math.min(chunk, data.length - at)), `concurrency ${concurrency}`);
    assert.ok(Buffer.from(memory.bytes().subarray(0, data.length)).equals(Buffer.from(data)), `concurrency ${concurrency}`);
    assert.equal(await file.read(memory.ptr, 16, data.length), 0);
    assert.equal(await file.read(memory.ptr, 0, 0), 0);
  }
}));

test("a missing file fails at open, a failed read rejects; bad arguments are refused before any read", () => inTempDir(async (dir) => {
  await assert.rejects(openFileReads(join(dir, "missing.bin"), 4), (e: unknown) => (e as { code?: string }).code === "ENOENT");
  await assert.rejects(openFileReads(join(dir, "missing.bin"), 0), FfiArgumentError);
  const path = join(dir, "data.bin");
  await writeFile(path, pattern(100));
  await using file = await openFileReads(path, 2);
  await assert.rejects(file.read(0, 10, 0), FfiArgumentError);
  await assert.rejects(file.read(4096, -1, 0), FfiArgumentError);
  await assert.rejects(file.read(4096, 10, 1.5), FfiArgumentError);
  // A read that fails (a directory opened as a file) rejects with the system's error.
  using memory = HostMemory.alloc(16);
  for (const method of ["default", "handles"] as const) {
    await using folder = await openFileReads(dir, 2, method);
    await assert.rejects(folder.read(memory.ptr, 16, 0), (e: unknown) => (e as { code?: string }).code === "EISDIR", method);
  }
}));
