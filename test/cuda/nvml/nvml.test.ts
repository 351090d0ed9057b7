// The NVML layer against the fake libnvidia-ml: struct layouts, sessions and their refcounted
// init, the version check, every field of a GPU's status, NOT_SUPPORTED fields, the size retry of
// the process list (and the early r535 stride), typed errors, PCI bus id matching, watchGpus.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import {
  CudaRuntime,
  Nvml,
  NvmlError,
  NvmlVersionError,
  type PoolLike,
  canonicalPciBusId,
  cudaPciBusIds,
  formatGpuSnapshot,
  gpuHealth,
  gpuSnapshot,
  matchCudaOrdinals,
  watchGpus,
} from "../../../src/cuda/index.ts";
import { nvmlMemory, nvmlMemoryV2, nvmlMemoryV2Version, nvmlPciInfo, nvmlProcessInfo, nvmlProcessInfoR535, nvmlUtilization } from "../../../src/cuda/nvml/library.ts";
import { DisposedError } from "../../../src/ffi/index.ts";
import { fakeCudart } from "../fake-cudart.ts";
import { type FakeNvmlOptions, fakeNvml } from "./fake-nvml.ts";

const gib = 2 ** 30;
const notAvailable = 0xffff_ffff_ffff_ffffn;

function open(options: FakeNvmlOptions = {}) {
  const fake = fakeNvml(options);
  return { fake, nvml: Nvml.open({ library: fake.library }) };
}

const callNames = (calls: readonly { name: string }[]) => calls.map((c) => c.name);

test("struct layouts match nvml.h: sizes, offsets and nvmlMemory_v2's struct version", () => {
  assert.equal(nvmlPciInfo.size, 68);
  assert.deepEqual(nvmlPciInfo.layout.map((f) => [f.name, f.offset]), [["busIdLegacy", 0], ["domain", 16], ["bus", 20], ["device", 24], ["pciDeviceId", 28], ["pciSubSystemId", 32], ["busId", 36]]);
  assert.equal(nvmlMemory.size, 24);
  assert.equal(nvmlMemoryV2.size, 40);
  assert.deepEqual(nvmlMemoryV2.layout.map((f) => f.offset), [0, 8, 16, 24, 32]);
  assert.equal(nvmlMemoryV2Version, 0x0200_0028);
  assert.equal(nvmlUtilization.size, 8);
  assert.equal(nvmlProcessInfo.size, 24);
  assert.deepEqual(nvmlProcessInfo.layout.map((f) => f.offset), [0, 8, 16, 20]);
  assert.equal(nvmlProcessInfoR535.size, 32);
});

test("sessions share one nvmlInit_v2; the last dispose shuts NVML down; a disposed session refuses use", () => {
  const fake = fakeNvml();
  const a = Nvml.open({ library: fake.library });
  const b = Nvml.open({ library: fake.library });
  assert.equal(fake.initDepth, 1);
  assert.equal(fake.library.sessions, 2);
  a.dispose();
  assert.equal(fake.initDepth, 1, "b still holds NVML");
  assert.throws(() => a.deviceCount(), DisposedError);
  assert.throws(() => a.dispose(), DisposedError);
  assert.equal(b.deviceCount(), 2);
  b.dispose();
  assert.equal(fake.initDepth, 0);
  assert.deepEqual(callNames(fake.calls).filter((n) => n === "nvmlInit_v2" || n === "nvmlShutdown"), ["nvmlInit_v2", "nvmlShutdown"]);
  using c = Nvml.open({ library: fake.library });
  assert.equal(fake.initDepth, 1, "a new session after the last one initializes again");
  assert.equal(c.versions.driver, "575.57.08");
});

test("versions are read at open; a driver older than r510 or a library without the r510 calls is refused and released", () => {
  const { fake, nvml } = open({ driver: "570.86.15", nvml: "12.570.86.15", cudaDriver: 12080 });
  assert.deepEqual(nvml.versions, { nvml: "12.570.86.15", driver: "570.86.15", cudaDriver: "12.8" });
  assert.equal(nvml.path, "/fake/libnvidia-ml.so.1");
  nvml.dispose();
  assert.equal(fake.initDepth, 0);
  const old = fakeNvml({ driver: "470.256.02", nvml: "11.470.256.02" });
  assert.throws(() => Nvml.open({ library: old.library }), (e: unknown) => {
    assert.ok(e instanceof NvmlVersionError);
    assert.match(e.message, /470\.256\.02.*r510 or newer.*GPUFFI_NVML/);
    return true;
  });
  assert.equal(old.initDepth, 0, "the refused session shut NVML down again");
  const lacking = fakeNvml({ absent: ["nvmlDeviceGetComputeRunningProcesses_v3"] });
  assert.throws(() => Nvml.open({ library: lacking.library }), /lacks nvmlDeviceGetComputeRunningProcesses_v3/);
});

