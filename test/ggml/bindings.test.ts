// The ggml binding (src/ggml/bindings.ts): struct layouts and enums as ggml.h declares them, and
// the libraries' own answers where a libllama (and so libggml-base beside it) is installed.
import assert from "node:assert/strict";
import { test } from "../harness.ts";
import { type LibrarySpec, decodeStruct, loadLibrary } from "../../src/ffi/index.ts";
import { SchedPriority, deviceTypes, ggmlBaseSonames, ggmlBaseSymbols, ggmlThreadpoolParams, rpcMaxServers, rpcProtocol } from "../../src/ggml/index.ts";
import { Llama, expectedVersions } from "../../src/llama/index.ts";
import { llamaUnavailable } from "../llama/fixtures.ts";

test("struct ggml_threadpool_params: bool cpumask[512], then n_threads, prio, poll, strict_cpu, paused (528 bytes)", () => {
  assert.equal(ggmlThreadpoolParams.size, 528);
  assert.deepEqual(
    Object.fromEntries(ggmlThreadpoolParams.layout.map((f) => [f.name, f.offset])),
    { cpumask: 0, n_threads: 512, prio: 516, poll: 520, strict_cpu: 524, paused: 525 },
  );
});

test("enums: ggml_backend_dev_type in header order, ggml_sched_priority from -1, the RPC protocol of llama.cpp 0.5.0", () => {
  assert.deepEqual([...deviceTypes], ["cpu", "gpu", "igpu", "accel", "meta"]);
  assert.deepEqual(SchedPriority, { low: -1, normal: 0, medium: 1, high: 2, realtime: 3 });
  assert.deepEqual({ ...rpcProtocol }, { major: 7, minor: 0 });
  assert.equal(rpcMaxServers, 16);
});

test("libggml-base beside libllama reports the ggml version the bindings were written for, and fills threadpool defaults", () => {
  const { dir } = Llama.shared();
  const spec: LibrarySpec = { name: "libggml-base", sonames: ggmlBaseSonames, envVar: "GPUFFI_LLAMA_DIR", hint: "next to libllama" };
  const base = loadLibrary(spec, ggmlBaseSymbols, dir === undefined ? { env: {} } : { path: dir });
  assert.equal(base.symbols.ggml_version(), expectedVersions.ggml);
  const params = new Uint8Array(ggmlThreadpoolParams.size);
  base.symbols.ggml_threadpool_params_init(params, 3);
  assert.equal(decodeStruct(ggmlThreadpoolParams, params).n_threads, 3);
}, { skip: llamaUnavailable });
