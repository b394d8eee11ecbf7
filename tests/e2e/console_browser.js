// The review console in headless Chromium (Debian's /usr/bin/chromium driven by npm
// puppeteer-core): two reviewers rate a 10-item blind sample with the keyboard (one reload
// mid-way resumes at item 6), submit; the adapter page shows kappa and the win rate; a
// reviewer's approve is refused (403) in the page; the deployer approves with the risk-class
// fields. Driven by console_browser_test.py, which passes the daemon's console URL, tokens and
// ids in the environment; prints one JSON report line last, exits non-zero on a failed check.
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { createRequire } = require('node:module');

const npm = createRequire(path.join(process.env.QLORAD_NPM, 'noop.js'));
const puppeteer = npm('puppeteer-core');

const BASE = process.env.QLORAD_CONSOLE_URL;
const EVALUATION = process.env.QLORAD_EVALUATION_ID;
const ADAPTER = process.env.QLORAD_ADAPTER_ID;
const ARTIFACTS = process.env.QLORAD_ARTIFACTS;
const ITEMS = Number(process.env.QLORAD_ITEMS);
const TIMEOUT = 30000;
const report = { screenshots: {}, reviewers: [] };

// Each reviewer's judgements: [rating A, rating B, preference key]. Reviewer 1 rates B with
// Shift+digit, reviewer 2 with q..t; they agree on most items (so kappa is defined).
const PREF_KEYS = ['a', 'b', 'x'];
function judgement(reviewer, i) {
  const a = 1 + ((i * 2 + (reviewer === 1 && i % 4 === 0 ? 1 : 0)) % 5);
  const b = 1 + ((i + 3) % 5);
  const pref = PREF_KEYS[(i + (reviewer === 1 && i % 5 === 2 ? 1 : 0)) % 3];
  return [a, b, pref];
}

async function text(page, selector) {
  return page.$eval(selector, (n) => n.textContent.trim());
}

async function waitView(page, view) {
  await page.waitForSelector(`body[data-view="${view}"]`, { timeout: TIMEOUT });
}

async function signIn(page, token) {
  await page.goto(BASE + '/#/queue', { waitUntil: 'load' });
  await page.waitForSelector('#token', { timeout: TIMEOUT });
  await page.type('#token', token);
  await page.keyboard.press('Enter');
  await waitView(page, 'queue');
}

async function shot(page, name, fullPage = false) {
  const file = path.join(ARTIFACTS, name + '.png');
  await page.screenshot({ path: file, fullPage });
  report.screenshots[name] = file;
}

// Rates the shown item with the keyboard and moves on; waits for the server's "saved".
async function rateItem(page, reviewer, i, beforeNext) {
  const [a, b, pref] = judgement(reviewer, i);
  await page.keyboard.press(String(a));
  if (reviewer === 1) {
    await page.keyboard.down('Shift');
    await page.keyboard.press('Digit' + b);
    await page.keyboard.up('Shift');
  } else {
    await page.keyboard.press('qwert'[b - 1]);
  }
  await page.keyboard.press(pref);
  await page.waitForFunction((n) => document.querySelector('#progress').dataset.rated === String(n) &&
      document.querySelector('#save-state').textContent === 'saved', { timeout: TIMEOUT }, i + 1);
  const on = await page.$$eval('.rating button.on, #preference button.on', (bs) => bs.map((x) => x.textContent.trim()));
  assert.equal(on.length, 3, `item ${i + 1}: two ratings and a preference are selected (${on})`);
  if (beforeNext) await beforeNext();
  if (i + 1 < ITEMS) {
    await page.keyboard.press(i % 2 ? 'Enter' : 'n');
    await page.waitForFunction((k) => document.querySelector('#progress').textContent === k, { timeout: TIMEOUT },
      `${i + 2}/${ITEMS}`);
  }
}

