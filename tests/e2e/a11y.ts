import AxeBuilder from '@axe-core/playwright';
import { expect, type Page } from '@playwright/test';

/** The WCAG 2.1 A and AA rules of axe-core: every page of the app must pass all of them. */
export const WCAG_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

type Scheme = 'light' | 'dark';

interface Violation {
  id: string;
  impact?: string | null;
  help: string;
  helpUrl: string;
  nodes: { target: unknown[]; failureSummary?: string }[];
}

/** One readable block per rule: rule id, impact, what it asks, and each offending selector. */
export function formatViolations(where: string, violations: Violation[]): string {
  if (violations.length === 0) return '';
  const lines = [`${where}: ${violations.length} accessibility rule(s) violated`];
  for (const v of violations) {
    lines.push(`  [${v.impact ?? 'unknown'}] ${v.id}: ${v.help} (${v.helpUrl})`);
    for (const node of v.nodes) {
      const summary = (node.failureSummary ?? '').split('\n').slice(1).join(' ').trim();
      lines.push(`    - ${node.target.map(String).join(' ')}${summary ? ` — ${summary}` : ''}`);
    }
  }
  return lines.join('\n');
}

async function useScheme(page: Page, scheme: Scheme): Promise<void> {
  await page.emulateMedia({ colorScheme: scheme });
  // Mantine's "auto" colour scheme follows prefers-color-scheme through a media listener.
  await expect(page.locator('html')).toHaveAttribute('data-mantine-color-scheme', scheme);
}

async function currentScheme(page: Page): Promise<Scheme> {
  const dark = await page.evaluate(() => window.matchMedia('(prefers-color-scheme: dark)').matches);
  return dark ? 'dark' : 'light';
}

/**
 * Waits until every finite animation and CSS transition on the page has ended: axe must judge the
 * page as the user ends up seeing it, not a dialog half faded in (its text blended with the
 * backdrop reads as too little contrast). Endless ones (loaders) are left running.
 */
async function settled(page: Page): Promise<void> {
  await page.waitForFunction(() =>
    document
      .getAnimations()
      .every((a) => a.playState !== 'running' || a.effect?.getComputedTiming().iterations === Infinity),
  );
}

async function violationsOf(page: Page): Promise<Violation[]> {
  await settled(page);
  // options() first: it replaces the options object, withTags() then adds runOnly to it.
  const results = await new AxeBuilder({ page })
    // WCAG 2.5.3 (label in name, level A): axe ships it as "experimental", off unless named.
    .options({ rules: { 'label-content-name-mismatch': { enabled: true } } })
    .withTags(WCAG_TAGS)
    .analyze();
  return results.violations as Violation[];
}

/**
 * The accessibility report of the page as it is now: axe-core's WCAG 2.1 A/AA rules, run in the
 * light and in the dark colour scheme; '' when there is no violation.
 */
export async function accessibilityReport(page: Page, where?: string): Promise<string> {
  const label = where ?? new URL(page.url()).pathname;
  const original = await currentScheme(page);
  const reports: string[] = [];
  for (const scheme of [original, original === 'light' ? 'dark' : 'light'] as const) {
    await useScheme(page, scheme);
    reports.push(formatViolations(`${label} (${scheme})`, await violationsOf(page)));
  }
  await useScheme(page, original);
  return reports.filter(Boolean).join('\n');
}

/**
 * The accessibility check: fails the test, with a report (rule, impact, selectors, per colour
 * scheme), on any WCAG 2.1 A/AA violation axe finds on the page as it is now. Call it on every
 * page (and every dialog or menu state) a spec shows, once its content has loaded:
 *
 *     await expect(page.getByRole('heading', { name: 'Incidents' })).toBeVisible();
 *     await expectAccessible(page, 'incidents list');
 *
 * The failure is soft: the test goes on and reports every page's violations, then fails. The
 * `page` fixture of fixtures.ts also checks the last page of every test on its own.
 */
export async function expectAccessible(page: Page, where?: string): Promise<void> {
  const report = await accessibilityReport(page, where);
  expect.soft(report, report).toBe('');
}
