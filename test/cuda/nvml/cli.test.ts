// `gpuffi top` and the NVML part of `gpuffi doctor`, on the fake libnvidia-ml: text and JSON,
// one refresh and several, argument errors, and what happens on a machine without NVML.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { Nvml } from "../../../src/cuda/index.ts";
import { main } from "../../../src/cli/main.ts";
import { runTop } from "../../../src/cli/top.ts";
import { describe, doctorReport } from "../../../src/cli/doctor.ts";
import { fakeNvml } from "./fake-nvml.ts";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (text: string) => void out.push(text), err: (text: string) => void err.push(text) } };
}

const processes = [{ pid: 4242, usedGpuMemory: 3n * 2n ** 30n }];
const statusKeys = ["clocks", "computeMode", "cudaOrdinal", "ecc", "index", "memory", "name", "pciBusId", "pcie", "powerDrawW", "powerLimitW", "processes", "temperatureC", "utilization", "uuid"];

test("gpuffi top --once prints one table: a row per GPU with every figure, its processes under it", async () => {
  const fake = fakeNvml({ gpus: [{}, { processes, unsupported: new Set(["nvmlDeviceGetEccMode"]) }], processNames: { 4242: "python3" } });
  using nvml = Nvml.open({ library: fake.library });
  const { out, io } = capture();
  assert.equal(await runTop({ interval: 1, json: false, once: true }, io, { nvml, cudaBusIds: ["0000:28:00.0"], redraw: false }), 0);
  assert.equal(out.length, 1);
  const lines = out[0]!.split("\n");
  assert.match(lines[0]!, /^NVML 12\.575\.57\.08, driver 575\.57\.08 \(CUDA 12\.9\)   \d{4}-\d\d-\d\dT/);
  assert.match(lines[1]!, /^GPU\s+CUDA\s+NAME\s+BUS ID\s+MEMORY USED \/ TOTAL\s+UTIL GPU\/MEM\s+TEMP\s+POWER \/ LIMIT\s+SM \/ MEM CLOCK\s+PCIE\s+ECC\s+COMPUTE MODE$/);
  assert.match(lines[2]!, /^0\s+n\/a\s+NVIDIA H200\s+00000000:18:00\.0\s+1\.50 GiB \/ 141\.00 GiB\s+37% \/ 12%\s+41 °C\s+123 \/ 700 W\s+1980 \/ 3201 MHz\s+gen5 x16\s+on\s+default$/);
  assert.match(lines[3]!, /^1\s+0\s+NVIDIA H200\s+00000000:28:00\.0 .* n\/a\s+default$/);
  assert.equal(lines[4], "      process 4242 python3: 3.00 GiB");
  assert.equal(lines[2]!.indexOf("00000000:18"), lines[1]!.indexOf("BUS ID"), "columns are aligned");
});

test("gpuffi top --json prints one snapshot object per line per refresh, until stopped", async () => {
  const fake = fakeNvml({ gpus: [{ processes }] });
  using nvml = Nvml.open({ library: fake.library });
  const stop = new AbortController();
  const out: string[] = [];
  const io = { out: (text: string) => void (out.push(text), out.length === 3 && stop.abort()), err: () => {} };
  assert.equal(await runTop({ interval: 0.01, json: true, once: false }, io, { nvml, cudaBusIds: [], signal: stop.signal }), 0);
  assert.equal(out.length, 3);
  for (const line of out) {
    assert.ok(!line.includes("\n"), "one line each");
    const snapshot = JSON.parse(line);
    assert.deepEqual(Object.keys(snapshot).sort(), ["gpus", "pid", "pools", "time", "versions"]);
    assert.deepEqual(Object.keys(snapshot.gpus[0]).sort(), statusKeys);
    assert.deepEqual(snapshot.gpus[0].processes, [{ pid: 4242, name: null, usedMemory: 3 * 2 ** 30, gpuInstanceId: null, computeInstanceId: null }]);
  }
  const redrawn = capture();
  await runTop({ interval: 1, json: false, once: true }, redrawn.io, { nvml, cudaBusIds: [], redraw: true });
  assert.ok(redrawn.out[0]!.startsWith("\x1b[H\x1b[2J"), "on a terminal the screen is cleared before each table");
});

test("gpuffi top: usage, argument errors, and a clear error where NVML is missing", async () => {
  const help = capture();
  assert.equal(await main(["--help"], help.io), 0);
  assert.match(help.out.join("\n"), /top \[--interval S\] \[--json\] \[--once\]/);
  for (const bad of [["--interval", "0"], ["--interval", "soon"], ["--interval", "-1"], ["--color"]]) {
    const run = capture();
    assert.equal(await main(["top", ...bad], run.io), 2, bad.join(" "));
    assert.match(run.err.join("\n"), /usage: gpuffi top/);
  }
  const missing = capture();
  const previous = process.env.GPUFFI_NVML;
  process.env.GPUFFI_NVML = "/nonexistent/libnvidia-ml.so.1";
  try {
    assert.equal(await main(["top", "--once"], missing.io), 1);
  } finally {
    if (previous === undefined) delete process.env.GPUFFI_NVML;
    else process.env.GPUFFI_NVML = previous;
  }
  assert.match(missing.err.join("\n"), /^gpuffi top: .*libnvidia-ml/);
});

test("gpuffi doctor reports NVML's view of every GPU: all fields in its JSON, the table in its text", () => {
  const fake = fakeNvml({ gpus: [{ processes }, {}] });
  const report = doctorReport({ nvml: () => Nvml.open({ library: fake.library }) });
  assert.equal(fake.initDepth, 0, "doctor disposes its session");
  const json = JSON.parse(JSON.stringify(report));
  assert.equal(json.nvml.found, true);
  assert.equal(json.nvml.path, "/fake/libnvidia-ml.so.1");
  assert.deepEqual(json.nvml.versions, { nvml: "12.575.57.08", driver: "575.57.08", cudaDriver: "12.9" });
  assert.equal(json.nvml.gpus.length, 2);
  for (const gpu of json.nvml.gpus) assert.deepEqual(Object.keys(gpu).sort(), statusKeys);
  assert.equal(json.nvml.gpus[0].processes[0].pid, 4242);
  const text = describe(report);
  assert.match(text, /\nnvml: 12\.575\.57\.08 \(driver 575\.57\.08\) \/fake\/libnvidia-ml\.so\.1\nGPU\s+CUDA\s+NAME/);
  assert.match(text, /\n      process 4242: 3\.00 GiB\n1\s+n\/a\s+NVIDIA H200/);

  const without = doctorReport({ nvml: () => Nvml.open({ path: "/nonexistent/libnvidia-ml.so.1" }) });
  assert.equal(without.nvml.found, false);
  assert.match(describe(without), /\nnvml: not found \(/);
});
