// pp512 and tg128 through node-llama-cpp on the libllama that scripts/build-llama.sh built, printed
// as JSON in llama-bench's shape ([{ n_prompt, n_gen, avg_ts, stddev_ts, samples_ts }]), so that
// bench/llama.bench.ts --node-llama-cpp can take turns with it as it does with llama-bench.
//   node|bun bench/node-llama-cpp.bench.mjs --packages DIR --llama-dir DIR --model FILE [--gpu-layers N] [--threads N] [--reps N]
// --packages   a node_modules holding node-llama-cpp 3.22.1 and its dependencies, and
//              @node-llama-cpp/linux-x64 (whose llama-addon.node is used; see scripts/pack-device.sh)
// --llama-dir  the build of the same llama.cpp source (its libllama, libggml*, libllama-common)
// The prebuilt CUDA package is 143 MB compressed, too large to carry; node-llama-cpp's addon is
// built against the same llama.cpp 0.5.0 source, so the CPU package's addon runs on our CUDA build
// once it sits in a node-llama-cpp "local build" folder with the libraries under the names it
// links against. Each figure follows llama-bench: one warm-up, the KV cache cleared before every
// repetition, random tokens after BOS. pp512 is sequence.evaluateWithoutGeneratingNewTokens (no
// output row is computed: llama-bench computes one); tg128 is sequence.evaluate with greedy
// sampling, node-llama-cpp's generation path (compare it with gpuffi's generate()).
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    packages: { type: "string" },
    "llama-dir": { type: "string" },
    model: { type: "string" },
    "gpu-layers": { type: "string", default: "99" },
    threads: { type: "string", default: "4" },
    reps: { type: "string", default: "5" },
  },
});
if (!values.packages || !values["llama-dir"] || !values.model) {
  throw new Error("usage: node|bun bench/node-llama-cpp.bench.mjs --packages DIR --llama-dir DIR --model FILE [--gpu-layers N] [--threads N] [--reps N]");
}
const packages = resolve(values.packages);
const llamaDir = resolve(values["llama-dir"]);
const [gpuLayers, threads, reps] = [Number(values["gpu-layers"]), Number(values.threads), Number(values.reps)];
const [promptTokens, genTokens] = [512, 128];

// node-llama-cpp's getLlama("lastBuild") loads llama/localBuilds/<lastBuild.json's folder>/Release/llama-addon.node.
const nlc = join(packages, "node-llama-cpp");
const buildName = "gpuffi-llama-dir";
const release = join(nlc, "llama", "localBuilds", buildName, "Release");
rmSync(join(nlc, "llama", "localBuilds", buildName), { recursive: true, force: true });
mkdirSync(release, { recursive: true });
cpSync(join(packages, "@node-llama-cpp", "linux-x64", "bins", "linux-x64", "llama-addon.node"), join(release, "llama-addon.node"));
for (const file of readdirSync(llamaDir).filter((f) => f.startsWith("lib") && f.includes(".so"))) symlinkSync(join(llamaDir, file), join(release, file));
// The addon links against node-llama-cpp's file names; a CMake build has sonames.
for (const [name, soname] of [["libllama.v0.5.0.so", "libllama.so.0"], ["libggml.v0.5.0.so", "libggml.so.0"]]) {
  if (!existsSync(join(release, name))) symlinkSync(join(llamaDir, soname), join(release, name));
}
const gpu = readdirSync(llamaDir).some((f) => f.startsWith("libggml-cuda")) ? "cuda" : false;
const metadata = { buildOptions: { customCmakeOptions: {}, progressLogs: false, platform: "linux", arch: "x64", gpu, llamaCpp: { repo: "ggml-org/llama.cpp", release: "v0.5.0" } } };
writeFileSync(join(release, "_nlcBuildMetadata.json"), JSON.stringify(metadata));
writeFileSync(join(release, "..", "buildDone.status"), "");
writeFileSync(join(nlc, "llama", "lastBuild.json"), JSON.stringify({ folderName: buildName }));

const { getLlama, LlamaLogLevel } = await import(pathToFileURL(join(nlc, "dist", "index.js")).href);
// maxThreads 0: a context's `threads` is then the thread count used, not a hint.
const llama = await getLlama("lastBuild", { logLevel: LlamaLogLevel.error, progressLogs: false, maxThreads: 0 });
const model = await llama.loadModel({ modelPath: values.model, gpuLayers });
const bos = model.tokens.bos;
const vocab = model.fileInfo.metadata.tokenizer?.ggml?.tokens?.length;
if (!(vocab > 0)) throw new Error(`${values.model} has no tokenizer.ggml.tokens`);
const random = () => Math.floor(Math.random() * vocab);

async function measure(test, run, warmUp) {
  const context = await model.createContext({ contextSize: test.prompt + test.gen, batchSize: Math.max(test.prompt, test.gen), threads, flashAttention: "auto", sequences: 1 });
  const sequence = context.getSequence();
  try {
    await warmUp(sequence);
    const samples = [];
    for (let rep = 0; rep < reps; rep++) {
      await sequence.clearHistory();
      const start = performance.now();
      await run(sequence);
      samples.push((test.prompt + test.gen) / ((performance.now() - start) / 1000));
    }
    const avg = samples.reduce((a, b) => a + b, 0) / samples.length;
    const stddev = Math.sqrt(samples.reduce((a, x) => a + (x - avg) ** 2, 0) / Math.max(samples.length - 1, 1));
    return { n_prompt: test.prompt, n_gen: test.gen, avg_ts: avg, stddev_ts: stddev, samples_ts: samples, context_size: context.contextSize };
  } finally {
    await context.dispose();
  }
}

const prompt = (sequence) => sequence.evaluateWithoutGeneratingNewTokens([bos, ...Array.from({ length: promptTokens - 1 }, random)]);
async function generate(sequence, count) {
  let produced = 0;
  for await (const _ of sequence.evaluate([bos], { temperature: 0 })) if (++produced >= count) break;
}
const results = [
  await measure({ prompt: promptTokens, gen: 0 }, prompt, prompt),
  await measure({ prompt: 0, gen: genTokens }, (s) => generate(s, genTokens), (s) => generate(s, 1)),
];
await model.dispose();
await llama.dispose();
console.log(JSON.stringify(results));
