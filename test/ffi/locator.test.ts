// The library locator: search order, explicit choices, and an error that lists every place tried.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "../harness.ts";
import { LibraryNotFoundError, type LibrarySpec, candidatePaths, defineSymbols, loadLibrary, nodeModulesDirs, versionedDirs } from "../../src/ffi/index.ts";
import { cudartSpec } from "../../src/cuda/cudart-library.ts";

const scratch = mkdtempSync(join(tmpdir(), "gpuffi-locator-"));
const spec: LibrarySpec = {
  name: "libgpuffi-nothing",
  sonames: ["libgpuffi-nothing.so.2", "libgpuffi-nothing.so.1"],
  envVar: "GPUFFI_NOTHING",
  searchDirs: () => [{ dir: join(scratch, "well-known"), source: "test well-known dir" }],
  hint: "install libgpuffi-nothing or set GPUFFI_NOTHING",
};
const table = defineSymbols({ strlen: { parameters: ["cstring"], result: "usize" } });

test("the error lists every candidate, why each was rejected, and the fix", () => {
  mkdirSync(join(scratch, "bogus"), { recursive: true });
  writeFileSync(join(scratch, "bogus", "libgpuffi-nothing.so.1"), "this is not an ELF file");
  const env = { LD_LIBRARY_PATH: `${join(scratch, "missing")}:${join(scratch, "bogus")}`, HOME: scratch };
  const error = (() => {
    try {
      loadLibrary(spec, table, { env });
    } catch (e) {
      return e;
    }
  })();
  assert.ok(error instanceof LibraryNotFoundError);
  const message = error.message;
  assert.match(message, /could not load libgpuffi-nothing/);
  assert.match(message, /well-known.*test well-known dir.*directory does not exist/);
  assert.match(message, /missing.*LD_LIBRARY_PATH.*directory does not exist/);
  assert.match(message, /bogus\/libgpuffi-nothing\.so\.1.*LD_LIBRARY_PATH.*dlopen failed/);
  assert.match(message, /libgpuffi-nothing\.so\.2.*dynamic linker search.*dlopen failed/);
  assert.match(message, /How to fix: install libgpuffi-nothing or set GPUFFI_NOTHING/);
  assert.equal(error.code, "ERR_LIBRARY_NOT_FOUND");
  assert.ok(error.attempts.length >= 5);
});

test("an explicit path or environment variable is final: no silent fallback", () => {
  const viaOption = [...candidatePaths(spec, { path: join(scratch, "nowhere.so"), env: {} })];
  assert.deepEqual(viaOption, [{ path: join(scratch, "nowhere.so"), source: "path option", rejected: "does not exist", explicit: true }]);
  const viaEnv = [...candidatePaths(spec, { env: { GPUFFI_NOTHING: scratch } })];
  assert.equal(viaEnv.length, 1);
  assert.equal(viaEnv[0]!.source, "$GPUFFI_NOTHING");
  assert.throws(() => loadLibrary(spec, table, { path: join(scratch, "nowhere.so"), env: {} }), /path option.*does not exist/);
});

test("a library missing required symbols is rejected with their names", () => {
  const needy = defineSymbols({ strlen: { parameters: ["cstring"], result: "usize" }, gpuffi_no_such_function: { parameters: [], result: "void" } });
  assert.throws(() => loadLibrary({ ...spec, sonames: ["libc.so.6"] }, needy, { env: {} }), (e: unknown) => e instanceof LibraryNotFoundError && /missing symbols: gpuffi_no_such_function/.test(e.message));
});

test("found by the dynamic linker's own search when nothing else has it", () => {
  const libc = loadLibrary({ ...spec, sonames: ["libc.so.6"] }, table, { env: {} });
  assert.equal(libc.symbols.strlen("four"), 4);
});

test("search order: explicit env, library dirs, LD_LIBRARY_PATH, conda, pip wheels, ldconfig, linker", () => {
  const conda = join(scratch, "conda");
  mkdirSync(join(conda, "lib", "python3.11", "site-packages", "nvidia", "cuda_runtime", "lib"), { recursive: true });
  const sources = [...candidatePaths(cudartSpec, { env: { CUDA_PATH: join(scratch, "cuda"), LD_LIBRARY_PATH: join(scratch, "ld"), CONDA_PREFIX: conda, HOME: scratch } })].map((c) => c.source);
  const firstIndex = (s: string) => sources.findIndex((x) => x.startsWith(s));
  const order = ["$CUDA_PATH", "/usr/local/cuda", "LD_LIBRARY_PATH", "conda", "CONDA_PREFIX: pip nvidia-* wheel", "dynamic linker search"].map(firstIndex);
  assert.ok(order.every((i) => i >= 0), JSON.stringify(sources));
  assert.deepEqual(order, [...order].sort((a, b) => a - b), JSON.stringify(sources));
});

test("versioned toolkit directories sort newest first", () => {
  const root = join(scratch, "local");
  for (const name of ["cuda-12.4", "cuda-13.0", "cuda-12.10", "cuda-9.2", "other"]) mkdirSync(join(root, name), { recursive: true });
  assert.deepEqual(versionedDirs(root, /^cuda-\d+(\.\d+)*$/).map((d) => d.slice(root.length + 1)), ["cuda-13.0", "cuda-12.10", "cuda-12.4", "cuda-9.2"]);
});

test("prebuilt binaries in npm packages are found from the working directory upwards", () => {
  const project = join(scratch, "project", "packages", "app");
  const bins = join(scratch, "project", "node_modules", "@vendor", "prebuilt-linux-x64", "bins");
  mkdirSync(project, { recursive: true });
  mkdirSync(bins, { recursive: true });
  const dirs = [...nodeModulesDirs("@vendor/prebuilt-linux-x64", "bins", project)];
  assert.deepEqual(dirs[0], { dir: bins, source: "npm package @vendor/prebuilt-linux-x64" });
});
