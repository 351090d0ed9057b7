// `gpuffi doctor [--json]`: what gpuffi finds on this machine — JS runtime, libcudart and the
// driver with their versions and paths, the devices, cuBLAS and llama.cpp — and a verdict on
// whether CUDA work can run. Exit code 0 when it can, 1 when it cannot (incompatible versions,
// no driver, no GPU). It never throws for a missing GPU: it says so.
import { type LibrarySpec, candidatePaths, runtimeVersion } from "../ffi/index.ts";
import {
  type DeviceInfo,
  type GpuHealth,
  type Nvml,
  checkCompatibility,
  cudaRuntime,
  cudartSpec,
  deviceInfo,
  formatCudaVersion,
  formatGpuTable,
  gpuHealth,
  libcudaSpec,
  linuxDriverVersion,
  nvmlSpec,
} from "../cuda/index.ts";
import { existsSync } from "node:fs";
import { llamaSpec } from "../llama/bindings.ts";
import { cublasSpec } from "../cuda/blas/cublas-library.ts";
import { ncclSpec } from "../cuda/nccl/nccl-library.ts";
import { type PeerTopology, formatPeerTopology, peerTopology } from "../cuda/nccl/peer.ts";
import { type CliIO, type Command, parseCommandArgs, toJson } from "./command.ts";


export interface LibraryReport {
  readonly found: boolean;
  readonly path?: string;
  readonly source?: string;
  readonly version?: string;
  readonly error?: string;
}

export interface DoctorReport {
  readonly runtime: string;
  readonly cudart: LibraryReport;
  readonly driver: { readonly cudaVersion?: string; readonly linuxVersion?: string; readonly libcuda: LibraryReport };
  readonly cublas: LibraryReport;
  readonly nccl: LibraryReport;
  readonly llama: LibraryReport;
  readonly devices: readonly DeviceInfo[];
  /** Which GPUs can reach which directly (null with fewer than two). */
  readonly peers: PeerTopology | null;
  /** NVML: every GPU's live state (memory, utilization, power, clocks, processes…), or why it is missing. */
  readonly nvml: GpuHealth;
  readonly verdict: { readonly ok: boolean; readonly level: string; readonly problems: readonly string[]; readonly warnings: readonly string[] };
}

