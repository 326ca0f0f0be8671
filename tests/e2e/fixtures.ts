import { test as base, expect, type ConsoleMessage, type Page } from '@playwright/test';
import { accessibilityReport } from './a11y';

/**
 * Chromium logs every non-2xx fetch as a console error. Only the answers the app expects as
 * part of signing in are allowed: a 401 from /api/v1/auth/session (no session yet on load, a
 * wrong password, a 2FA step), plus what a test lists in `allowedFailures`. Every other
 * console error, uncaught exception or dialog fails the test.
 */
function expected(message: ConsoleMessage, allowed: string[]): boolean {
  const status = /^Failed to load resource: the server responded with a status of (\d{3})\b/.exec(
    message.text(),
  )?.[1];
  if (!status) return false;
  const path = new URL(message.location().url ?? '', 'http://x').pathname;
  return [`401 /api/v1/auth/session`, ...allowed].includes(`${status} ${path}`);
}

interface Options {
  /** More failed responses a test provokes on purpose, as "STATUS /path". */
  allowedFailures: string[];
  /** Run the accessibility check (a11y.ts) on the page a test ends on. On by default. */
  checkA11yAtEnd: boolean;
}

export const test = base.extend<Options>({
  allowedFailures: [[], { option: true }],
  checkA11yAtEnd: [true, { option: true }],
  // eslint-disable-next-line no-empty-pattern
  baseURL: async ({}, use) => {
    const url = process.env.OPSDECK_E2E_BASE_URL;
    if (!url) throw new Error('OPSDECK_E2E_BASE_URL is not set: global-setup.ts did not run');
    await use(url);
  },
  page: async ({ page, allowedFailures, checkA11yAtEnd }, use, testInfo) => {
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error' && !expected(message, allowedFailures)) {
        problems.push(`console error: ${message.text()} (${message.location().url})`);
      }
    });
    page.on('pageerror', (error) => problems.push(`uncaught exception: ${error.message}`));
    page.on('dialog', (dialog) => {
      problems.push(`unexpected dialog (${dialog.type()}): ${dialog.message()}`);
      void dialog.dismiss();
    });
    await use(page);
    expect(problems, 'the browser reported errors').toEqual([]);
    // Whatever page a test ends on passes the accessibility check too (when the test passed;
    // a failed test's page is no reliable state to check).
    if (checkA11yAtEnd && testInfo.status === testInfo.expectedStatus && page.url().startsWith('http')) {
      const report = await accessibilityReport(page, `last page of the test, ${new URL(page.url()).pathname}`);
      expect(report, report).toBe('');
    }
  },
});

export { expect };

export async function signIn(page: Page, username: string, password: string): Promise<void> {
  await page.goto('/signin');
  await page.getByLabel('Username or e-mail').fill(username);
  await page.getByLabel(/^Password/).fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

export async function signOut(page: Page): Promise<void> {
  await page.getByRole('button', { name: /Account menu/ }).click();
  await page.getByRole('menuitem', { name: 'Sign out' }).click();
  await expect(page.getByRole('heading', { name: 'Sign in to OpsDeck' })).toBeVisible();
}
