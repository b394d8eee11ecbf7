// The official OpenAI Node client (npm openai 4.x) and ajv (an independent JSON-schema
// validator) against a running qlorad. Driven by openai_test.py, which passes the daemon's
// addresses and the gRPC reference results in the environment; prints one JSON report line
// last and exits non-zero on the first failed check.
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { createRequire } = require('node:module');

const npm = createRequire(path.join(process.env.QLORAD_NPM, 'noop.js'));
const OpenAI = npm('openai');
const Ajv = npm('ajv');

const baseURL = process.env.QLORAD_OPENAI_URL;
const expected = JSON.parse(fs.readFileSync(process.env.QLORAD_EXPECTED, 'utf8'));
const client = new OpenAI({ baseURL, apiKey: process.env.QLORAD_TOKEN, maxRetries: 0, timeout: 600000 });

// The sum of a metric's series (every label set) on the daemon's /metrics.
async function metric(name) {
  const text = await (await fetch(process.env.QLORAD_METRICS_URL)).text();
  const lines = text.split('\n').filter((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return lines.length ? lines.reduce((sum, l) => sum + Number(l.split(' ').pop()), 0) : NaN;
}

async function expectStatus(promise, status, what) {
  try {
    await promise;
  } catch (e) {
    assert.equal(e.status, status, `${what}: ${e.message}`);
    return e;
  }
  assert.fail(`${what}: expected HTTP ${status}, the call succeeded`);
}

async function pool(count, concurrency, task) {
  const results = new Array(count);
  let next = 0;
  async function worker() {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  return results;
}

async function apiPart() {
  const report = {};
  // Models: the base, the adapter id and the alias, with parent = the base.
  const models = [];
  for await (const m of client.models.list()) models.push(m);
  const byId = Object.fromEntries(models.map((m) => [m.id, m]));
  for (const id of [expected.base_model, expected.adapter_id, expected.alias]) assert.ok(byId[id], `model ${id} listed`);
  assert.equal(byId[expected.alias].parent, expected.base_model);
  assert.equal(byId[expected.adapter_id].parent, expected.base_model);
  assert.equal(byId[expected.alias].object, 'model');
  assert.ok(byId[expected.adapter_id].created > 1.6e9, 'created is a Unix time');

  // Completions on the alias equal gRPC Generate with raw_prompt and the same settings.
  const settings = { model: expected.alias, prompt: expected.prompt, max_tokens: 12, temperature: 0.8, seed: 5 };
  const completion = await client.completions.create(settings);
  assert.equal(completion.object, 'text_completion');
  assert.equal(completion.choices[0].text, expected.grpc_text);
  assert.equal(completion.usage.completion_tokens, expected.grpc_tokens);
  assert.equal(completion.choices[0].finish_reason, expected.grpc_finish);
  assert.equal(completion.usage.total_tokens, completion.usage.prompt_tokens + completion.usage.completion_tokens);
  const streamed = await client.completions.create({ ...settings, stream: true });
  let streamedText = '';
  for await (const chunk of streamed) streamedText += chunk.choices[0]?.text ?? '';
  assert.equal(streamedText, expected.grpc_text, 'streamed completion equals gRPC');

  // Logprobs: one per token, at most N alternatives each, all <= 0.
  const withLogprobs = await client.completions.create({ ...settings, logprobs: 2 });
  const lp = withLogprobs.choices[0].logprobs;
  assert.equal(lp.tokens.length, withLogprobs.usage.completion_tokens);
  assert.equal(lp.tokens.join(''), withLogprobs.choices[0].text);
  for (let i = 0; i < lp.tokens.length; ++i) {
    assert.ok(lp.token_logprobs[i] <= 0);
    assert.ok(Object.keys(lp.top_logprobs[i]).length <= 2 && Object.keys(lp.top_logprobs[i]).length >= 1);
  }

  // Chat: streamed equals non-streamed for the same seed; usage reported in both.
  const chat = { model: expected.alias, messages: [{ role: 'system', content: 'Answer briefly.' },
                                                   { role: 'user', content: 'Name a colour.' }],
                 max_tokens: 16, temperature: 0.9, seed: 11 };
  const whole = await client.chat.completions.create(chat);
  assert.equal(whole.object, 'chat.completion');
  assert.equal(whole.choices[0].message.role, 'assistant');
  const stream = await client.chat.completions.create({ ...chat, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    if (!chunk.choices.length) continue;
    text += chunk.choices[0].delta.content ?? '';
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  assert.equal(text, whole.choices[0].message.content, 'streamed chat equals non-streamed');
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage, whole.usage);
  const chatLogprobs = await client.chat.completions.create({ ...chat, logprobs: true, top_logprobs: 3 });
  assert.equal(chatLogprobs.choices[0].logprobs.content.map((t) => t.token).join(''), chatLogprobs.choices[0].message.content);
  // The base model by name, and a stop string that ends the text before it.
  const base = await client.completions.create({ model: expected.base_model, prompt: 'a b c', max_tokens: 8, seed: 2 });
  assert.equal(base.model, expected.base_model);
  const full = await client.completions.create({ ...settings, max_tokens: 24, temperature: 0 });
  const cut = full.choices[0].text.slice(3, 6);
  if (cut.trim().length > 0) {
    const stopped = await client.completions.create({ ...settings, max_tokens: 24, temperature: 0, stop: [cut] });
    assert.equal(stopped.choices[0].text, full.choices[0].text.slice(0, full.choices[0].text.indexOf(cut)));
    assert.equal(stopped.choices[0].finish_reason, 'stop');
  }

  // Errors in OpenAI's shape with the right status.
  const wrong = new OpenAI({ baseURL, apiKey: 'not-a-token', maxRetries: 0 });
  await expectStatus(wrong.models.list(), 401, 'wrong token');
  await expectStatus(wrong.completions.create(settings), 401, 'wrong token');
  const missing = await expectStatus(client.completions.create({ ...settings, model: 'nope@9' }), 404, 'unknown model');
  assert.equal(missing.error.code, 'model_not_found');
  assert.equal(missing.error.param, 'model');
  const long = await expectStatus(client.completions.create({ ...settings, max_tokens: expected.context + 1 }), 400,
                                  'max_tokens past the context');
  assert.equal(long.error.param, 'max_tokens');
  assert.match(long.error.message, /context/);
  await expectStatus(client.chat.completions.create({ ...chat, n: 3 }), 400, 'n > 1');

  // A client that goes away mid-stream frees its batch slot long before the request
  // could have finished on its own (4000 tokens at the rate it was streaming).
  const controller = new AbortController();
  const started = Date.now();
  const longStream = await client.completions.create(
      { model: expected.alias, prompt: 'Once', max_tokens: 4000, temperature: 1, seed: 3, stream: true },
      { signal: controller.signal });
  let chunks = 0;
  let sawRunning = false;
  let abortedAt = 0;
  try {
    for await (const chunk of longStream) {
      void chunk;
      if (++chunks === 5) {  // the metrics refresh on their own period: poll while the stream is open
        for (let i = 0; i < 50 && !sawRunning; ++i) {
          sawRunning = (await metric('qlorad_inference_requests_running')) >= 1;
          if (!sawRunning) await new Promise((r) => setTimeout(r, 100));
        }
      }
      if (chunks >= 10 && sawRunning) {
        abortedAt = Date.now();
        controller.abort();
      }
    }
  } catch (e) {
    assert.ok(controller.signal.aborted, `stream failed before the abort: ${e.message}`);
  }
  assert.ok(sawRunning, 'the stream was in the running batch');
  const rate = chunks / ((abortedAt - started) / 1000);  // chunks/s as the client read them (a lower bound)
  let running = NaN;
  for (let i = 0; i < 100; ++i) {
    await new Promise((r) => setTimeout(r, 100));
    running = await metric('qlorad_inference_requests_running');
    if (running === 0) break;
  }
  assert.equal(running, 0, 'running-requests gauge back to 0 after the disconnect');
  const freedAfter = (Date.now() - started) / 1000;
  report.disconnect_freed_seconds = freedAfter;
  report.disconnect_full_run_seconds = 4000 / rate;
  assert.ok(freedAfter < 0.5 * 4000 / rate,
            `slot freed after ${freedAfter} s; the whole request would take ~${4000 / rate} s at ${rate} tokens/s`);
  return report;
}

async function structuredPart() {
  const ajv = new Ajv({ strict: true, allErrors: true });
  const report = { valid: {}, unconstrained_valid: 0, unconstrained_total: 0 };
  for (const [name, schema] of Object.entries(expected.schemas)) {
    const validate = ajv.compile(schema);
    const outputs = await pool(expected.samples, 16, (i) => client.chat.completions.create({
      model: i % 2 ? expected.alias : expected.base_model,
      messages: [{ role: 'user', content: `Reply with the ${name} record as JSON.` }],
      temperature: 1, seed: 1000 + i, max_tokens: 400,
      response_format: { type: 'json_schema', json_schema: { name, schema, strict: true } } }));
    let valid = 0;
    for (const out of outputs) {
      const content = out.choices[0].message.content;
      assert.equal(out.choices[0].finish_reason, 'stop', `${name}: ${content}`);
      const value = JSON.parse(content);
      assert.ok(validate(value), `${name}: ${content}: ${JSON.stringify(validate.errors)}`);
      ++valid;
    }
    report.valid[name] = valid;
    console.error(`${name}: ${valid}/${outputs.length} valid; e.g. ${outputs[0].choices[0].message.content}`);
  }
  // json_object mode and vLLM's guided_choice / guided_regex.
  const objects = await pool(20, 8, (i) => client.chat.completions.create({
    model: expected.alias, messages: [{ role: 'user', content: 'JSON please' }], temperature: 1, seed: i, max_tokens: 120,
    response_format: { type: 'json_object' } }));
  for (const o of objects) {
    if (o.choices[0].finish_reason !== 'stop') continue;  // unbounded strings may run to max_tokens
    const v = JSON.parse(o.choices[0].message.content);
    assert.ok(v && typeof v === 'object' && !Array.isArray(v));
  }
  const choices = ['positive', 'negative', 'mixed feelings'];
  const picked = await pool(60, 16, (i) => client.completions.create({
    model: expected.alias, prompt: 'Sentiment:', temperature: 1, seed: i, max_tokens: 20, guided_choice: choices }));
  const seen = new Set(picked.map((p) => p.choices[0].text));
  for (const s of seen) assert.ok(choices.includes(s), `guided_choice gave ${s}`);
  assert.ok(seen.size >= 2, 'sampling explores the choices');
  const pattern = '[a-z]{3,6}@[a-z]{2,5}\\.(com|org)';
  const matched = await pool(60, 16, (i) => client.completions.create({
    model: expected.alias, prompt: 'Email:', temperature: 1, seed: i, max_tokens: 40, guided_regex: pattern }));
  for (const m of matched) assert.match(m.choices[0].text, new RegExp(`^${pattern}$`));
  // Without a constraint the same model does not write valid JSON: the checks above can fail.
  const validate = new Ajv({ strict: true }).compile(expected.schemas.enum);
  const free = await pool(20, 8, (i) => client.chat.completions.create({
    model: expected.alias, messages: [{ role: 'user', content: 'Reply with the enum record as JSON.' }], temperature: 1,
    seed: 1000 + i, max_tokens: 60 }));
  for (const f of free) {
    ++report.unconstrained_total;
    try {
      if (validate(JSON.parse(f.choices[0].message.content))) ++report.unconstrained_valid;
    } catch (e) {
      void e;  // not JSON at all
    }
  }
  return report;
}

(async () => {
  const report = process.env.QLORAD_PART === 'structured' ? await structuredPart() : await apiPart();
  console.log(JSON.stringify(report));
})().catch((e) => {
  console.error(e.stack || e);
  process.exit(1);
});
