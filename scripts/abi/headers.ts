// Where the ABI check finds each library's headers.
// - llama.cpp and ggml: the source that the node-llama-cpp npm package bundles (the prebuilt
//   binaries gpuffi loads are built from it), fetched once with `npm pack` into .cache/ and
//   reused; GPUFFI_LLAMA_SRC=DIR checks against another source tree instead (a release being
//   moved to).
// - CUDA, cuBLAS, NCCL: the toolkit's include directory ($CUDA_PATH, /usr/local/cuda, newest
//   /usr/local/cuda-X.Y), then /usr/include where distributions put nccl.h.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import type { IncludeDirs } from "./model.ts";

export const repoRoot: string = fileURLToPath(new URL("../..", import.meta.url));

/** The node-llama-cpp release whose binaries are installed, else the one package.json asks for. */
export function nodeLlamaCppVersion(root = repoRoot): string {
  const installed = join(root, "node_modules", "@node-llama-cpp", "linux-x64", "package.json");
  if (existsSync(installed)) return JSON.parse(readFileSync(installed, "utf8")).version as string;
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8"));
  return String(pkg.optionalDependencies?.["@node-llama-cpp/linux-x64"] ?? "3.22.1").replace(/^[\^~]/, "");
}

/** Where the fetched headers of one node-llama-cpp version live. */
export function llamaHeaderCache(version = nodeLlamaCppVersion(), root = repoRoot): string {
  return join(root, ".cache", `llama-headers-node-llama-cpp-${version}`);
}

function llamaDirs(base: string): string[] {
  return [join(base, "include"), join(base, "ggml", "include")];
}

/** llama.h and the ggml headers: GPUFFI_LLAMA_SRC, else the cache, else fetched into the cache. */
export function llamaHeaders(): IncludeDirs {
  const override = process.env.GPUFFI_LLAMA_SRC;
  if (override) {
    if (!existsSync(join(override, "include", "llama.h"))) return { skip: `GPUFFI_LLAMA_SRC=${override} has no include/llama.h` };
    return { dirs: llamaDirs(override), label: `llama.cpp source at ${override}` };
  }
  const version = nodeLlamaCppVersion();
  const cache = llamaHeaderCache(version);
  if (!existsSync(join(cache, "include", "llama.h"))) {
    try {
      fetchLlamaHeaders(version, cache);
    } catch (error) {
      const message = (error as { stderr?: Buffer | string }).stderr?.toString().trim().split("\n").at(-1) || (error as Error).message;
      return { skip: `could not fetch node-llama-cpp@${version}'s llama.cpp source with npm pack: ${message}` };
    }
  }
  const source = existsSync(join(cache, "SOURCE")) ? readFileSync(join(cache, "SOURCE"), "utf8").trim() : `node-llama-cpp ${version}`;
  return { dirs: llamaDirs(cache), label: source };
}

/** npm pack node-llama-cpp, clone its git bundle without a checkout, keep include/ and ggml/include/. */
export function fetchLlamaHeaders(version: string, cache: string): void {
  const work = mkdtempSync(join(tmpdir(), "gpuffi-llama-src-"));
  try {
    const quiet = { cwd: work, stdio: ["ignore", "pipe", "pipe"] as ["ignore", "pipe", "pipe"], timeout: 600_000 };
    execFileSync("npm", ["pack", `node-llama-cpp@${version}`, "--silent"], quiet);
    const tarball = readdirSync(work).find((f) => f.endsWith(".tgz"));
    if (!tarball) throw new Error("npm pack wrote no tarball");
    execFileSync("tar", ["xzf", tarball, "package/llama/gitRelease.bundle", "package/llama/llama.cpp.info.json"], quiet);
    execFileSync("git", ["clone", "-q", "--no-checkout", "package/llama/gitRelease.bundle", "src"], quiet);
    const archive = execFileSync("git", ["-C", "src", "archive", "--format=tar", "HEAD", "include", "ggml/include"], { ...quiet, maxBuffer: 256 << 20 });
    const staging = `${cache}.${process.pid}.tmp`;
    mkdirSync(staging, { recursive: true });
    execFileSync("tar", ["xf", "-", "-C", staging], { input: archive });
    const commit = execFileSync("git", ["-C", "src", "rev-parse", "--short", "HEAD"], quiet).toString().trim();
    const tag = JSON.parse(readFileSync(join(work, "package", "llama", "llama.cpp.info.json"), "utf8")).tag as string;
    writeFileSync(join(staging, "SOURCE"), `llama.cpp ${tag} (${commit}) from node-llama-cpp ${version}\n`);
    try {
      renameSync(staging, cache);
    } catch (error) {
      rmSync(staging, { recursive: true, force: true }); // another run got there first
      if (!existsSync(join(cache, "include", "llama.h"))) throw error;
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function cudaIncludeCandidates(): string[] {
  const dirs: string[] = [];
  for (const name of ["CUDA_PATH", "CUDA_HOME", "CUDA_ROOT"]) if (process.env[name]) dirs.push(join(process.env[name]!, "include"));
  dirs.push("/usr/local/cuda/include");
  try {
    const versioned = readdirSync("/usr/local").filter((d) => /^cuda-\d+(\.\d+)*$/.test(d));
    versioned.sort((a, b) => b.localeCompare(a, undefined, { numeric: true }));
    dirs.push(...versioned.map((d) => join("/usr/local", d, "include")));
  } catch {
    // no /usr/local
  }
  if (process.env.NCCL_HOME) dirs.push(join(process.env.NCCL_HOME, "include"));
  dirs.push("/usr/include");
  return [...new Set(dirs)];
}

/** The first CUDA include directory holding `header`, plus the toolkit's for what it includes. */
export function cudaHeaders(header: string): () => IncludeDirs {
  return () => {
    const candidates = cudaIncludeCandidates();
    const dir = candidates.find((d) => existsSync(join(d, header)));
    if (!dir) return { skip: `${header} not found in ${candidates.join(", ")}` };
    const toolkit = candidates.find((d) => existsSync(join(d, "cuda_runtime_api.h")));
    const dirs = [...new Set([dir, ...(toolkit ? [toolkit] : [])])];
    return { dirs, label: dirs.join(", ") };
  };
}

/** The C library's headers, from the compiler's own search path. */
export function systemHeaders(): IncludeDirs {
  return { dirs: [], label: "the system headers" };
}
