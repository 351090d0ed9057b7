// scripts/run-notebook.ts: the cell rewriting (static imports to dynamic ones, on every runtime),
// nbformat's way of writing, a scratch notebook through the runner (shared scope, top-level await,
// display, a failing cell that stops the run), and docs/notebooks/quickstart.ipynb run end to end
// through Deno: its loss falls, its Vega-Lite spec has one point per step, and after training the
// model reproduces the sentence. The runner is a Deno program; Bun and Node runs spawn Deno too.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "../harness.ts";
import { runtimeName } from "../../src/ffi/runtime.ts";
import { objectLiteralWrapping, resolveAgainst, rewriteImports } from "../../scripts/notebook/cell-source.ts";
import { type DataOutput, type Notebook, joinLines, splitLines, writeNotebookText } from "../../scripts/notebook/nbformat.ts";
import { llamaUnavailable } from "../llama/fixtures.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const deno = process.env.GPUFFI_DENO ?? join(root, "node_modules", ".bin", "deno");
// The GPU machine carries only the runtimes packed for a call: there may be no Deno to spawn.
const denoMissing = existsSync(deno) ? undefined : `no Deno at ${deno} to run the notebook runner`;

function runDeno(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(deno, args, { cwd: root, env: { ...process.env, NO_COLOR: "1" }, maxBuffer: 64 * 2 ** 20 }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const runNotebook = (...args: string[]) => runDeno(["run", "--allow-all", join(root, "scripts", "run-notebook.ts"), ...args]);

test("cell imports become awaited dynamic imports on the same lines; type-only imports vanish", () => {
  const cell = [
    'import { a, b as c, type T, "x-y" as d } from "./m.ts";',
    'import def, * as ns from "../n.ts";',
    'import type { U } from "./types.ts";',
    'import {',
    '  e,',
    '} from "node:path";',
    'import "./side.ts";',
    'import data from "./d.json" with { type: "json" };',
    'import type from "./default-named-type.ts";',
    'const x = 1;',
  ].join("\n");
  const { code, imports } = rewriteImports(cell, resolveAgainst("file:///nb/dir/"));
  assert.deepEqual(code.split("\n"), [
    'const { a, b: c, "x-y": d } = await import("file:///nb/dir/m.ts");',
    'const ns = await import("file:///nb/n.ts"); const { default: def } = ns;',
    "",
    'const { e } = await import("node:path");',
    "",
    "",
    'await import("file:///nb/dir/side.ts");',
    'const { default: data } = await import("file:///nb/dir/d.json", { with: { type: "json" } });',
    'const { default: type } = await import("file:///nb/dir/default-named-type.ts");',
    "const x = 1;",
  ]);
  assert.deepEqual(imports.map((i) => i.specifier), ["./m.ts", "../n.ts", "./types.ts", "node:path", "./side.ts", "./d.json", "./default-named-type.ts"]);
});

test("only top-level import declarations are rewritten: not in strings, templates, comments, regexes, blocks, import() or import.meta", () => {
  const cell = [
    'const s = "import { a } from \'x\'";',
    "const t = `import ${'{'} b } from 'y' ${`import c from 'z'`}`;",
    "// import d from 'w'",
    "/* import e from 'v' */",
    "const r = /import f from 'u'/g;",
    "if (true) { const g = 1; }",
    "const h = await import('./dyn.ts');",
    "const u = import.meta.url;",
    "const q = 6 / 2 / 3; import k from './k.ts';",
  ].join("\n");
  const { code, imports } = rewriteImports(cell);
  assert.deepEqual(imports.map((i) => i.specifier), ["./k.ts"]);
  assert.equal(code, cell.replace("import k from './k.ts';", 'const { default: k } = await import("./k.ts");'));
});

test("`export` before a top-level declaration is dropped (the kernel accepts it); keepStatic resolves specifiers only", () => {
  assert.equal(rewriteImports("export const a = 1;\nexport function f() {}\nconst o = { export: 1 };").code, "       const a = 1;\n       function f() {}\nconst o = { export: 1 };");
  const cell = 'import { a } from "./a.ts";\nimport type { B } from "../b.ts";\nexport const c = a;';
  assert.equal(rewriteImports(cell, resolveAgainst("file:///x/y/"), { keepStatic: true }).code,
    'import { a } from "file:///x/y/a.ts";\nimport type { B } from "file:///x/b.ts";\nexport const c = a;');
  assert.equal(objectLiteralWrapping("{ a: 1 }"), "({ a: 1 })");
  assert.equal(objectLiteralWrapping("{ let a = 1; };"), undefined);
  assert.equal(objectLiteralWrapping("a;\n{ b }"), undefined);
});

test("notebooks are written as nbformat writes them: sorted keys, one-space indent, text as lines, JSON MIME types as JSON", () => {
  assert.deepEqual(splitLines("a\nb\n\nc"), ["a\n", "b\n", "\n", "c"]);
  assert.deepEqual(splitLines(""), []);
  const notebook: Notebook = {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { z: 1, a: 2 },
    cells: [{
      cell_type: "code",
      id: "c1",
      source: "x\ny",
      metadata: {},
      execution_count: 1,
      outputs: [{ output_type: "display_data", data: { "text/html": "<b>\n</b>", "application/vnd.vegalite.v5+json": { b: "1\n2", a: [1] } }, metadata: {} }],
    }],
  };
  const text = writeNotebookText(notebook);
  assert.ok(text.startsWith('{\n "cells": [\n  {\n   "cell_type": "code",'));
  assert.ok(text.endsWith('"nbformat": 4,\n "nbformat_minor": 5\n}\n'));
  const parsed = JSON.parse(text) as { cells: { source: string[]; outputs: DataOutput[] }[]; metadata: object };
  assert.deepEqual(parsed.cells[0]!.source, ["x\n", "y"]);
  assert.deepEqual(parsed.cells[0]!.outputs[0]!.data, { "application/vnd.vegalite.v5+json": { a: [1], b: "1\n2" }, "text/html": ["<b>\n", "</b>"] });
  assert.deepEqual(Object.keys(parsed.metadata), ["a", "z"]);
});

function scratchNotebook(sources: string[]): Notebook {
  return {
    nbformat: 4,
    nbformat_minor: 5,
    metadata: { kernelspec: { display_name: "Deno", language: "typescript", name: "deno" } },
    cells: sources.map((source, i) => ({ cell_type: "code", id: `c${i}`, source, metadata: {}, outputs: [], execution_count: null })),
  };
}

test("the runner: one scope across cells, top-level await, console and Deno.jupyter outputs, the last value; a failing cell stops the run", async () => {
  const dir = mkdtempSync(join(tmpdir(), "gpuffi-notebook-"));
  try {
    writeFileSync(join(dir, "helper.ts"), "export const twice = (x: number): number => 2 * x;\n");
    const path = join(dir, "scratch.ipynb");
    const out = join(dir, "out.ipynb");
    writeFileSync(path, JSON.stringify(scratchNotebook([
      'import { twice } from "./helper.ts";\nlet n: number = 20;\nclass Box { constructor(readonly v: number) {} }',
      "n += await Promise.resolve(1);\nconsole.log('n is', n);\nconsole.error('to stderr');\nnew Box(twice(n)).v",
      'await Deno.jupyter.display({ "text/html": "<i>hi</i>", "text/plain": "hi" }, { raw: true });\nDeno.jupyter.md`**${n}**`',
      "",
      "{ a: n }",
      "const before = 1;\n\nthrow new RangeError(`bad ${n}`);",
      "console.log('never runs')",
    ])));
    const { code, stderr } = await runNotebook(path, "--out", out, "--quiet");
    assert.equal(code, 1, stderr);
    assert.match(stderr, /In \[5\] failed at line 3: throw new RangeError\(`bad \$\{n\}`\);\nRangeError: bad 21\n/);
    const notebook = JSON.parse(readFileSync(out, "utf8")) as Notebook;
    const cells = notebook.cells;
    assert.deepEqual(cells.map((c) => c.execution_count), [1, 2, 3, null, 4, 5, null]);
    assert.deepEqual(cells[0]!.outputs, []);
    const [stdout, errOut, value] = cells[1]!.outputs!;
    assert.deepEqual([stdout, errOut], [
      { output_type: "stream", name: "stdout", text: ["n is 21\n"] },
      { output_type: "stream", name: "stderr", text: ["to stderr\n"] },
    ]);
    assert.deepEqual(value, { output_type: "execute_result", execution_count: 2, metadata: {}, data: { "text/plain": ["42"] } });
    assert.deepEqual(cells[2]!.outputs!.map((o) => (o as DataOutput).data), [{ "text/html": ["<i>hi</i>"], "text/plain": ["hi"] }, { "text/markdown": ["**21**"] }]);
    assert.deepEqual((cells[4]!.outputs![0] as DataOutput).data, { "text/plain": ["{ a: 21 }"] });
    assert.deepEqual(cells[5]!.outputs, [{ output_type: "error", ename: "RangeError", evalue: "bad 21", traceback: ["RangeError: bad 21", "    at <anonymous>:3:7"] }]);
    assert.deepEqual(cells[6]!.outputs, []);
    assert.equal((notebook.metadata.language_info as { name: string }).name, "typescript");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, { skip: denoMissing, timeout: 60_000 });

interface VegaLite {
  $schema: string;
  data: { values: { step: number; loss: number }[] };
}

/** What the quickstart's outputs must show, whether just run or committed. */
function checkQuickstart(notebook: Notebook, what: string): void {
  const code = notebook.cells.filter((c) => c.cell_type === "code");
  assert.deepEqual(code.map((c) => c.execution_count), code.map((_, i) => i + 1), `${what}: every cell ran, in order`);
  const outputs = code.flatMap((c) => c.outputs ?? []);
  assert.deepEqual(outputs.filter((o) => o.output_type === "error"), [], `${what}: no cell failed`);
  const data = outputs.filter((o): o is DataOutput => o.output_type === "display_data" || o.output_type === "execute_result").map((o) => o.data);

  const plots = data.map((d) => d["application/vnd.vegalite.v5+json"] as VegaLite | undefined).filter((d) => d !== undefined);
  assert.equal(plots.length, 1, `${what}: one Vega-Lite plot`);
  const { $schema, data: { values } } = plots[0]!;
  assert.equal($schema, "https://vega.github.io/schema/vega-lite/v5.json");
  const stepsCell = code.find((c) => /steps: (\d+)/.test(joinLines(c.source)))!;
  const steps = Number(/steps: (\d+)/.exec(joinLines(stepsCell.source))![1]);
  assert.ok(steps >= 200, `${what}: a few hundred steps (${steps})`);
  assert.deepEqual(values.map((v) => v.step), Array.from({ length: steps }, (_, i) => i + 1), `${what}: one point per step`);
  const [first, last] = [values[0]!.loss, values.at(-1)!.loss];
  assert.ok(values.every((v) => Number.isFinite(v.loss)), `${what}: finite losses`);
  assert.ok(last < first / 2, `${what}: the loss falls (${first} → ${last})`);

  const text = /const text = "([^"]+)";/.exec(code.map((c) => joinLines(c.source)).join("\n"))![1]!;
  const html = data.map((d) => joinLines((d["text/html"] ?? "") as string | string[]));
  const row = (label: string) => html.map((h) => new RegExp(`<td[^>]*>${label}</td><td[^>]*>([^<]*)</td>`).exec(h)?.[1]).find((t) => t !== undefined);
  assert.equal(row("after training"), text, `${what}: after training, greedy generation reproduces the sentence`);
  assert.notEqual(row("before training"), text, `${what}: before training it does not`);
}

const quickstart = join(root, "docs", "notebooks", "quickstart.ipynb");

test("docs/notebooks/quickstart.ipynb runs through run-notebook on Deno: the loss falls, one plot point per step, the sentence is reproduced", async () => {
  const dir = mkdtempSync(join(tmpdir(), "gpuffi-quickstart-test-"));
  try {
    const out = join(dir, "quickstart.ipynb");
    const started = performance.now();
    const { code, stderr } = await runNotebook(quickstart, "--out", out, "--quiet");
    assert.equal(code, 0, stderr);
    checkQuickstart(JSON.parse(readFileSync(out, "utf8")) as Notebook, "this run");
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seconds < 60, `the quickstart took ${seconds.toFixed(1)} s`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, { skip: denoMissing ?? llamaUnavailable, timeout: 180_000 });

test("docs/notebooks/quickstart.ipynb is committed with the outputs of a whole run", () => {
  checkQuickstart(JSON.parse(readFileSync(quickstart, "utf8")) as Notebook, "committed");
});

test("both notebooks type-check as one module each (run-notebook --check): gpu.ipynb cannot run here", async () => {
  for (const name of ["quickstart.ipynb", "gpu.ipynb"]) {
    const { code, stdout, stderr } = await runNotebook(join(root, "docs", "notebooks", name), "--check");
    assert.equal(code, 0, `${stdout}${stderr}`);
    assert.match(stdout, /cells type-check/);
  }
}, {
  skip: runtimeName !== "deno" ? "type-checked once per npm test, in the Deno run (deno check, the same on every runtime)"
    // The GPU machine carries only the packages its runs import, not the type packages.
    : existsSync(join(root, "node_modules", "@types", "node")) ? undefined : "no node_modules/@types/node to type-check against",
  timeout: 240_000,
});
