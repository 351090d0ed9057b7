// The compatibility table and the rule that turns versions into a verdict.
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "../harness.ts";
import {
  CudaArgumentError,
  checkCompatibility,
  compareCudaVersions,
  decodeCudaVersion,
  linuxDriverVersion,
  minimumDriverForRuntime,
  minorCompatibilityDriver,
  parseCudaVersion,
} from "../../src/cuda/index.ts";

const v = (text: string) => parseCudaVersion(text, "test");

test("CUDA version integers decode as major.minor", () => {
  assert.deepEqual(decodeCudaVersion(12040), { major: 12, minor: 4 });
  assert.deepEqual(decodeCudaVersion(13000), { major: 13, minor: 0 });
  assert.deepEqual(decodeCudaVersion(12090), { major: 12, minor: 9 });
});

test("version strings parse, and anything else is a CudaArgumentError", () => {
  assert.deepEqual(v("12.2"), { major: 12, minor: 2 });
  assert.deepEqual(v(" 13 "), { major: 13, minor: 0 });
  for (const bad of ["", "12.", "v12.2", "12.2.1", "x"]) assert.throws(() => v(bad), CudaArgumentError);
  assert.ok(compareCudaVersions(v("12.10"), v("12.9")) > 0);
});

test("the driver table rises with the runtime version and covers 12.0 to 13.0", () => {
  const keys = Object.keys(minimumDriverForRuntime);
  assert.equal(minimumDriverForRuntime["12.0"], "525.60.13");
  assert.equal(minimumDriverForRuntime["13.0"], "580.65.06");
  const numeric = (s: string) => s.split(".").map(Number).reduce((acc, n) => acc * 1000 + n, 0) * (s.split(".").length === 2 ? 1000 : 1);
  for (let i = 1; i < keys.length; i++) {
    assert.ok(compareCudaVersions(v(keys[i]!), v(keys[i - 1]!)) > 0, "keys in version order");
    assert.ok(numeric(minimumDriverForRuntime[keys[i]!]!) > numeric(minimumDriverForRuntime[keys[i - 1]!]!), `${keys[i]} needs a newer driver than ${keys[i - 1]}`);
  }
  assert.equal(minorCompatibilityDriver[12], minimumDriverForRuntime["12.0"]);
});

test("a driver at or above the runtime's version is fully compatible", () => {
  const verdict = checkCompatibility({ runtime: v("12.4"), driver: v("13.0") });
  assert.deepEqual(verdict, { level: "full", ok: true, problems: [], warnings: [] });
});

test("an older driver of the same major runs under minor-version compatibility, with a warning", () => {
  const verdict = checkCompatibility({ runtime: v("12.8"), driver: v("12.2"), linuxDriver: "535.54.03" });
  assert.equal(verdict.level, "minor");
  assert.equal(verdict.ok, true);
  assert.match(verdict.warnings[0]!, /535\.54\.03 \(supports CUDA 12\.2\).*≥ 570\.26/);
  assert.equal(checkCompatibility({ runtime: v("12.8"), driver: v("12.2"), minorVersionCompatibility: false }).ok, false);
});

test("an older major driver, or none, is incompatible with a message naming every version and what to install", () => {
  const verdict = checkCompatibility({ runtime: v("13.0"), driver: v("12.9"), linuxDriver: "575.57.08", libraryPath: "/x/libcudart.so.13" });
  assert.equal(verdict.ok, false);
  assert.match(verdict.problems[0]!, /libcudart 13\.0 \(\/x\/libcudart\.so\.13\) is newer than the installed driver 575\.57\.08 \(supports CUDA 12\.9\): install NVIDIA driver ≥ 580\.65\.06.*libcudart\.so\.12/);
  assert.match(checkCompatibility({ runtime: v("12.4"), driver: undefined }).problems[0]!, /none is installed.*550\.54\.14/);
  assert.match(checkCompatibility({ runtime: v("13.7"), driver: v("13.0") }).warnings[0]!, /supports CUDA 13\.7/);
});

test("the caller's minimums are checked against both versions", () => {
  const verdict = checkCompatibility({ runtime: v("12.2"), driver: v("12.4"), requireRuntime: v("12.4"), requireDriver: v("12.6") });
  assert.equal(verdict.problems.length, 2);
  assert.match(verdict.problems[0]!, /requireRuntime asks for CUDA runtime ≥ 12\.4/);
  assert.match(verdict.problems[1]!, /requireDriver asks for a driver supporting CUDA ≥ 12\.6.*560\.28\.03/);
});

test("the kernel module's version is read from /proc/driver/nvidia/version", () => {
  const dir = mkdtempSync(join(tmpdir(), "gpuffi-"));
  const file = join(dir, "version");
  writeFileSync(file, "NVRM version: NVIDIA UNIX x86_64 Kernel Module  580.65.06  Sun Jul 27 07:09:24 UTC 2025\nGCC version:  gcc version 12.3.0\n");
  assert.equal(linuxDriverVersion(file), "580.65.06");
  writeFileSync(file, "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.86.15  Release Build\n");
  assert.equal(linuxDriverVersion(file), "570.86.15");
  assert.equal(linuxDriverVersion(join(dir, "missing")), undefined);
});
