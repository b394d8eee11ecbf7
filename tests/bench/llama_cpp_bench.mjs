// llama.cpp's side of decode_vs_llama_cpp.py: the prebuilt CPU binaries of npm
// node-llama-cpp 3.21.1 (tests/fixtures/npm) time llama-bench's two tests on one GGUF:
//   pp N: one batch of N prompt tokens into an empty context (prefill),
//   tg N: N single-token decodes from an empty context, greedy (temperature 0).
// usage: node llama_cpp_bench.mjs MODEL.gguf [--threads 2] [--pp 512] [--tg 128]
// prints one JSON line: {"pp_tokens_per_s", "tg_tokens_per_s", "cpu_variant", ...}.
// The KV cache is f32 and flash attention off, as llama-bench's defaults on the CPU.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const npmDir = process.env.QLORAD_NPM || path.join(here, "..", "fixtures", "npm");
const entry = path.join(npmDir, "node_modules", "node-llama-cpp", "dist", "index.js");
if (!fs.existsSync(entry)) {
  process.stderr.write(`llama_cpp_bench: ${entry} is missing (run tests/fixtures/npm/install.sh)\n`);
  process.exit(2);
}
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);

function flag(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const modelPath = process.argv[2];
const threads = flag("threads", 2), pp = flag("pp", 512), tg = flag("tg", 128);
const llama = await getLlama({
  gpu: false, build: "never", usePrebuiltBinaries: true, progressLogs: false, maxThreads: threads,
  logLevel: LlamaLogLevel.error, logger: (level, message) => process.stderr.write(`llama.cpp: ${message}\n`),
});
const model = await llama.loadModel({ modelPath, gpuLayers: 0, useMmap: false });
const context = await model.createContext({
  contextSize: Math.max(pp, tg) + 16, batchSize: pp, threads, flashAttention: false,
  experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32", sequences: 1,
});
const sequence = context.getSequence();
const prompt = Array.from({ length: pp }, (_, i) => 1000 + ((i * 7919) % 20000));

// Warm-up (page in the weights, build the graphs), then the timed runs.
await sequence.evaluateWithoutGeneratingNewTokens(prompt.slice(0, 16));
await sequence.clearHistory();

let start = process.hrtime.bigint();
await sequence.evaluateWithoutGeneratingNewTokens(prompt);
const ppSeconds = Number(process.hrtime.bigint() - start) / 1e9;
await sequence.clearHistory();

// tg: the first yield follows the 1-token prompt; the clock runs over the next tg decodes.
let produced = 0;
start = null;
for await (const token of sequence.evaluate([prompt[0]], { temperature: 0, yieldEogToken: true })) {
  void token;
  if (start === null) start = process.hrtime.bigint();
  else if (++produced >= tg) break;
}
const tgSeconds = Number(process.hrtime.bigint() - start) / 1e9;

const answer = {
  pp_tokens: pp, pp_tokens_per_s: pp / ppSeconds, tg_tokens: tg, tg_tokens_per_s: tg / tgSeconds, threads,
  node_llama_cpp: JSON.parse(fs.readFileSync(path.join(path.dirname(entry), "..", "package.json"), "utf8")).version,
};
process.stdout.write(JSON.stringify(answer) + "\n");
await context.dispose();
await model.dispose();
await llama.dispose();
