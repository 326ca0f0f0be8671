import path from 'node:path';
import { defineConfig } from '@playwright/test';

const repo = path.resolve(__dirname, '..', '..');

/**
 * End-to-end suite: a real `opsdeck serve` (global-setup.ts) on a free loopback port with a
 * fresh data dir, driven through Debian's Chromium. Run with `npm --prefix frontend run e2e`.
 */
export default defineConfig({
  testDir: __dirname,
  testMatch: /.*\.spec\.ts$/,
  outputDir: path.join(repo, 'test-results'),
  globalSetup: path.join(__dirname, 'global-setup.ts'),
  // Liveness bounds, not speed targets: .ci/run runs these beside the Python suite on two
  // cores, where a sign-in (argon2 at the production cost) can take seconds.
  timeout: 90_000,
  expect: { timeout: 20_000 },
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: !!process.env.CI,
  reporter: [['list']],
  use: {
    browserName: 'chromium',
    headless: true,
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    viewport: { width: 1280, height: 800 },
    launchOptions: {
      executablePath: process.env.OPSDECK_E2E_CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
});
