import { test as base, expect, type ConsoleMessage, type Page } from '@playwright/test';
import { accessibilityReport } from './a11y';

/**
 * Every request the page makes must succeed: a request that fails (refused, reset, blocked)
 * or answers 400 or more fails the test, and so does every console error, uncaught exception
 * or dialog. Chromium also logs each failed answer as a console error; that message is judged
 * with its answer. Allowed: the answers signing in gives on purpose (`POST
 * /api/v1/auth/session` answering 401 for a wrong password or the 2FA step), plus what a test
 * lists in `allowedFailures`. A signed-out page load probes no session, so it logs nothing.
 * A request the browser itself abandons (net::ERR_ABORTED: a navigation away) is no failure.
 */
const SIGN_IN_ANSWERS = ['401 POST /api/v1/auth/session'];

/** "STATUS /path" matches any method; "STATUS METHOD /path" that method only. */
function allowedAnswer(status: number, method: string, url: string, allowed: string[]): boolean {
  const path = new URL(url, 'http://x').pathname;
  return [...SIGN_IN_ANSWERS, ...allowed].some(
    (entry) => entry === `${status} ${path}` || entry === `${status} ${method} ${path}`,
  );
}

function failedLoadMessage(message: ConsoleMessage): boolean {
  // Reported (or allowed) with its response by the `response` handler.
  return /^Failed to load resource: the server responded with a status of \d{3}\b/.test(message.text());
}

interface Options {
  /** More failed answers a test provokes on purpose, as "STATUS /path" or "STATUS METHOD /path". */
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
      if (message.type() === 'error' && !failedLoadMessage(message)) {
        problems.push(`console error: ${message.text()} (${message.location().url})`);
      }
    });
    page.on('response', (response) => {
      const request = response.request();
      if (response.status() >= 400 && !allowedAnswer(response.status(), request.method(), response.url(), allowedFailures)) {
        problems.push(`failed answer: ${response.status()} ${request.method()} ${response.url()}`);
      }
    });
    page.on('requestfailed', (request) => {
      const reason = request.failure()?.errorText ?? 'unknown';
      if (reason !== 'net::ERR_ABORTED') {
        problems.push(`failed request: ${request.method()} ${request.url()} (${reason})`);
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
