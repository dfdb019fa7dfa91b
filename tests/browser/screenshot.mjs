// The README's picture of a report: REPORT_DIR/report.html (a demo organization, `just
// report-screenshot`) rendered by Debian's headless Chromium into the PNG named by the argument.

import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { launch } from './chromium.mjs';

const [out] = process.argv.slice(2);
if (!out) throw new Error('usage: node screenshot.mjs OUT.png');
const url = pathToFileURL(join(resolve(process.env.REPORT_DIR ?? ''), 'report.html')).href;
const browser = await launch({ viewport: { width: 1440, height: 1100 }, deviceScaleFactor: 1 });
try {
  const page = await browser.context.newPage();
  await page.goto(url, { waitUntil: 'load' });
  // Most severe first, as a reader would sort it.
  await page.click('#findings thead th:nth-child(6) button');
  await page.screenshot({ path: resolve(out), fullPage: false });
} finally {
  await browser.close();
}
