// An HTML report with more findings than it lists at a time (`cargo run --example report_world --
// big DIR`: 520 MEDIUM findings, then 3 HIGH) in headless Chromium: the first page is listed and
// the count says so, "Show more" lists the rest, a filter lists all its matches, printing lists
// every match, and a sort lists the first of the new order. REPORT_DIR is that DIR; run by `just test-browser`.

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
let pageSize;
const problems = [];

before(async () => {
  browser = await launch();
  page = await browser.context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  await page.goto(url, { waitUntil: 'load' });
  pageSize = Number(await page.getAttribute('#findings', 'data-page'));
});

after(async () => {
  await browser?.close();
});

const listed = () =>
  page.$$eval('#findings tbody tr', (rows) =>
    rows.filter((r) => !r.hidden && r.offsetParent !== null).map((r) => r.dataset.severity));
const text = (selector) => page.$eval(selector, (e) => e.textContent.trim());

test('the first page is listed, and the count says how many of how many', async () => {
  const total = expected.findings.length;
  assert.ok(pageSize > 0 && total > pageSize, `${total} findings, ${pageSize} a page`);
  assert.equal((await listed()).length, pageSize);
  assert.equal(await text('#shown-count'), String(total));
  assert.equal(await text('#listed-count'), String(pageSize));
  assert.ok(await page.isVisible('#listed-note'));
  assert.ok(await page.isVisible('#show-more'));
});

test('"Show more" lists the rest', async () => {
  await page.click('#show-more');
  assert.equal((await listed()).length, expected.findings.length);
  assert.ok(!(await page.isVisible('#show-more')));
  assert.ok(!(await page.isVisible('#listed-note')));
});

test('a filter lists every match, and clearing it lists one page again', async () => {
  await page.selectOption('#filter-severity', 'HIGH');
  const high = expected.findings.filter((f) => f.reason === 'key-disabled').length;
  assert.ok(high > 0);
  const rows = await listed();
  assert.equal(rows.length, high);
  assert.ok(rows.every((s) => s === 'HIGH'));
  assert.ok(!(await page.isVisible('#show-more')));
  await page.click('#filter-clear');
  assert.equal((await listed()).length, pageSize);
});

test('printing lists every matching row, and the screen is one page again after', async () => {
  // Chromium prints to PDF as to paper (beforeprint, then afterprint); a listener added after
  // the report's own counts the rows listed when the page is printed.
  await page.evaluate(() => {
    window.addEventListener('beforeprint', () => {
      window.printedRows = document.querySelectorAll('#findings tbody tr:not([hidden])').length;
    });
  });
  const pdf = await page.pdf();
  assert.ok(pdf.length > 0);
  assert.equal(await page.evaluate(() => window.printedRows), expected.findings.length);
  assert.equal((await listed()).length, pageSize);
});

test('a sort lists the first of the new order', async () => {
  // The HIGH findings come last in the audit; sorted most severe first, they are listed first.
  await page.click('#findings thead th:nth-child(6) button');
  const rows = await listed();
  assert.equal(rows.length, pageSize);
  const high = expected.findings.filter((f) => f.reason === 'key-disabled').length;
  assert.deepEqual(rows.slice(0, high), Array(high).fill('HIGH'));
  assert.ok(rows.slice(high).every((s) => s === 'MEDIUM'));
  assert.deepEqual(problems, []);
});