test("a GPU's status carries every field, parsed from the structs NVML fills", () => {
  const { fake, nvml } = open({
    gpus: [{}, {
      name: "NVIDIA H100 80GB HBM3",
      computeMode: 3,
      ecc: { current: 0, pending: 1 },
      processes: [
        { pid: 4242, usedGpuMemory: 3n * BigInt(gib) },
        { pid: 77, usedGpuMemory: notAvailable, gpuInstanceId: 1, computeInstanceId: 0 },
      ],
    }],
    processNames: { 4242: "/usr/bin/python3" },
  });
  using _ = nvml;
  const status = nvml.device(1).status(0);
  assert.deepEqual(status, {
    index: 1,
    cudaOrdinal: 0,
    name: "NVIDIA H100 80GB HBM3",
    uuid: fake.gpus[1]!.uuid,
    pciBusId: "00000000:28:00.0",
    memory: { total: 141 * gib, free: 139 * gib, used: 1.5 * gib, reserved: 0.5 * gib },
    utilization: { gpu: 38, memory: 12 },
    temperatureC: 41,
    powerDrawW: 123.456,
    powerLimitW: 700,
    clocks: { smMHz: 1980, memoryMHz: 3201 },
    pcie: { generation: 5, width: 16 },
    ecc: { enabled: false, pending: true },
    computeMode: "exclusiveProcess",
    processes: [
      { pid: 4242, name: "/usr/bin/python3", usedMemory: 3 * gib, gpuInstanceId: null, computeInstanceId: null },
      { pid: 77, name: null, usedMemory: null, gpuInstanceId: 1, computeInstanceId: 0 },
    ],
  });
  const pci = nvml.device(0).pci();
  assert.deepEqual(pci, { busId: "00000000:18:00.0", domain: 0, bus: 0x18, device: 0, pciDeviceId: 0x233510de, pciSubSystemId: 0x18b010de });
});

test("memory falls back to nvmlDeviceGetMemoryInfo (no reserved figure) when v2's struct version is refused or v2 is not supported", () => {
  for (const options of [{ memoryV2Mismatch: true }, { gpus: [{ unsupported: new Set(["nvmlDeviceGetMemoryInfo_v2"]) }] }]) {
    const fake = fakeNvml(options);
    using nvml = Nvml.open({ library: fake.library });
    assert.deepEqual(nvml.device(0).memory(), { total: 141 * gib, free: 139 * gib, used: 2 * gib, reserved: null });
    assert.deepEqual(callNames(fake.calls).filter((n) => n.startsWith("nvmlDeviceGetMemoryInfo")), ["nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetMemoryInfo"]);
  }
});

test("fields a GPU does not support come back as null, and the rest of the status is still read", () => {
  const unsupported = new Set([
    "nvmlDeviceGetMemoryInfo_v2", "nvmlDeviceGetMemoryInfo", "nvmlDeviceGetUtilizationRates", "nvmlDeviceGetTemperature",
    "nvmlDeviceGetPowerUsage", "nvmlDeviceGetEnforcedPowerLimit", "nvmlDeviceGetClockInfo", "nvmlDeviceGetCurrPcieLinkGeneration",
    "nvmlDeviceGetCurrPcieLinkWidth", "nvmlDeviceGetEccMode", "nvmlDeviceGetComputeMode", "nvmlDeviceGetComputeRunningProcesses_v3",
  ]);
  const { nvml } = open({ gpus: [{ unsupported }] });
  using _ = nvml;
  const status = nvml.device(0).status();
  assert.deepEqual({ ...status, name: undefined, uuid: undefined }, {
    index: 0, cudaOrdinal: null, name: undefined, uuid: undefined, pciBusId: "00000000:18:00.0",
    memory: null, utilization: null, temperatureC: null, powerDrawW: null, powerLimitW: null,
    clocks: { smMHz: null, memoryMHz: null }, pcie: { generation: null, width: null }, ecc: null, computeMode: null, processes: null,
  });
  const json = JSON.parse(JSON.stringify(status));
  assert.deepEqual(Object.keys(json).sort(), Object.keys(status).sort(), "null fields stay in the JSON");
  assert.match(formatGpuSnapshot(gpuSnapshot(nvml, { cudaBusIds: [] })), /n\/a[\s\S]*process list not supported/);
});

