// Debian's headless Chromium for the browser tests, the benchmark and the screenshot, through
// playwright-core (which downloads no browser of its own). CHROMIUM names the browser (default
// /usr/bin/chromium).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

// The flags this machine's closed network needs (no background connections).
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

// A browser context on a fresh profile (launchPersistentContext takes the user data dir
// itself), with `options` for the context; `close()` ends it and removes the profile.
export async function launch(options = {}) {
  const profile = mkdtempSync(join(tmpdir(), 'cmkguard-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: FLAGS,
    ...options,
  });
  const close = async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}
