// GPU statuses as text: one aligned row per GPU, its processes and this process's pools under it.
// `gpuffi top` redraws it, `gpuffi doctor` prints it once; a program can print it from a snapshot.
import { formatBytes, formatPoolStats } from "../pool/stats.ts";
import type { GpuStatus } from "./nvml.ts";
import type { GpuSnapshot, PoolReport } from "./watch.ts";

const na = "n/a";
const heading = ["GPU", "CUDA", "NAME", "BUS ID", "MEMORY USED / TOTAL", "UTIL GPU/MEM", "TEMP", "POWER / LIMIT", "SM / MEM CLOCK", "PCIE", "ECC", "COMPUTE MODE"];

function orNa<T>(value: T | null, show: (value: T) => string): string {
  return value === null ? na : show(value);
}

function row(gpu: GpuStatus): string[] {
  const watts = (w: number | null) => orNa(w, (v) => v.toFixed(0));
  const mhz = (f: number | null) => orNa(f, String);
  return [
    String(gpu.index),
    orNa(gpu.cudaOrdinal, String),
    gpu.name,
    gpu.pciBusId,
    orNa(gpu.memory, (m) => `${formatBytes(m.used)} / ${formatBytes(m.total)}`),
    orNa(gpu.utilization, (u) => `${u.gpu}% / ${u.memory}%`),
    orNa(gpu.temperatureC, (t) => `${t} °C`),
    gpu.powerDrawW === null && gpu.powerLimitW === null ? na : `${watts(gpu.powerDrawW)} / ${watts(gpu.powerLimitW)} W`,
    gpu.clocks.smMHz === null && gpu.clocks.memoryMHz === null ? na : `${mhz(gpu.clocks.smMHz)} / ${mhz(gpu.clocks.memoryMHz)} MHz`,
    gpu.pcie.generation === null && gpu.pcie.width === null ? na : `gen${orNa(gpu.pcie.generation, String)} x${orNa(gpu.pcie.width, String)}`,
    orNa(gpu.ecc, (e) => (e.enabled ? "on" : "off") + (e.pending !== e.enabled ? ` (${e.pending ? "on" : "off"} after reboot)` : "")),
    gpu.computeMode ?? na,
  ];
}

function details(gpu: GpuStatus, pid: number | undefined, pools: readonly PoolReport[]): string[] {
  const lines = gpu.processes === null
    ? ["process list not supported"]
    : gpu.processes.map((p) => `process ${p.pid}${p.name ? ` ${p.name}` : ""}: ${orNa(p.usedMemory, formatBytes)}${p.pid === pid ? " (this process)" : ""}`);
  for (const pool of pools) if (pool.cudaOrdinal === gpu.cudaOrdinal) lines.push(`${pool.kind} (device ${pool.cudaOrdinal}): ${formatPoolStats(pool.stats)}`);
  return lines;
}

/**
 * The GPUs as a table, each followed by its processes (this process marked when `pid` is given)
 * and the given pools of its CUDA device.
 */
export function formatGpuTable(gpus: readonly GpuStatus[], options: { readonly pid?: number; readonly pools?: readonly PoolReport[] } = {}): string {
  const rows = [heading, ...gpus.map(row)];
  const widths = heading.map((_, column) => Math.max(...rows.map((cells) => cells[column]!.length)));
  const line = (cells: readonly string[]) => cells.map((cell, column) => cell.padEnd(widths[column]!)).join("  ").trimEnd();
  const out = [line(heading)];
  gpus.forEach((gpu, i) => {
    out.push(line(rows[i + 1]!));
    for (const detail of details(gpu, options.pid, options.pools ?? [])) out.push(`      ${detail}`);
  });
  return out.join("\n");
}

/** A snapshot with its heading: NVML's and the driver's versions and the time. */
export function formatGpuSnapshot(snapshot: GpuSnapshot): string {
  const { versions } = snapshot;
  return `NVML ${versions.nvml}, driver ${versions.driver} (CUDA ${versions.cudaDriver})   ${snapshot.time}\n` +
    (snapshot.gpus.length === 0 ? "no GPUs" : formatGpuTable(snapshot.gpus, { pid: snapshot.pid, pools: snapshot.pools }));
}