/** The first candidate file that exists, without opening it (doctor only locates cuBLAS, NCCL and llama.cpp: opening cuBLAS alone costs ~100 ms). */
function locate(spec: LibrarySpec): LibraryReport {
  for (const candidate of candidatePaths(spec)) {
    if (candidate.rejected) continue;
    if (candidate.path.includes("/") ? existsSync(candidate.path) : false) return { found: true, path: candidate.path, source: candidate.source };
  }
  return { found: false };
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** `nvml` opens the NVML session to report (default: the real libnvidia-ml). */
export function doctorReport(options: { readonly nvml?: () => Nvml } = {}): DoctorReport {
  const report = {
    runtime: runtimeVersion(),
    cublas: locate(cublasSpec),
    nccl: locate(ncclSpec),
    llama: locate(llamaSpec),
    driver: { libcuda: locate(libcudaSpec), linuxVersion: linuxDriverVersion() } as DoctorReport["driver"],
  };
  let runtime;
  try {
    runtime = cudaRuntime();
  } catch (error) {
    return {
      ...report,
      cudart: { found: false, error: message(error) },
      devices: [],
      peers: null,
      nvml: gpuHealth({ open: options.nvml, cudaBusIds: [] }),
      verdict: { ok: false, level: "incompatible", problems: [`libcudart could not be loaded: ${message(error).split("\n")[0]} (${cudartSpec.hint})`], warnings: [] },
    };
  }
  const runtimeCuda = runtime.runtimeVersion();
  const driverCuda = runtime.driverVersion();
  const verdict = checkCompatibility({ runtime: runtimeCuda, driver: driverCuda, linuxDriver: report.driver.linuxVersion, libraryPath: runtime.path });
  const problems = [...verdict.problems];
  const devices: DeviceInfo[] = [];
  if (verdict.ok) {
    try {
      const count = runtime.deviceCount();
      for (let device = 0; device < count; device++) devices.push(deviceInfo(runtime, device));
    } catch (error) {
      problems.push(message(error));
    }
    if (devices.length === 0 && problems.length === 0) problems.push("no CUDA device is visible to this process");
  }
  let peers: PeerTopology | null = null;
  if (devices.length >= 2) {
    try {
      peers = peerTopology(runtime);
    } catch (error) {
      problems.push(`peer access could not be queried: ${message(error)}`);
    }
  }
  return {
    ...report,
    cudart: { found: true, path: runtime.path, version: formatCudaVersion(runtimeCuda) },
    driver: { ...report.driver, ...(driverCuda ? { cudaVersion: formatCudaVersion(driverCuda) } : {}) },
    devices,
    peers,
    nvml: gpuHealth({ open: options.nvml, cudaBusIds: devices.map((d) => d.pciBusId) }),
    verdict: { ok: problems.length === 0, level: problems.length === 0 ? verdict.level : "incompatible", problems, warnings: verdict.warnings },
  };
}

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

function library(name: string, lib: LibraryReport): string {
  if (!lib.found) return `${name}: not found${lib.error ? ` (${lib.error.split("\n")[0]})` : ""}`;
  return `${name}: ${lib.version ? `${lib.version} ` : ""}${lib.path}${lib.source ? `  [${lib.source}]` : ""}`;
}

export function describe(report: DoctorReport): string {
  const lines = [
    `runtime: ${report.runtime}`,
    library("libcudart", report.cudart),
    `driver: ${report.driver.linuxVersion ?? "no NVIDIA kernel module found"}${report.driver.cudaVersion ? ` (supports CUDA ${report.driver.cudaVersion})` : ""}`,
    library("libcuda", report.driver.libcuda),
    library("libcublas", report.cublas),
    library("libnccl", report.nccl),
    library("libllama", report.llama),
    `devices: ${report.devices.length === 0 ? "none" : ""}`,
    ...report.devices.map((d) =>
      `  ${d.ordinal}: ${d.name}, compute ${d.computeCapability.major}.${d.computeCapability.minor}, ${gib(d.totalMemory)}, ${d.multiProcessorCount} SMs, ${d.pciBusId}, ${d.uuid}`),
    ...describeNvml(report.nvml),
    ...(report.peers ? ["peer access:", formatPeerTopology(report.peers)] : []),
    ...report.verdict.warnings.map((w) => `warning: ${w}`),
    ...report.verdict.problems.map((p) => `problem: ${p}`),
    report.verdict.ok ? `verdict: OK${report.verdict.level === "minor" ? " (minor-version compatibility)" : ""}` : "verdict: CUDA work cannot run here",
  ];
  return lines.join("\n");
}

function describeNvml(nvml: GpuHealth): string[] {
  // A one-line error (a driver too old) says it all; the locator's list of tried paths does not fit here.
  if (!nvml.versions) return [`nvml: not found (${nvml.error && !nvml.error.includes("\n") ? nvml.error : nvmlSpec.hint})`];
  return [
    `nvml: ${nvml.versions.nvml} (driver ${nvml.versions.driver}) ${nvml.path}`,
    ...(nvml.error ? [`  error: ${nvml.error}`] : []),
    ...(nvml.gpus.length > 0 ? [formatGpuTable(nvml.gpus)] : []),
  ];
}

const usage = `usage: gpuffi doctor [--json]

Reports the JS runtime, where libcudart, libcuda, libcublas and libllama were found and their
versions, the GPUs (and from NVML their memory, utilization, power, clocks and processes),
and whether CUDA work can run here. Exit code 0 when it can, 1 when not.
  --json   the same report as JSON`;

export const doctorCommand: Command = {
  name: "doctor",
  synopsis: "doctor [--json]",
  summary: "check the CUDA runtime, driver, libraries and GPUs; exit 1 if CUDA work cannot run",
  usage,
  async run(argv: string[], io: CliIO): Promise<number> {
    const { values } = parseCommandArgs(argv, { json: "boolean" }, []);
    const report = doctorReport();
    io.out(values.json ? toJson(report) : describe(report));
    return report.verdict.ok ? 0 : 1;
  },
};
