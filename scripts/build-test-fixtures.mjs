// Compiles the C fixture library that the FFI tests call (structs by value of every ABI class,
// callbacks from other threads). Users never need a compiler; the test suite uses the system cc
// when there is one and the tests that need the fixture skip with that reason when there is not.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";

export function buildTestFixtures(root) {
  const source = join(root, "test", "fixtures", "testlib.c");
  const outDir = join(root, ".cache", "fixtures");
  const library = join(outDir, "libgpuffi_test.so");
  if (existsSync(library) && statSync(library).mtimeMs >= statSync(source).mtimeMs) return { env: { GPUFFI_TEST_LIB: library } };
  mkdirSync(outDir, { recursive: true });
  for (const cc of [process.env.CC, "cc", "gcc", "clang"].filter(Boolean)) {
    try {
      execFileSync(cc, ["-shared", "-fPIC", "-O2", "-Wall", "-pthread", "-o", library, source], { stdio: ["ignore", "pipe", "pipe"] });
      return { env: { GPUFFI_TEST_LIB: library } };
    } catch (error) {
      if (error.code !== "ENOENT") return { env: {}, reason: `could not compile ${source} with ${cc}: ${error.stderr ?? error.message}` };
    }
  }
  return { env: {}, reason: "no C compiler (cc, gcc, clang) to build the fixture library; tests that need it are skipped" };
}
