// NVML on a real GPU (skips without a GPU or libnvidia-ml): a 1 GiB allocation through a gpuffi
// DevicePool shows in NVML's used memory and in this process's entry of the process list; NVML's
// devices match CUDA's by bus id and UUID; doctor's JSON and `gpuffi top --json` carry every field.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { CudaContext, DevicePool, Nvml, canonicalPciBusId, formatGpuSnapshot, gpuSnapshot, watchGpus } from "../../../src/cuda/index.ts";
import { doctorReport } from "../../../src/cli/doctor.ts";
import { main } from "../../../src/cli/main.ts";
import { probeGpu } from "../gpu-probe.ts";

const gib = 2 ** 30;
const mib = 2 ** 20;

function probeNvml(): string | undefined {
  try {
    Nvml.open().dispose();
    return undefined;
  } catch (error) {
    return `NVML is not usable here (${(error as Error).message.split("\n")[0]})`;
  }
}

const skip = probeGpu().reason ?? probeNvml();
const statusKeys = ["clocks", "computeMode", "cudaOrdinal", "ecc", "index", "memory", "name", "pciBusId", "pcie", "powerDrawW", "powerLimitW", "processes", "temperatureC", "utilization", "uuid"];

test("a 1 GiB DevicePool allocation raises NVML's used memory by 1 GiB (±64 MiB); the process list names this process", () => {
  using nvml = Nvml.open();
  using context = CudaContext.create();
  using pool = new DevicePool(context);
  const device = nvml.deviceByPciBusId(context.info().pciBusId);
  assert.ok(device, `NVML has no device at CUDA device 0's bus id ${context.info().pciBusId}`);
  assert.equal(device.uuid(), context.info().uuid);
  {
    // CUDA sets up its own state on the first allocation: measure after it.
    using warm = pool.alloc(mib);
    warm.fill(0);
  }
  context.synchronize();
  const before = device.memory()!.used;
  using big = pool.alloc(gib);
  big.fill(1);
  context.synchronize();
  const after = device.memory()!.used;
  const rise = after - before;
  assert.ok(Math.abs(rise - gib) <= 64 * mib, `NVML's used memory rose by ${(rise / mib).toFixed(1)} MiB (before ${before}, after ${after})`);
  const processes = device.processes();
  assert.ok(processes !== null, "this GPU supports the process list");
  const ours = processes.find((p) => p.pid === process.pid);
  assert.ok(ours, `pid ${process.pid} is not in NVML's list ${JSON.stringify(processes.map((p) => p.pid))} (another PID namespace?)`);
  if (ours.usedMemory !== null) assert.ok(ours.usedMemory >= gib, `NVML charges this process ${ours.usedMemory} bytes`);
  const snapshot = gpuSnapshot(nvml, { pools: [pool] });
  assert.equal(snapshot.pools[0]!.stats.inUseBytes >= gib, true);
  const text = formatGpuSnapshot(snapshot);
  assert.match(text, new RegExp(`process ${process.pid}.*\\(this process\\)\\n\\s+DevicePool \\(device ${context.device}\\): in use 1\\.00 GiB`));
  console.log(text);
}, { skip, timeout: 60_000 });

test("doctor's JSON carries every NVML field, matched to the CUDA devices by bus id", async () => {
  const report = doctorReport();
  assert.equal(report.nvml.found, true, report.nvml.error);
  assert.equal(report.nvml.error, undefined);
  assert.ok(report.nvml.gpus.length >= report.devices.length);
  for (const device of report.devices) {
    const gpu = report.nvml.gpus.find((g) => g.cudaOrdinal === device.ordinal);
    assert.ok(gpu, `no NVML device for CUDA ${device.ordinal}`);
    assert.equal(canonicalPciBusId(gpu.pciBusId), canonicalPciBusId(device.pciBusId));
    assert.equal(gpu.uuid, device.uuid);
    assert.equal(gpu.name, device.name);
    // A data-centre GPU supports every figure.
    for (const key of ["memory", "utilization", "temperatureC", "powerDrawW", "powerLimitW", "ecc", "computeMode", "processes"] as const) {
      assert.notEqual(gpu[key], null, `${key} of ${gpu.name}`);
    }
    assert.ok(gpu.memory!.total >= device.totalMemory - 64 * mib && gpu.memory!.total <= device.totalMemory + gib);
    assert.ok(gpu.clocks.smMHz! > 0 && gpu.clocks.memoryMHz! > 0 && gpu.pcie.generation! >= 1 && gpu.pcie.width! >= 1);
  }
  const printed: string[] = [];
  assert.equal(await main(["doctor", "--json"], { out: (t) => void printed.push(t), err: (t) => void printed.push(t) }), 0);
  const json = JSON.parse(printed.join("\n"));
  for (const gpu of json.nvml.gpus) assert.deepEqual(Object.keys(gpu).sort(), statusKeys);
}, { skip, timeout: 60_000 });

test("watchGpus and gpuffi top --json read the real NVML", async () => {
  const stop = new AbortController();
  let n = 0;
  for await (const snapshot of watchGpus({ interval: 0.1, signal: stop.signal })) {
    assert.ok(snapshot.gpus.length >= 1);
    if (++n === 2) stop.abort();
  }
  const printed: string[] = [];
  assert.equal(await main(["top", "--once", "--json"], { out: (t) => void printed.push(t), err: (t) => void printed.push(t) }), 0);
  assert.equal(printed.length, 1);
  const snapshot = JSON.parse(printed[0]!);
  assert.deepEqual(Object.keys(snapshot.gpus[0]).sort(), statusKeys);
}, { skip, timeout: 60_000 });
