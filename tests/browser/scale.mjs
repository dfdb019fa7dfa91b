// `just bench-report`: the HTML report of an organization (1,000 accounts x 17 regions, written by
// `just bench-org` with ORG_REPORT_DIR) in Debian's headless Chromium, as a person uses it: open
// it, filter by an account, clear, sort by severity. Prints the time of each step and the page's
// JS heap, against the same steps on the small golden report (testdata/audit/audit.html) in the
// same run. Checks that the rows shown are right; asserts nothing about time.
//
// Usage: REPORT=path/to/report.html BASELINE=testdata/audit/audit.html node scale.mjs

import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { launch } from './chromium.mjs';

const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
const now = () => process.hrtime.bigint();

async function measure(context, file) {
  const page = await context.newPage();
  page.setDefaultTimeout(600000);
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  let t = now();
  await page.goto(pathToFileURL(resolve(file)).href, { waitUntil: 'load' });
  const load = ms(t);
  const total = await page.$$eval('#findings tbody tr', (rows) => rows.length);
  assert.equal(await page.$eval('#shown-count', (e) => e.textContent), String(total));

  // Filter by the first account of the account filter: only its rows are shown.
  const account = await page.$eval('#filter-account option:nth-child(2)', (o) => o.value);
  t = now();
  await page.selectOption('#filter-account', account);
  const shown = Number(await page.$eval('#shown-count', (e) => e.textContent));
  const filter = ms(t);
  const wrong = await page.$$eval('#findings tbody tr', (rows, a) =>
    rows.filter((r) => !r.hidden && r.dataset.account !== a).length, account);
  assert.equal(wrong, 0, 'a row of another account is shown');
  assert.ok(shown > 0 && shown <= total);

  t = now();
  await page.click('#filter-clear');
  await page.$eval('#shown-count', (e) => e.textContent);
  const clear = ms(t);

  t = now();
  await page.click('#findings thead th:nth-child(6) button');
  const first = await page.$eval('#findings tbody tr', (r) => r.dataset.severity);
  const sort = ms(t);
  assert.ok(['CRITICAL', 'HIGH', 'MEDIUM', 'LOW', 'INFORMATIONAL'].includes(first));

  const client = await context.newCDPSession(page);
  await client.send('Performance.enable');
  const { metrics } = await client.send('Performance.getMetrics');
  const heap = metrics.find((m) => m.name === 'JSHeapUsedSize').value / 2 ** 20;
  const nodes = metrics.find((m) => m.name === 'Nodes').value;
  assert.deepEqual(problems, []);
  await page.close();
  return { file, kib: statSync(file).size / 1024, rows: total, shown, load, filter, clear, sort, heap, nodes };
}

const report = process.env.REPORT;
const baseline = process.env.BASELINE;
if (!report || !baseline) throw new Error('set REPORT and BASELINE');
const browser = await launch({ viewport: { width: 1440, height: 1100 } });
const { context } = browser;
try {
  const base = await measure(context, baseline);
  const big = await measure(context, report);
  const row = (label, m) => [label, m.kib.toFixed(0), m.rows, m.shown, m.load.toFixed(0), m.filter.toFixed(0),
    m.clear.toFixed(0), m.sort.toFixed(0), m.heap.toFixed(1), m.nodes];
  const rows = [
    ['report', 'KiB', 'rows', 'one account', 'open ms', 'filter ms', 'clear ms', 'sort ms', 'JS heap MiB', 'DOM nodes'],
    row('baseline (golden)', base),
    row('organization', big),
    ['organization / baseline', (big.kib / base.kib).toFixed(0) + 'x', (big.rows / base.rows).toFixed(0) + 'x', '',
      (big.load / base.load).toFixed(1) + 'x', (big.filter / base.filter).toFixed(1) + 'x',
      (big.clear / base.clear).toFixed(1) + 'x', (big.sort / base.sort).toFixed(1) + 'x',
      (big.heap / base.heap).toFixed(1) + 'x', (big.nodes / base.nodes).toFixed(0) + 'x'],
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  for (const r of rows) console.log('  ' + r.map((c, i) => String(c).padEnd(widths[i])).join('  '));
} finally {
  await browser.close();
}