async function review(browser, reviewer, token) {
  const context = await browser.createBrowserContext();  // its own sessionStorage
  const page = await context.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  await signIn(page, token);
  const row = `tr[data-evaluation="${EVALUATION}"]`;
  await page.waitForSelector(row, { timeout: TIMEOUT });
  assert.equal(await text(page, `${row} .queue-progress`), `0/${ITEMS} rated`);
  if (reviewer === 1) await shot(page, 'queue');
  await page.click(`${row} a.review-link`);
  await waitView(page, 'review');
  assert.equal(await text(page, '#progress'), `1/${ITEMS}`);
  assert.equal(await text(page, '#label-a'), '', 'blind: no identities before submit');
  for (let i = 0; i < 5; i++) {
    await rateItem(page, reviewer, i, reviewer === 1 && i === 2 ? () => shot(page, 'item') : null);
  }
  // Reload mid-way: the server's state resumes at the first unrated item (6).
  await page.reload({ waitUntil: 'load' });
  await waitView(page, 'review');
  assert.equal(await text(page, '#progress'), `6/${ITEMS}`, 'resumes at item 6 after the reload');
  assert.equal(await page.$eval('#progress', (n) => n.dataset.rated), '5');
  assert.equal(await text(page, '#save-state'), 'resumed');
  for (let i = 5; i < ITEMS; i++) await rateItem(page, reviewer, i);
  await page.keyboard.press('s');
  await page.waitForSelector('body[data-submitted="true"]', { timeout: TIMEOUT });
  const labels = [await text(page, '#label-a'), await text(page, '#label-b')].sort();
  assert.deepEqual(labels, ['(adapter)', '(baseline)'], 'identities are shown after submit');
  report.reviewers.push({ reviewer, submitted: true });
  return { context, page };
}

async function adapterPage(page) {
  await page.goto(BASE + '/#/adapters/' + encodeURIComponent(ADAPTER), { waitUntil: 'load' });
  await page.reload({ waitUntil: 'load' });
  await waitView(page, 'adapter');
}

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'qlorad-console-chrome-'));
  const browser = await puppeteer.launch({
    executablePath: process.env.QLORAD_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    userDataDir: profile,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  try {
    const first = await review(browser, 1, process.env.QLORAD_REVIEWER1_TOKEN);
    await first.context.close();
    const second = await review(browser, 2, process.env.QLORAD_REVIEWER2_TOKEN);
    // The adapter page as reviewer 2: agreement and win rate are there; approving is refused.
    const page = second.page;
    await adapterPage(page);
    report.kappa = await text(page, '#stat-kappa b');
    report.win_rate = await text(page, '#stat-win-rate');
    assert.match(report.kappa, /^-?\d\.\d{3}$/, 'kappa is shown as a number');
    assert.match(report.win_rate, /\d+\.\d%.*95% CI \[\d+\.\d%, \d+\.\d%\]/, 'win rate with its 95% interval');
    await page.click('#approve');
    await page.waitForSelector('#decision-status[data-status="403"]', { timeout: TIMEOUT });
    report.reviewer_approve = await text(page, '#decision-status');
    assert.match(report.reviewer_approve, /^403 Forbidden/);
    await second.context.close();
    // The deployer approves with the risk-class fields; the audit trail shows every step.
    const context = await browser.createBrowserContext();
    const deployer = await context.newPage();
    await deployer.setViewport({ width: 1280, height: 900 });
    await signIn(deployer, process.env.QLORAD_DEPLOYER_TOKEN);
    await adapterPage(deployer);
    await deployer.select('#risk-class', 'high');
    await deployer.type('#documentation-ref', 'DOC-42 model card v1');
    await deployer.type('#decision-note', 'two blind reviews agree; approved for the pilot');
    await deployer.click('#approve');
    await deployer.waitForFunction(() => /^Approved: /.test(document.querySelector('#decision-status').textContent) &&
        document.body.dataset.view === 'adapter', { timeout: TIMEOUT });
    report.approved = await text(deployer, '#decision-status');
    report.audit_actions = await deployer.$$eval('#audit-table tr.audit-row', (rows) => rows.map((r) => r.dataset.action));
    report.heatmaps = await deployer.$$eval('table.heatmap', (t) => t.length);
    // The CI gate's verdict for an alias (nothing serves it yet: the gate does not apply).
    await deployer.type('#gate-alias', 'sentiment:prod');
    await deployer.keyboard.press('Tab');
    await deployer.waitForFunction(() => /promotion gate/.test(document.querySelector('#gate-verdict').textContent),
      { timeout: TIMEOUT });
    report.gate = await text(deployer, '#gate-verdict');
    await shot(deployer, 'adapter', true);
    await context.close();
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  console.log(JSON.stringify(report));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err);
  process.exit(1);
});
