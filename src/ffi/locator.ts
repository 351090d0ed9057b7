// Where shared libraries are looked for, in order: the caller's explicit path, the library's
// environment variable, the library's own well-known places, then the places every library can
// be (LD_LIBRARY_PATH, conda, pip's nvidia wheels, ldconfig's cache, the linker's own search).
// Each candidate is yielded lazily with where it came from, so a failure can list them all.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

export type Environment = Readonly<Record<string, string | undefined>>;

/** A place to look in, and why gpuffi looks there. */
export interface SearchDir {
  readonly dir: string;
  readonly source: string;
}

/** How to find one library. */
export interface LibrarySpec {
  /** Name for messages, e.g. `libcudart`. */
  readonly name: string;
  /** File names in order of preference, e.g. `["libcudart.so.13", "libcudart.so.12"]`. */
  readonly sonames: readonly string[];
  /** Environment variable naming the file or its directory, e.g. `GPUFFI_CUDART`. */
  readonly envVar: string;
  /** The library's own well-known directories, searched before the generic ones. */
  readonly searchDirs?: (env: Environment) => Iterable<SearchDir>;
  /** What to tell a user who has none of them. */
  readonly hint: string;
}

export interface LocateOptions {
  /** A file or a directory to use instead of searching. A failure here is final. */
  readonly path?: string;
  /** The environment to read (default: the process's). */
  readonly env?: Environment;
}

export interface Candidate {
  readonly path: string;
  readonly source: string;
  /** Set when the candidate was ruled out without opening it. */
  readonly rejected?: string;
  /** The user named this path: if it fails, the search stops there. */
  readonly explicit?: boolean;
}

function* inDirectory(dir: string, spec: LibrarySpec, source: string, explicit = false): Generator<Candidate> {
  const files = spec.sonames.map((soname) => join(dir, soname)).filter((file) => existsSync(file));
  if (files.length === 0) {
    yield { path: join(dir, `{${spec.sonames.join(",")}}`), source, rejected: existsSync(dir) ? "no such file in this directory" : "directory does not exist", explicit };
  }
  for (const path of files) yield { path, source, explicit };
}

function* explicitPath(path: string, spec: LibrarySpec, source: string): Generator<Candidate> {
  if (!existsSync(path)) yield { path, source, rejected: "does not exist", explicit: true };
  else if (statSync(path).isDirectory()) yield* inDirectory(path, spec, source, true);
  else yield { path, source, explicit: true };
}

/** Sub-directories of `parent` whose names match, newest version first (cuda-13.0 before cuda-12.4). */
export function versionedDirs(parent: string, pattern: RegExp): string[] {
  if (!existsSync(parent)) return [];
  const numbers = (name: string) => (name.match(/\d+/g) ?? []).map(Number);
  return readdirSync(parent)
    .filter((name) => pattern.test(name))
    .sort((a, b) => {
      const [x, y] = [numbers(a), numbers(b)];
      for (let i = 0; i < Math.max(x.length, y.length); i++) if ((y[i] ?? -1) !== (x[i] ?? -1)) return (y[i] ?? -1) - (x[i] ?? -1);
      return a.localeCompare(b);
    })
    .map((name) => join(parent, name));
}

function* pythonSitePackages(env: Environment): Generator<SearchDir> {
  const prefixes: [string, string][] = [];
  if (env.VIRTUAL_ENV) prefixes.push([env.VIRTUAL_ENV, "VIRTUAL_ENV"]);
  if (env.CONDA_PREFIX) prefixes.push([env.CONDA_PREFIX, "CONDA_PREFIX"]);
  prefixes.push([join(env.HOME ?? homedir(), ".local"), "pip --user"], ["/usr/local", "pip (system)"], ["/usr", "pip (system)"]);
  for (const [prefix, source] of prefixes) {
    for (const python of versionedDirs(join(prefix, "lib"), /^python3(\.\d+)?$/)) {
      for (const site of ["site-packages", "dist-packages"]) {
        const nvidia = join(python, site, "nvidia");
        for (const pkg of existsSync(nvidia) ? readdirSync(nvidia).sort() : []) yield { dir: join(nvidia, pkg, "lib"), source: `${source}: pip nvidia-* wheel` };
      }
    }
  }
}

/**
 * `node_modules/<pkg>/<subdir>` in every directory from `start` (default: the working directory)
 * up to the root, then from gpuffi's own installation up: where npm puts prebuilt binaries
 * (e.g. llama.cpp's in `@node-llama-cpp/linux-x64-cuda`).
 */
export function* nodeModulesDirs(pkg: string, subdir: string, start: string = process.cwd()): Generator<SearchDir> {
  const seen = new Set<string>();
  for (const from of [start, dirname(fileURLToPath(import.meta.url))]) {
    for (let dir = from; !seen.has(dir); dir = dirname(dir)) {
      seen.add(dir);
      const candidate = join(dir, "node_modules", pkg, subdir);
      if (existsSync(candidate)) yield { dir: candidate, source: `npm package ${pkg}` };
    }
  }
}

let ldconfigCache: Map<string, string[]> | undefined;
/** `ldconfig -p`: soname → paths in the linker cache. Read once per process. */
function ldconfigEntries(): Map<string, string[]> {
  if (ldconfigCache) return ldconfigCache;
  ldconfigCache = new Map();
  for (const ldconfig of ["/sbin/ldconfig", "/usr/sbin/ldconfig", "ldconfig"]) {
    let output: string;
    try {
      output = execFileSync(ldconfig, ["-p"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    } catch {
      continue;
    }
    for (const match of output.matchAll(/^\s+(\S+) \(([^)]*)\) => (\S+)$/gm)) {
      const [, soname, arch, path] = match;
      if (!arch!.includes("x86-64") && !arch!.includes("AArch64") && process.arch !== "ia32") continue;
      ldconfigCache.set(soname!, [...(ldconfigCache.get(soname!) ?? []), path!]);
    }
    break;
  }
  return ldconfigCache;
}

/** Every candidate for `spec`, in search order, each path at most once. */
export function* candidatePaths(spec: LibrarySpec, options: LocateOptions = {}): Generator<Candidate> {
  const env = options.env ?? process.env;
  if (options.path !== undefined) {
    yield* explicitPath(options.path, spec, "path option");
    return;
  }
  const fromEnv = env[spec.envVar];
  if (fromEnv) {
    yield* explicitPath(fromEnv, spec, `$${spec.envVar}`);
    return;
  }
  const seen = new Set<string>();
  function* dirs(): Generator<SearchDir> {
    yield* spec.searchDirs?.(env) ?? [];
    for (const dir of (env.LD_LIBRARY_PATH ?? "").split(":").filter(Boolean)) yield { dir, source: "LD_LIBRARY_PATH" };
    if (env.CONDA_PREFIX) yield { dir: join(env.CONDA_PREFIX, "lib"), source: "conda ($CONDA_PREFIX/lib)" };
    yield* pythonSitePackages(env);
  }
  for (const { dir, source } of dirs()) {
    for (const candidate of inDirectory(dir, spec, source)) {
      if (seen.has(candidate.path)) continue;
      seen.add(candidate.path);
      yield candidate;
    }
  }
  for (const soname of spec.sonames) {
    for (const path of ldconfigEntries().get(soname) ?? []) {
      if (seen.has(path)) continue;
      seen.add(path);
      yield { path, source: "ldconfig -p" };
    }
  }
  // Last, the bare names: the dynamic linker's own search (RUNPATH, /etc/ld.so.conf, /lib, /usr/lib).
  for (const soname of spec.sonames) yield { path: soname, source: "dynamic linker search" };
}
