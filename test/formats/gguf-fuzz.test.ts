// Fuzzing the GGUF reader: 10,000 mutated files per run must each parse or raise
// GgufFormatError, quickly; a file that parses must have every tensor inside the file.
import assert from "node:assert/strict";
import fc from "fast-check";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "../harness.ts";
import { GgufFormatError, encodeGguf, makeTinyModel, openGguf, parseGguf } from "../../src/formats/index.ts";
import { ggufSpec } from "./gguf-arbitraries.ts";
import { type Seed, fuzz, mutatedFile } from "./mutations.ts";

function seeds(): Seed[] {
  const files = [
    encodeGguf(makeTinyModel({ embd: 8, heads: 2, kvHeads: 1, ff: 8, layers: 1, type: "f16" })),
    ...fc.sample(ggufSpec.filter((s) => s.tensors.length > 0), 4).map(encodeGguf),
  ];
  return files.map((bytes) => ({ bytes, headerLength: parseGguf(bytes).dataOffset }));
}

function parseAndCheck(bytes: Uint8Array): void {
  const header = parseGguf(bytes);
  for (const t of header.tensors) assert.ok(header.dataOffset + t.offset + t.byteLength <= bytes.length, `tensor ${t.name} outside the file`);
}

test("fuzz: 10,000 mutated GGUF files end in success or GgufFormatError", () => {
  const accepted = fuzz(mutatedFile(seeds()), 10_000, parseAndCheck, (e) => e instanceof GgufFormatError);
  assert.ok(accepted < 10_000, "some mutations must be rejected");
}, { timeout: 60_000 });

test("fuzz: mutated GGUF files read from disk behave like in memory", async () => {
  const dir = await mkdtemp(join(tmpdir(), "gpuffi-fuzz-"));
  try {
    const path = join(dir, "m.gguf");
    await fc.assert(fc.asyncProperty(mutatedFile(seeds()), async (bytes) => {
      await writeFile(path, bytes);
      const fromMemory = (() => {
        try {
          return parseGguf(bytes);
        } catch (error) {
          if (error instanceof GgufFormatError) return error.message;
          throw error;
        }
      })();
      try {
        await using file = await openGguf(path);
        assert.deepEqual(file.header, fromMemory);
      } catch (error) {
        if (!(error instanceof GgufFormatError)) throw error;
        assert.equal(error.message, fromMemory);
      }
    }), { numRuns: 200 });
  } finally {
    await rm(dir, { recursive: true });
  }
});
