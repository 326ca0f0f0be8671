import type { Page } from '@playwright/test';
import { expect } from './fixtures';

/** A call to the API with the page's session (and its CSRF token for writes). */
export async function apiCall<T>(page: Page, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, data?: unknown): Promise<T> {
  const csrf = (await page.context().cookies()).find((c) => c.name === 'opsdeck_csrf')?.value ?? '';
  const response = await page.request.fetch(path, {
    method,
    data,
    headers: method === 'GET' ? {} : { 'X-CSRF-Token': csrf },
  });
  expect(response.ok(), `${method} ${path}: ${response.status()} ${await response.text()}`).toBe(true);
  return (response.status() === 204 ? undefined : await response.json()) as T;
}

/** A name no other test (or earlier run against the same server) has used. */
export function unique(prefix: string): string {
  return `${prefix} ${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
}

/** The incident number in the address of its page. */
export function numberFromUrl(page: Page): number {
  const match = /\/incidents\/(\d+)$/.exec(new URL(page.url()).pathname);
  if (!match?.[1]) throw new Error(`not an incident page: ${page.url()}`);
  return Number(match[1]);
}
