// The HTML report of `cmkguard audit` in a real headless Chromium (Debian's, through the DevTools
// protocol with playwright-core): every finding row and the totals show, the filters and the
// sort work (so the script ran under the page's Content-Security-Policy), names that are HTML and
// script show as text and run nothing, and the page asks the network for nothing.
//
// REPORT_DIR holds report.html and expected.json (`cargo run --example report_world -- browser
// DIR`); CHROMIUM is the browser (default /usr/bin/chromium). Run by `just test-browser`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { launch } from './chromium.mjs';

const dir = resolve(process.env.REPORT_DIR ?? '');
const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
const url = pathToFileURL(join(dir, 'report.html')).href;

let browser;
let page;
const problems = [];
const requests = [];
const dialogs = [];

before(async () => {
  browser = await launch();
  page = await browser.context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('request', (r) => requests.push(r.url()));
  page.on('dialog', async (d) => {
    dialogs.push(d.message());
    await d.dismiss();
  });
  await page.goto(url, { waitUntil: 'load' });
});

after(async () => {
  await browser?.close();
});

const visibleRows = () =>
  page.$$eval('#findings tbody tr', (rows) =>
    rows.filter((r) => !r.hidden && r.offsetParent !== null).map((r) => ({
      account: r.dataset.account,
      region: r.dataset.region,
      reason: r.dataset.reason,
      severity: r.dataset.severity,
      name: r.querySelector('td.secret').textContent,
    })),
  );
const text = (selector) => page.$eval(selector, (e) => e.textContent.trim());

test('every finding row and the totals show', async () => {
  const rows = await visibleRows();
  assert.equal(rows.length, expected.findings.length);
  const key = (f) => `${f.account} ${f.region} ${f.name} ${f.reason}`;
  assert.deepEqual(rows.map(key).sort(), expected.findings.map(key).sort());
  assert.equal(await text('#count-audited'), String(expected.audited));
  assert.equal(await text('#count-findings'), String(expected.findings.length));
  assert.equal(await text('#shown-count'), String(expected.findings.length));
  const severities = await page.$$eval('#by-severity tr', (rows) =>
    rows.reduce((sum, r) => sum + Number(r.querySelector('td').textContent), 0),
  );
  assert.equal(severities, expected.findings.length);
});

test('the charts rank the accounts and regions by findings', async () => {
  for (const [chart, field] of [['#chart-accounts', 'account'], ['#chart-regions', 'region']]) {
    const counts = {};
    for (const f of expected.findings) counts[f[field]] = (counts[f[field]] ?? 0) + 1;
    const bars = await page.$$eval(`${chart} g`, (gs) => gs.map((g) => [g.dataset.name, Number(g.dataset.count)]));
    assert.ok(bars.length > 0 && bars.length <= 10, chart);
    for (const [name, n] of bars) assert.equal(n, counts[name], `${chart} ${name}`);
    const ns = bars.map(([, n]) => n);
    assert.deepEqual(ns, [...ns].sort((a, b) => b - a), `${chart} is ranked`);
    // Drawn: each bar has a width.
    const widths = await page.$$eval(`${chart} rect`, (rs) => rs.map((r) => r.getBBox().width));
    assert.ok(widths.every((w) => w > 0), chart);
  }
});

test('filtering by an account leaves only that account\'s rows', async () => {
  const accounts = [...new Set(expected.findings.map((f) => f.account))];
  assert.ok(accounts.length >= 2, 'the world has findings in two accounts');
  for (const account of accounts) {
    await page.selectOption('#filter-account', account);
    const rows = await visibleRows();
    const want = expected.findings.filter((f) => f.account === account).length;
    assert.equal(rows.length, want, account);
    assert.ok(rows.every((r) => r.account === account), account);
    assert.equal(await text('#shown-count'), String(want));
  }
  // Two filters at once, then all again.
  const [first] = expected.findings;
  await page.selectOption('#filter-account', first.account);
  await page.selectOption('#filter-region', first.region);
  const both = await visibleRows();
  assert.ok(both.length > 0 && both.every((r) => r.account === first.account && r.region === first.region));
  await page.click('#filter-clear');
  assert.equal((await visibleRows()).length, expected.findings.length);
});

test('filtering by reason and severity', async () => {
  await page.selectOption('#filter-reason', 'key-disabled');
  const rows = await visibleRows();
  assert.equal(rows.length, expected.findings.filter((f) => f.reason === 'key-disabled').length);
  assert.ok(rows.every((r) => r.reason === 'key-disabled' && r.severity === 'HIGH'));
  await page.selectOption('#filter-reason', '');
  await page.selectOption('#filter-severity', 'MEDIUM');
  assert.ok((await visibleRows()).every((r) => r.severity === 'MEDIUM'));
  await page.click('#filter-clear');
});

test('a click on a header sorts the table', async () => {
  const rank = { CRITICAL: 0, HIGH: 1, MEDIUM: 2, LOW: 3, INFORMATIONAL: 4 };
  await page.click('#findings thead th:nth-child(6) button');
  let rows = await visibleRows();
  const ranks = rows.map((r) => rank[r.severity]);
  assert.deepEqual(ranks, [...ranks].sort((a, b) => a - b), 'most severe first');
  assert.equal(await page.getAttribute('#findings thead th:nth-child(6)', 'aria-sort'), 'ascending');
  await page.click('#findings thead th:nth-child(3) button');
  await page.click('#findings thead th:nth-child(3) button');
  rows = await visibleRows();
  assert.equal(await page.getAttribute('#findings thead th:nth-child(3)', 'aria-sort'), 'descending');
  const names = rows.map((r) => r.name);
  const collator = new Intl.Collator(undefined, { numeric: true });
  assert.deepEqual(names, [...names].sort((a, b) => collator.compare(b, a)));
});