test("the process list asks for the size, then retries with room to spare while processes keep starting", () => {
  const procs = [{ pid: 11, usedGpuMemory: 1n }, { pid: 12, usedGpuMemory: 2n }, { pid: 13, usedGpuMemory: 3n }];
  const { fake, nvml } = open({ gpus: [{ processes: procs.slice() }] });
  using _ = nvml;
  assert.deepEqual(nvml.device(0).processes()!.map((p) => p.pid), [11, 12, 13]);
  const counts = fake.calls.filter((c) => c.name === "nvmlDeviceGetComputeRunningProcesses_v3").map((c) => [(c.args[1] as Uint32Array)[0], (c.args[2] as Uint8Array | null)?.byteLength ?? null]);
  // The recorded count array holds what NVML wrote last: 3 both times; the buffers were NULL, then 7 entries.
  assert.deepEqual(counts, [[3, null], [3, 7 * 24]]);

  let started = 0;
  const growing = open({ gpus: [{ processes: [] }, { processes: [] }], beforeProcessQuery: (gpu) => void (started++ < 3 && gpu.processes.push(...Array.from({ length: 6 }, (_, i) => ({ pid: 100 * started + i, usedGpuMemory: 0n })))) });
  using __ = growing.nvml;
  assert.equal(growing.nvml.device(0).processes()!.length, 18, "three rounds of six new processes");
  assert.deepEqual(growing.nvml.device(1).processes(), []);

  const endless = open({ beforeProcessQuery: (gpu) => void gpu.processes.push(...Array.from({ length: 10 }, () => ({ pid: 1, usedGpuMemory: 0n }))) });
  using ___ = endless.nvml;
  assert.throws(() => endless.nvml.device(0).processes(), (e: unknown) => e instanceof NvmlError && e.returnName === "NVML_ERROR_INSUFFICIENT_SIZE" && /kept growing/.test(e.message));
});

test("early r535 libraries (32-byte process entries) are told apart by their symbols and read with that stride", () => {
  const processes = [{ pid: 501, usedGpuMemory: 5n * BigInt(gib) }, { pid: 502, usedGpuMemory: 7n * BigInt(gib) }];
  const { nvml } = open({ r535ProcessInfo: true, driver: "535.54.03", gpus: [{ processes }] });
  using _ = nvml;
  assert.equal(nvml.library.processInfo.size, 32);
  assert.deepEqual(nvml.device(0).processes()!.map((p) => [p.pid, p.usedMemory]), [[501, 5 * gib], [502, 7 * gib]]);
  const current = fakeNvml();
  assert.equal(current.library.processInfo.size, 24);
});

test("a failed call throws NvmlError with the call, NVML's name and nvmlErrorString's text", () => {
  const { fake, nvml } = open();
  using _ = nvml;
  fake.failNext.set("nvmlDeviceGetTemperature", 15);
  assert.throws(() => nvml.device(1).status(), (e: unknown) => {
    assert.ok(e instanceof NvmlError);
    assert.equal(e.status, 15);
    assert.equal(e.code, "ERR_NVML_15");
    assert.equal(e.returnName, "NVML_ERROR_GPU_IS_LOST");
    assert.equal(e.description, "GPU is lost");
    assert.equal(e.call, "nvmlDeviceGetTemperature");
    assert.equal(e.message, "nvmlDeviceGetTemperature failed: NVML_ERROR_GPU_IS_LOST (15): GPU is lost (NVML device 1)");
    return true;
  });
  assert.throws(() => nvml.device(5), /nvmlDeviceGetHandleByIndex_v2 failed: NVML_ERROR_INVALID_ARGUMENT \(2\): Invalid Argument \(index 5\)/);
  const broken = fakeNvml();
  broken.failNext.set("nvmlInit_v2", 9);
  assert.throws(() => Nvml.open({ library: broken.library }), /nvmlInit_v2 failed: NVML_ERROR_DRIVER_NOT_LOADED \(9\): Driver Not Loaded/);
  assert.equal(broken.library.sessions, 0);
});

test("PCI bus ids: CUDA's and NVML's forms compare equal; NVML devices get the CUDA ordinal with their bus id", () => {
  assert.equal(canonicalPciBusId("0000:3b:00.0"), "00000000:3B:00.0");
  assert.equal(canonicalPciBusId("00000000:3B:00.0"), "00000000:3B:00.0");
  assert.equal(canonicalPciBusId("3b:00.0"), "00000000:3B:00.0");
  assert.equal(canonicalPciBusId("0001:c1:1f.3"), "00000001:C1:1F.3");
  assert.equal(canonicalPciBusId("GPU-1234"), undefined);
  // CUDA sees the second and third NVML devices, in the other order (CUDA_VISIBLE_DEVICES=2,1).
  assert.deepEqual(matchCudaOrdinals(["00000000:18:00.0", "00000000:28:00.0", "00000000:38:00.0"], ["0000:38:00.0", "0000:28:00.0"]), [null, 1, 0]);
  const { nvml } = open({ gpus: [{}, {}, {}] });
  using _ = nvml;
  assert.deepEqual(nvml.status(["0000:38:00.0", "0000:28:00.0"]).map((g) => [g.index, g.cudaOrdinal]), [[0, null], [1, 1], [2, 0]]);
  assert.equal(nvml.deviceByPciBusId("0000:28:00.0")?.index, 1);
  assert.equal(nvml.deviceByPciBusId("0000:99:00.0"), undefined);
});

