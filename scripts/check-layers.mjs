#!/usr/bin/env node
// The layer check: every import in src/ points down or stays in its own folder.
//   node scripts/check-layers.mjs [ROOT]   (exit 1 and one line per offending import otherwise)
// Layers, bottom to top (docs/ARCHITECTURE.md): ffi < formats < {cuda, ggml} < llama < lora < cli,
// and src/index.ts above them all. cuda and ggml are siblings: neither may import the other.
// A folder of src/ that is not listed here is an error too, so that a new one gets a place.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

/** Rank of each top-level folder of src/; equal ranks are siblings. */
export const layers = Object.freeze({ ffi: 0, formats: 1, cuda: 2, ggml: 2, llama: 3, lora: 4, cli: 5 });
const rootRank = 6;

function sourceFiles(dir) {
  return readdirSync(dir).sort().flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(m?[jt]s|tsx)$/.test(entry) && !entry.endsWith(".d.ts") ? [path] : [];
  });
}

/** The layer of a path relative to src/: its first folder, or "index" for files at src/'s root. */
function layerOf(pathInSrc) {
  const parts = pathInSrc.split(/[\\/]/);
  return parts.length === 1 ? "index" : parts[0];
}

function rank(layer) {
  return layer === "index" ? rootRank : layers[layer];
}

/** Import specifiers of a module with their line numbers; comments are ignored. */
export function importsOf(text) {
  // Blank out comments, keeping line breaks so that line numbers stay right.
  const code = text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, " ")).replace(/^\s*\/\/.*$/gm, "");
  const found = [];
  const patterns = [
    /^\s*(?:import|export)\s[^'"`;]*?\sfrom\s*["']([^"']+)["']/gm, // import … from "x", export … from "x"
    /^\s*import\s*["']([^"']+)["']/gm, // import "x"
    /\bimport\(\s*["']([^"']+)["']\s*\)/g, // import("x"), also in type positions
  ];
  for (const pattern of patterns) {
    for (const match of code.matchAll(pattern)) {
      const line = code.slice(0, match.index + match[0].length).split("\n").length;
      found.push({ specifier: match[1], line });
    }
  }
  return found.sort((a, b) => a.line - b.line);
}

/**
 * Every import under `root`/src that points up, sideways between siblings, outside src, or into
 * or out of a folder that has no layer. Returns `{ file, line, specifier, message }` records.
 */
export function checkLayers(root) {
  const src = resolve(root, "src");
  const violations = [];
  for (const file of sourceFiles(src)) {
    const from = layerOf(relative(src, file));
    const where = relative(root, file).split(sep).join("/");
    if (from !== "index" && !(from in layers)) {
      violations.push({ file: where, line: 1, specifier: "", message: `src/${from}/ is no layer: add it to scripts/check-layers.mjs and docs/ARCHITECTURE.md` });
      continue;
    }
    for (const { specifier, line } of importsOf(readFileSync(file, "utf8"))) {
      if (!specifier.startsWith(".")) continue; // node:*, koffi, bun:ffi: outside the layers
      const target = relative(src, resolve(dirname(file), specifier));
      const report = (message) => violations.push({ file: where, line, specifier, message });
      if (target.startsWith("..")) {
        report("imports from outside src/");
        continue;
      }
      const to = layerOf(target);
      if (to === from) continue;
      if (to !== "index" && !(to in layers)) report(`src/${to}/ is no layer`);
      else if (rank(to) === rank(from)) report(`${from} and ${to} are siblings: neither imports the other`);
      else if (rank(to) > rank(from)) report(`${from} is below ${to}: imports point down only`);
    }
  }
  return violations;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = process.argv[2] ?? fileURLToPath(new URL("..", import.meta.url));
  const violations = checkLayers(root);
  for (const v of violations) console.log(`${v.file}:${v.line}: ${v.specifier ? `"${v.specifier}": ` : ""}${v.message}`);
  if (violations.length > 0) {
    console.log(`${violations.length} import(s) break the layers ffi < formats < {cuda, ggml} < llama < lora < cli`);
    process.exit(1);
  }
  console.log("layers: every import points down or stays in its folder");
}