test('names and tags that are HTML and script show as text and run nothing', async () => {
  assert.ok(expected.hostile.length > 0);
  const names = await page.$$eval('#findings td.secret', (cells) => cells.map((c) => c.textContent));
  for (const hostile of expected.hostile) assert.ok(names.includes(hostile), `shown as text: ${hostile}`);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.equal(await page.$$eval('body img, #findings svg, #findings script', (es) => es.length), 0);
  assert.equal(await page.$$eval('script', (es) => es.length), 1);
  assert.deepEqual(dialogs, []);
});

test('the Keys section lists each reviewed key and the secrets on it', async () => {
  assert.ok(expected.key_finding_secrets > 0, 'the world has keys with findings');
  const rows = await page.$$eval('#key-findings tbody tr', (rows) =>
    rows.map((r) => ({
      arn: r.dataset.keyArn,
      secrets: Number(r.querySelector('td.secrets').textContent),
      words: Array.from(r.querySelectorAll('li[data-word]'), (li) => li.dataset.word),
    })),
  );
  assert.ok(rows.length > 0);
  assert.ok(rows.every((r) => r.arn.startsWith('arn:aws:kms:') && r.words.length > 0));
  assert.equal(rows.reduce((sum, r) => sum + r.secrets, 0), expected.key_finding_secrets);
  const ns = rows.map((r) => r.secrets);
  assert.deepEqual(ns, [...ns].sort((a, b) => b - a), 'most secrets first');
  assert.equal(await text('#keys-with-findings'), String(rows.length));
});

// keys.html: a report of hand-made records whose keys have chosen findings (report_world), one
// detail HTML and script.
test('the Keys section shows a key, its words, its secrets, what to do, and a hostile detail as text', async () => {
  const want = expected.keys_page;
  const keysPage = await browser.context.newPage();
  const seen = [];
  keysPage.on('pageerror', (e) => seen.push(`page error: ${e.message}`));
  keysPage.on('console', (m) => seen.push(`console ${m.type()}: ${m.text()}`));
  keysPage.on('request', (r) => {
    if (!r.url().startsWith('file:')) seen.push(`request: ${r.url()}`);
  });
  keysPage.on('dialog', async (d) => {
    seen.push(`dialog: ${d.message()}`);
    await d.dismiss();
  });
  await keysPage.goto(pathToFileURL(join(dir, 'keys.html')).href, { waitUntil: 'load' });
  const rows = await keysPage.$$eval('#key-findings tbody tr', (rows) =>
    rows.map((r) => ({
      arn: r.cells[0].textContent,
      account: r.cells[1].textContent,
      region: r.cells[2].textContent,
      words: Array.from(r.cells[3].querySelectorAll('li'), (li) => li.querySelector('code').textContent),
      details: Array.from(r.cells[3].querySelectorAll('li .detail'), (d) => d.textContent),
      secrets: Number(r.cells[4].textContent),
      advice: Array.from(r.cells[5].querySelectorAll('li'), (li) => li.textContent),
    })),
  );
  const withFindings = want.keys.filter((k) => k.words.length > 0);
  assert.deepEqual(
    rows.map((r) => r.arn),
    withFindings.sort((a, b) => b.secrets - a.secrets).map((k) => k.arn),
    'each key with findings, most secrets first',
  );
  for (const key of withFindings) {
    const row = rows.find((r) => r.arn === key.arn);
    assert.equal(row.account, key.account);
    assert.equal(row.region, key.region);
    assert.equal(row.secrets, key.secrets);
    assert.deepEqual(row.words, key.words);
    // Backticks become code elements: the text is the detail without them.
    assert.deepEqual(row.details, key.details.map((d) => d.replaceAll('`', '')));
    assert.deepEqual(row.advice, key.words.map((w, i) => `${w}: ${key.advice[i].replaceAll('`', '')}`));
  }
  assert.ok(rows.some((r) => r.details.includes(want.hostile.replaceAll('`', ''))), 'the hostile detail shows as text');
  assert.equal(await keysPage.$$eval('#keys img, #keys script, #keys [onerror]', (es) => es.length), 0);
  assert.equal(await keysPage.evaluate(() => window.__pwned), undefined);
  const clean = want.keys.filter((k) => k.words.length === 0);
  assert.equal(await keysPage.$eval('#keys-clean', (e) => e.textContent), String(clean.length));
  assert.equal(await keysPage.$eval('#keys-reviewed', (e) => e.textContent), String(want.keys.length));
  const folded = await keysPage.$$eval('#clean-keys li', (lis) => lis.map((li) => li.dataset.keyArn));
  assert.deepEqual(folded, clean.map((k) => k.arn));
  assert.equal(await keysPage.$eval('#clean-keys', (d) => d.open), false, 'the clean keys are folded');
  assert.deepEqual(seen, []);
  await keysPage.close();
});

test('no error, no violation of the page\'s policy, nothing fetched', async () => {
  assert.deepEqual(problems, []);
  assert.deepEqual(requests.filter((u) => !u.startsWith('file:')), []);
  const csp = await page.getAttribute('meta[http-equiv="Content-Security-Policy"]', 'content');
  assert.match(csp, /default-src 'none'/);
});