test("cudaPciBusIds reads every ordinal's bus id with cudaDeviceGetPCIBusId", () => {
  const cuda = fakeCudart({ devices: 2 });
  const busIds = ["0000:38:00.0", "0000:28:00.0"];
  const getBusId = (out: Uint8Array, length: number, device: number) => {
    out.fill(0, 0, length);
    out.set(new TextEncoder().encode(busIds[device]!));
    return 0;
  };
  const base = cuda.runtime.api.symbols as unknown as Record<string, unknown>;
  const symbols = new Proxy({}, { get: (_, name: string) => (name === "cudaDeviceGetPCIBusId" ? getBusId : base[name]) });
  const runtime = new CudaRuntime({ ...cuda.runtime.api, symbols: symbols as CudaRuntime["symbols"] });
  assert.deepEqual(cudaPciBusIds(runtime), busIds);
});

test("watchGpus yields a snapshot now and every interval until aborted, with this process's pools beside NVML's figures", async () => {
  const fake = fakeNvml({ gpus: [{ processes: [{ pid: process.pid, usedGpuMemory: BigInt(gib) }] }] });
  const stats = { inUseBytes: gib, requestedBytes: gib, cachedBytes: 0, reservedBytes: gib, peakInUseBytes: gib, peakRequestedBytes: gib, peakReservedBytes: gib, limitBytes: undefined, allocations: 1, hits: 0, misses: 1, frees: 0, splits: 0, segmentsAllocated: 1, segmentsReleased: 0, pendingBlocks: 0, fragmentation: 0 };
  const pool: PoolLike = { kind: "DevicePool", context: { device: 0 }, disposed: false, stats: () => stats };
  const gone: PoolLike = { ...pool, disposed: true };
  const stop = new AbortController();
  const seen = [];
  const start = performance.now();
  for await (const snapshot of watchGpus({ interval: 0.02, signal: stop.signal, library: fake.library, cudaBusIds: ["0000:18:00.0"], pools: [pool, gone] })) {
    seen.push(snapshot);
    assert.equal(fake.initDepth, 1);
    if (seen.length === 3) stop.abort();
  }
  assert.equal(seen.length, 3);
  assert.ok(performance.now() - start >= 35, "two intervals passed between three snapshots");
  assert.equal(fake.initDepth, 0, "the session watchGpus opened is disposed");
  const [first] = seen;
  assert.equal(first!.pid, process.pid);
  assert.deepEqual(first!.pools, [{ cudaOrdinal: 0, kind: "DevicePool", stats }]);
  assert.equal(first!.gpus[0]!.cudaOrdinal, 0);
  const text = formatGpuSnapshot(first!);
  assert.match(text, /^NVML 12\.575\.57\.08, driver 575\.57\.08 \(CUDA 12\.9\)/);
  assert.match(text, new RegExp(`process ${process.pid}: 1\\.00 GiB \\(this process\\)\\n\\s+DevicePool \\(device 0\\): in use 1\\.00 GiB`));

  // Aborting while it waits ends the iteration at once, not after the interval.
  const late = new AbortController();
  const iterator = watchGpus({ interval: 60, signal: late.signal, library: fake.library, cudaBusIds: [] });
  await iterator.next();
  const waiting = iterator.next();
  late.abort();
  assert.deepEqual(await waiting, { done: true, value: undefined });
  assert.equal(fake.initDepth, 0);
  await assert.rejects(watchGpus({ interval: 0 }).next(), /interval must be a number of seconds > 0/);
});

test("gpuHealth reports a missing or failing NVML instead of throwing", () => {
  const missing = gpuHealth({ open: () => Nvml.open({ path: "/nonexistent/libnvidia-ml.so.1" }) });
  assert.equal(missing.found, false);
  assert.match(missing.error!, /libnvidia-ml/);
  const fake = fakeNvml();
  fake.failNext.set("nvmlDeviceGetCount_v2", 999);
  const failing = gpuHealth({ open: () => Nvml.open({ library: fake.library }), cudaBusIds: [] });
  assert.equal(failing.found, true);
  assert.match(failing.error!, /nvmlDeviceGetCount_v2 failed: NVML_ERROR_UNKNOWN \(999\): Unknown Error/);
  assert.equal(fake.initDepth, 0);
});
