// The peer side of the GGUF tests: real llama.cpp (the prebuilt CPU binaries of npm
// node-llama-cpp 3.21.1, tests/fixtures/npm) loads a GGUF model, optionally with a GGUF
// LoRA adapter, and answers token-level questions, so qlorad's exports are checked by the
// program users run them in.
//
// usage: node llama_cpp_peer.mjs REQUEST.json [OUT.json]   (REQUEST "-" = stdin; OUT default stdout)
// env:   QLORAD_NPM = the folder holding node_modules (default: ../fixtures/npm beside this file)
//
// REQUEST: {"model": "base.gguf", "lora": "adapter.gguf" | null, "lora_scale": 1,
//           "context": 512, "threads": 2, "ops": [OP, ...]}
//   {"op": "tokenize", "texts": ["..."]}
//       -> {"tokens": [[ids without BOS/EOS]]}   (llama.cpp: add_special=false, parse_special=false)
//   {"op": "generate", "prompts": [[ids]], "max_tokens": N, "margins": bool}
//       -> {"tokens": [[greedy ids]], "margins": [[logit(top1) - logit(top2)]]}
//          greedy = llama.cpp's greedy sampler; EOS/EOT do not stop it (exactly N tokens).
//   {"op": "argmax", "sequences": [[ids]], "margins": bool}
//       -> {"argmax": [[argmax of the logits after each prefix]], "confidence": [[its softmax probability]],
//           "margins": ...}
//   {"op": "probabilities", "sequences": [[ids]], "vocab": V, "out": "FILE"}
//       -> {"positions": N, "vocab": V}; FILE holds little-endian float32 [N, V]: the full next-token
//          distribution after each prefix of each sequence, in order (tokens llama.cpp omits are 0).
// The answer also carries "info": the vocabulary type, BOS/EOS ids, add-BOS flag, and the
// GGUF's tensor types as llama.cpp's reader sees them. The KV cache is f32 and flash
// attention off, so an f32 model is computed in f32 end to end.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const npmDir = process.env.QLORAD_NPM || path.join(here, "..", "fixtures", "npm");
const entry = path.join(npmDir, "node_modules", "node-llama-cpp", "dist", "index.js");
if (!fs.existsSync(entry)) {
  process.stderr.write(`llama_cpp_peer: ${entry} is missing (run tests/fixtures/npm/install.sh)\n`);
  process.exit(2);
}
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);

// ln(p1/p2) of a probabilities map sorted by probability = logit(top1) - logit(top2).
function margin(probabilities) {
  const it = probabilities.values();
  const p1 = it.next().value, p2 = it.next().value;
  return p2 > 0 ? Math.log(p1 / p2) : Infinity;
}

async function generate(sequence, op) {
  const tokens = [], margins = [];
  for (const prompt of op.prompts) {
    await sequence.clearHistory();
    const out = [], m = [];
    if (op.max_tokens > 0) {
      const it = sequence.evaluateWithMetadata(prompt, { probabilities: !!op.margins },
                                               { temperature: 0, yieldEogToken: true });
      for await (const step of it) {
        out.push(step.token);
        if (op.margins) m.push(margin(step.probabilities));
        if (out.length >= op.max_tokens) break;
      }
    }
    tokens.push(out);
    margins.push(m);
  }
  return op.margins ? { tokens, margins } : { tokens };
}

async function argmax(sequence, op) {
  const argmaxes = [], margins = [];
  const confidences = [];
  const next = { token: true, confidence: true, probabilities: !!op.margins, options: { temperature: 0 } };
  for (const tokens of op.sequences) {
    await sequence.clearHistory();
    const results = await sequence.controlledEvaluate(tokens.map((t) => [t, { generateNext: next }]));
    argmaxes.push(results.map((r) => r.next.token));
    confidences.push(results.map((r) => r.next.confidence));
    if (op.margins) margins.push(results.map((r) => margin(r.next.probabilities)));
  }
  return op.margins ? { argmax: argmaxes, confidence: confidences, margins } : { argmax: argmaxes, confidence: confidences };
}

async function probabilities(sequence, op, vocab) {
  const rows = [];
  const next = { token: true, probabilities: true, options: { temperature: 0 } };
  for (const tokens of op.sequences) {
    await sequence.clearHistory();
    const results = await sequence.controlledEvaluate(tokens.map((t) => [t, { generateNext: next }]));
    for (const r of results) {
      const row = new Float32Array(vocab);
      for (const [token, p] of r.next.probabilities) row[token] = p;
      rows.push(row);
    }
  }
  const out = Buffer.alloc(rows.length * vocab * 4);
  rows.forEach((row, i) => Buffer.from(row.buffer).copy(out, i * vocab * 4));
  fs.writeFileSync(op.out, out);
  return { positions: rows.length, vocab };
}

async function main() {
  const [requestPath = "-", outPath] = process.argv.slice(2);
  const request = JSON.parse(fs.readFileSync(requestPath === "-" ? 0 : requestPath, "utf8"));
  const threads = request.threads || 2;
  const llama = await getLlama({
    gpu: false, build: "never", usePrebuiltBinaries: true, progressLogs: false, maxThreads: threads,
    logLevel: LlamaLogLevel.error, logger: (level, message) => process.stderr.write(`llama.cpp: ${message}\n`),
  });
  const model = await llama.loadModel({ modelPath: request.model, gpuLayers: 0, useMmap: false });
  const info = {
    node_llama_cpp: JSON.parse(fs.readFileSync(path.join(path.dirname(entry), "..", "package.json"), "utf8")).version,
    vocabulary_type: model.vocabularyType, bos: model.tokens.bos, eos: model.tokens.eos, eot: model.tokens.eot,
    add_bos: model.tokens.shouldPrependBosToken, train_context: model.trainContextSize,
    tensor_types: Object.fromEntries((model.fileInfo.fullTensorInfo || model.fileInfo.tensorInfo || [])
      .map((t) => [t.name, t.ggmlType])),
  };
  const results = [];
  let context = null, sequence = null;
  for (const op of request.ops) {
    if (op.op === "tokenize") {
      results.push({ tokens: op.texts.map((text) => Array.from(model.tokenize(text, false))) });
      continue;
    }
    if (!context) {
      const options = {
        contextSize: request.context || 512, batchSize: request.context || 512, threads, flashAttention: false,
        experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32", sequences: 1,
      };
      if (request.lora)
        options.lora = { adapters: [{ filePath: request.lora, scale: request.lora_scale ?? 1 }] };
      context = await model.createContext(options);
      sequence = context.getSequence();
    }
    if (op.op === "generate") results.push(await generate(sequence, op));
    else if (op.op === "argmax") results.push(await argmax(sequence, op));
    else if (op.op === "probabilities") results.push(await probabilities(sequence, op, op.vocab));
    else throw new Error(`unknown op '${op.op}' (expected tokenize, generate, argmax or probabilities)`);
  }
  const text = JSON.stringify({ info, results }) + "\n";
  if (outPath) fs.writeFileSync(outPath, text);
  else process.stdout.write(text);
  if (context) await context.dispose();
  await model.dispose();
  await llama.dispose();
}

main().catch((error) => {
  process.stderr.write(`llama_cpp_peer: ${error && error.stack ? error.stack : error}\n`);
  process.exit(1);
});
