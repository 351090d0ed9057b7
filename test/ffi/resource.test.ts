// The leak safety net: what users forget to dispose is freed by the finalizer, with one warning per kind.
import assert from "node:assert/strict";
import { test } from "../harness.ts";
import { HostMemory, leakStatistics, setLeakReporter } from "../../src/ffi/index.ts";

const collectGarbage = (globalThis as { gc?: () => void; Bun?: { gc(force: boolean): void } }).Bun
  ? () => (globalThis as unknown as { Bun: { gc(force: boolean): void } }).Bun.gc(true)
  : (globalThis as { gc?: () => void }).gc;

test("leaked resources are freed by the finalizer and reported", async () => {
  const reports: [string, number][] = [];
  const previous = setLeakReporter((kind, count) => reports.push([kind, count]));
  try {
    const before = leakStatistics().get("HostMemory") ?? 0;
    (() => {
      for (let i = 0; i < 20; i++) HostMemory.alloc(1024);
    })();
    for (let round = 0; round < 50 && (leakStatistics().get("HostMemory") ?? 0) - before < 20; round++) {
      collectGarbage!();
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal((leakStatistics().get("HostMemory") ?? 0) - before, 20);
    assert.ok(reports.every(([kind]) => kind === "HostMemory"));
  } finally {
    setLeakReporter(previous);
  }
}, { skip: collectGarbage ? undefined : "this runtime exposes no gc() (node needs --expose-gc, deno --v8-flags=--expose-gc)" });

test("disposed resources are not reported as leaks", async () => {
  const before = leakStatistics().get("HostMemory") ?? 0;
  (() => {
    for (let i = 0; i < 10; i++) HostMemory.alloc(64).dispose();
  })();
  for (let round = 0; round < 5; round++) {
    collectGarbage?.();
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal((leakStatistics().get("HostMemory") ?? 0) - before, 0);
});
