// The README's picture of a report: REPORT_DIR/report.html (a demo organization, `just
// report-screenshot`) rendered by Debian's headless Chromium into the PNG named by the argument.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const [out] = process.argv.slice(2);
if (!out) throw new Error('usage: node screenshot.mjs OUT.png');
const url = pathToFileURL(join(resolve(process.env.REPORT_DIR ?? ''), 'report.html')).href;
const profile = mkdtempSync(join(tmpdir(), 'cmkguard-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  viewport: { width: 1440, height: 1100 },
  deviceScaleFactor: 1,
});
try {
  const page = await context.newPage();
  await page.goto(url, { waitUntil: 'load' });
  // Most severe first, as a reader would sort it.
  await page.click('#findings thead th:nth-child(6) button');
  await page.screenshot({ path: resolve(out), fullPage: false });
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
