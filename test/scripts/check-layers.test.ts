// The layer check (scripts/check-layers.mjs) on small planted trees: an upward import, a sideways
// one between the siblings cuda and ggml, and an unlisted folder are flagged; imports down, within
// a folder, of packages and inside comments are not.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "../harness.ts";
import { checkLayers, importsOf } from "../../scripts/check-layers.mjs";

function withTree(files: Record<string, string>, body: (root: string) => void): void {
  const root = mkdtempSync(join(tmpdir(), "gpuffi-layers-"));
  try {
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(dirname(join(root, path)), { recursive: true });
      writeFileSync(join(root, path), text);
    }
    body(root);
  } finally {
    rmSync(root, { recursive: true });
  }
}

const clean = {
  "src/index.ts": 'export * from "./lora/index.ts";\nexport * from "./cuda/index.ts";\n',
  "src/ffi/index.ts": 'import process from "node:process";\nexport const a = process.pid;\n',
  "src/formats/index.ts": 'import { a } from "../ffi/index.ts";\nexport const b = a;\n',
  "src/cuda/index.ts": 'export * from "./blas/index.ts";\nimport { b } from "../formats/index.ts";\nexport const c = b;\n',
  "src/cuda/blas/index.ts": 'import { a } from "../../ffi/index.ts";\nimport type { c } from "../index.ts";\nexport const blas = a;\n',
  "src/ggml/index.ts": 'import { a } from "../ffi/index.ts";\nexport const g = a;\n',
  "src/llama/index.ts": 'import { g } from "../ggml/index.ts";\nimport { c } from "../cuda/index.ts";\nexport const l = g + c;\n',
  "src/lora/index.ts": '// import { x } from "../cli/main.ts";\n/* import("../cli/main.ts") */\nimport { l } from "../llama/index.ts";\nexport const lora = l;\n',
  "src/cli/main.ts": 'import { lora } from "../lora/index.ts";\nimport type { g } from "../ggml/bindings.ts";\nexport const m = lora;\n',
};

test("a tree whose imports point down or stay in their folder passes", () => {
  withTree(clean, (root) => assert.deepEqual(checkLayers(root), []));
});

test("an upward import is flagged with its file, line and specifier", () => {
  withTree({ ...clean, "src/cuda/blas/plant.ts": 'import { c } from "../index.ts";\n\nimport { l } from "../../llama/index.ts";\nexport const x = c + l;\n' }, (root) => {
    const violations = checkLayers(root);
    assert.equal(violations.length, 1);
    assert.equal(violations[0]!.file, "src/cuda/blas/plant.ts");
    assert.equal(violations[0]!.line, 3);
    assert.equal(violations[0]!.specifier, "../../llama/index.ts");
    assert.match(violations[0]!.message, /cuda is below llama/);
  });
});

test("cuda and ggml are siblings: an import either way is flagged; so is a dynamic import upward", () => {
  withTree(
    {
      ...clean,
      "src/ggml/plant.ts": 'export type T = typeof import("../cuda/index.ts");\n',
      "src/cuda/plant.ts": 'export {\n  g,\n} from "../ggml/index.ts";\n',
      "src/formats/plant.ts": 'export const load = () => import("../lora/index.ts");\n',
    },
    (root) => {
      const found = checkLayers(root).map((v) => `${v.file}:${v.line} ${v.message}`);
      assert.deepEqual(found.sort(), [
        "src/cuda/plant.ts:3 cuda and ggml are siblings: neither imports the other",
        "src/formats/plant.ts:1 formats is below lora: imports point down only",
        "src/ggml/plant.ts:1 ggml and cuda are siblings: neither imports the other",
      ]);
    },
  );
});

test("a folder without a layer, and an import reaching outside src/, are flagged", () => {
  withTree({ ...clean, "src/extra/index.ts": "export const e = 1;\n", "src/llama/plant.ts": 'import "../../test/harness.ts";\n' }, (root) => {
    const messages = checkLayers(root).map((v) => v.message);
    assert.equal(messages.length, 2);
    assert.ok(messages.some((m) => /src\/extra\/ is no layer/.test(m)));
    assert.ok(messages.some((m) => /outside src/.test(m)));
  });
});

test("importsOf finds static, re-export, side-effect and dynamic imports, not those in comments", () => {
  const text = 'import a from "./a.ts";\n// import b from "./b.ts";\nexport * from "./c.ts";\n/*\nimport d from "./d.ts";\n*/\nimport "./e.ts";\nconst f = await import("./f.ts");\n';
  assert.deepEqual(importsOf(text), [
    { specifier: "./a.ts", line: 1 },
    { specifier: "./c.ts", line: 3 },
    { specifier: "./e.ts", line: 7 },
    { specifier: "./f.ts", line: 8 },
  ]);
});
