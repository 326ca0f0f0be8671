import type { Page } from '@playwright/test';
import { expect, signIn, test } from './fixtures';
import { makePng } from './image-server';
import { USERS } from './users';

/**
 * prefers-reduced-motion: the batch page of a batch still at work (its answer rewritten to
 * "processing", so the moment does not depend on the worker's speed) runs no animation when
 * the user asks for reduced motion, and does run its progress stripes otherwise.
 */
async function openProcessingBatch(page: Page): Promise<void> {
  await signIn(page, USERS.member.username, USERS.member.password);
  await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
  await page.goto('/images/new');
  await page.locator('label', { hasText: 'Upload image files' }).click();
  await page.getByLabel('Choose image files').setInputFiles([
    { name: 'still.png', mimeType: 'image/png', buffer: makePng(12, 12, [0, 0, 0]) },
    { name: 'also.png', mimeType: 'image/png', buffer: makePng(12, 12, [250, 250, 250]) },
  ]);
  await page.getByRole('button', { name: 'Start batch' }).click();
  await expect(page).toHaveURL(/\/images\/batches\/[0-9a-f]{32}$/);
  await page.route(/\/api\/v1\/images\/batches\/[0-9a-f]{32}(\?.*)?$/, async (route) => {
    const response = await route.fetch();
    const batch = (await response.json()) as Record<string, unknown>;
    await route.fulfill({
      response,
      json: { ...batch, status: 'processing', processed_images: 1, failed_images: 0 },
    });
  });
  await page.reload();
  await expect(page.getByTestId('batch-status')).toHaveText('Processing');
  await expect(page.getByText('Updating live')).toBeVisible();
}

/** Every element of the page whose computed animation is not "none". */
function runningAnimations(page: Page): Promise<string[]> {
  return page.evaluate(() =>
    [...document.querySelectorAll('*')]
      .filter((el) => getComputedStyle(el).animationName !== 'none')
      .map((el) => `${el.tagName.toLowerCase()}.${[...el.classList].join('.')}: ${getComputedStyle(el).animationName}`),
  );
}

test.describe('with prefers-reduced-motion: reduce', () => {
  test.use({ reducedMotion: 'reduce' });

  test('nothing moves on the page of a batch at work', async ({ page }) => {
    test.setTimeout(60_000);
    await openProcessingBatch(page);
    expect(await runningAnimations(page)).toEqual([]);
    await expect(page.locator('.mantine-Progress-section[data-animated]')).toHaveCount(0);
  });
});

test.describe('with no motion preference', () => {
  test.use({ reducedMotion: 'no-preference' });

  test('the progress bar of a batch at work is animated', async ({ page }) => {
    test.setTimeout(60_000);
    await openProcessingBatch(page);
    await expect(page.locator('.mantine-Progress-section[data-animated]')).toHaveCount(1);
    expect(await runningAnimations(page)).not.toEqual([]);
  });
});
