// CUDA versions, the runtime → driver compatibility table, and the verdict that decides whether
// a loaded libcudart can run on the installed driver and meets the caller's minimums.
import { readFileSync } from "node:fs";
import { CudaArgumentError } from "./errors.ts";

/** A CUDA version as major.minor, e.g. 12.4. */
export interface CudaVersion {
  readonly major: number;
  readonly minor: number;
}

/** Decodes the integer that cudaRuntimeGetVersion/cudaDriverGetVersion return (12040 → 12.4). */
export function decodeCudaVersion(encoded: number): CudaVersion {
  return { major: Math.floor(encoded / 1000), minor: Math.floor((encoded % 1000) / 10) };
}

/** Parses "12.2" (or "12") as a caller's minimum; throws CudaArgumentError on anything else. */
export function parseCudaVersion(text: string, what: string): CudaVersion {
  const match = typeof text === "string" ? /^(\d+)(?:\.(\d+))?$/.exec(text.trim()) : null;
  if (!match) throw new CudaArgumentError(`${what}: expected a CUDA version such as "12.2", got ${JSON.stringify(text)}`);
  return { major: Number(match[1]), minor: Number(match[2] ?? 0) };
}

export function formatCudaVersion(version: CudaVersion): string {
  return `${version.major}.${version.minor}`;
}

export function compareCudaVersions(a: CudaVersion, b: CudaVersion): number {
  return a.major - b.major || a.minor - b.minor;
}

// Minimum Linux x86_64 driver for each CUDA runtime release (its GA build). Source: NVIDIA CUDA
// Toolkit release notes, table "CUDA Toolkit and Corresponding Driver Versions"
// (https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html). There was no CUDA 12.7.
export const minimumDriverForRuntime: Readonly<Record<string, string>> = {
  "12.0": "525.60.13",
  "12.1": "530.30.02",
  "12.2": "535.54.03",
  "12.3": "545.23.06",
  "12.4": "550.54.14",
  "12.5": "555.42.02",
  "12.6": "560.28.03",
  "12.8": "570.26",
  "12.9": "575.51.03",
  "13.0": "580.65.06",
};

// Minor-version compatibility (same release notes, table "CUDA Toolkit and Minimum Required
// Driver Version for CUDA Minor Version Compatibility"): any 12.x runtime runs on a driver of
// the 12.0 family (≥ 525), any 13.x on ≥ 580, with limited features: PTX newer than the driver
// cannot be JIT-compiled and APIs newer than the driver return cudaErrorCallRequiresNewerDriver.
export const minorCompatibilityDriver: Readonly<Record<number, string>> = { 12: "525.60.13", 13: "580.65.06" };

/** The NVIDIA kernel module's version (e.g. "580.65.06"), from /proc; undefined without a driver. */
export function linuxDriverVersion(procFile = "/proc/driver/nvidia/version"): string | undefined {
  try {
    return /Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)/.exec(readFileSync(procFile, "utf8"))?.[1];
  } catch {
    return undefined;
  }
}

export interface CompatibilityInput {
  /** The loaded libcudart's version. */
  readonly runtime: CudaVersion;
  /** The newest CUDA version the driver supports; undefined when no driver is installed. */
  readonly driver: CudaVersion | undefined;
  /** The kernel module version, for messages only. */
  readonly linuxDriver?: string | undefined;
  readonly libraryPath?: string | undefined;
  readonly requireRuntime?: CudaVersion | undefined;
  readonly requireDriver?: CudaVersion | undefined;
  /** Accept a driver older than the runtime within the same major version (default true). */
  readonly minorVersionCompatibility?: boolean | undefined;
}

export interface CompatibilityVerdict {
  /** "full": the driver supports the runtime's version; "minor": it runs under minor-version compatibility. */
  readonly level: "full" | "minor" | "incompatible";
  readonly ok: boolean;
  /** Why it is incompatible, each with what to install. */
  readonly problems: readonly string[];
  /** Things that work but that the user should know. */
  readonly warnings: readonly string[];
}

function driverAdvice(runtime: CudaVersion): string {
  const key = formatCudaVersion(runtime);
  const exact = minimumDriverForRuntime[key];
  const family = minorCompatibilityDriver[runtime.major];
  const compat = family && family !== exact ? `, or at least ${family} for CUDA ${runtime.major}.x minor-version compatibility` : "";
  if (exact) return `install NVIDIA driver ≥ ${exact} (CUDA ${key}'s own driver)${compat}`;
  return `install an NVIDIA driver that supports CUDA ${key} (see the CUDA ${key} release notes)`;
}

/**
 * The rule: the driver's CUDA version must be at least the runtime's, or — when
 * `minorVersionCompatibility` is on (the default) — of the same major version, which NVIDIA
 * supports with limited features. Then both must meet the caller's minimums.
 */
export function checkCompatibility(input: CompatibilityInput): CompatibilityVerdict {
  const problems: string[] = [];
  const warnings: string[] = [];
  const rt = formatCudaVersion(input.runtime);
  const lib = `libcudart ${rt}${input.libraryPath ? ` (${input.libraryPath})` : ""}`;
  const drv = input.driver && `the installed driver${input.linuxDriver ? ` ${input.linuxDriver}` : ""} (supports CUDA ${formatCudaVersion(input.driver)})`;
  let level: CompatibilityVerdict["level"] = "full";
  if (!input.driver || input.driver.major === 0) {
    problems.push(`${lib} needs an NVIDIA driver, and none is installed (cudaDriverGetVersion reports 0): ${driverAdvice(input.runtime)}.`);
  } else if (compareCudaVersions(input.driver, input.runtime) < 0) {
    if (input.driver.major === input.runtime.major && input.minorVersionCompatibility !== false) {
      level = "minor";
      warnings.push(
        `${lib} runs on ${drv} under CUDA minor-version compatibility: features newer than CUDA ${formatCudaVersion(input.driver)} ` +
          `and JIT compilation of newer PTX are unavailable; for full support ${driverAdvice(input.runtime)}.`,
      );
    } else {
      problems.push(
        `${lib} is newer than ${drv}: ${driverAdvice(input.runtime)}` +
          `${input.driver.major < input.runtime.major ? `, or use a CUDA ${input.driver.major}.x runtime (set GPUFFI_CUDART to its libcudart.so.${input.driver.major})` : ""}.`,
      );
    }
  }
  if (input.requireRuntime && compareCudaVersions(input.runtime, input.requireRuntime) < 0) {
    problems.push(`requireRuntime asks for CUDA runtime ≥ ${formatCudaVersion(input.requireRuntime)}, but the loaded ${lib} is older: install CUDA ${formatCudaVersion(input.requireRuntime)} or newer and point GPUFFI_CUDART at its libcudart.`);
  }
  if (input.requireDriver && input.driver && input.driver.major > 0 && compareCudaVersions(input.driver, input.requireDriver) < 0) {
    problems.push(`requireDriver asks for a driver supporting CUDA ≥ ${formatCudaVersion(input.requireDriver)}, but ${drv} is older: ${driverAdvice(input.requireDriver)}.`);
  }
  if (problems.length > 0) level = "incompatible";
  return { level, ok: problems.length === 0, problems, warnings };
}
