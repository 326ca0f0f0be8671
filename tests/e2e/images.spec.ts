import { readFile } from 'node:fs/promises';
import type { Page } from '@playwright/test';
import { expectAccessible } from './a11y';
import { expect, signIn, test } from './fixtures';
import { makePng, startImageServer, type ImageServer } from './image-server';
import { USERS } from './users';

const XSS = '<img src=x onerror=alert(1)>';

/** RFC 4180 records: quoted cells may hold commas, quotes ("") and line breaks. */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cell += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      record.push(cell);
      cell = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      record.push(cell);
      records.push(record);
      record = [];
      cell = '';
    } else cell += ch;
  }
  if (cell !== '' || record.length > 0) records.push([...record, cell]);
  return records;
}

async function openNewBatch(page: Page): Promise<void> {
  await signIn(page, USERS.member.username, USERS.member.password);
  await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
  await page.getByRole('navigation').getByRole('link', { name: 'Images' }).click();
  await expect(page.getByRole('heading', { name: 'Images', exact: true })).toBeVisible();
  await page.getByRole('link', { name: 'New batch' }).click();
  await expect(page.getByRole('heading', { name: 'New image batch' })).toBeVisible();
}

test.describe('images', () => {
  let images: ImageServer;

  test.beforeAll(async () => {
    images = await startImageServer({
      '/red.png': makePng(48, 32, [200, 30, 30]),
      '/green.png': makePng(48, 32, [30, 160, 60]),
      '/blue.png': makePng(40, 40, [30, 60, 200]),
    });
  });

  test.afterAll(async () => {
    await images.close();
  });

  test('a CSV batch runs to completion with live progress, previews and an output CSV', async ({ page }) => {
    test.setTimeout(120_000);
    await openNewBatch(page);

    const csv = [
      'S. No.,Product Name,Input Image Urls',
      `1,Red mug,"${images.origin}/red.png,${images.origin}/blue.png"`,
      `2,"${XSS}",${images.origin}/green.png`,
      '',
    ].join('\r\n');
    await page.getByLabel('Choose a CSV file').setInputFiles({
      name: 'products.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from(csv, 'utf8'),
    });
    await expect(page.getByTestId('chosen-csv')).toContainText('products.csv');
    await page.getByLabel('Output format').selectOption('webp');
    await page.getByRole('textbox', { name: 'Max width (px)' }).fill('32');
    const fetchedBefore = images.requests.length;
    await page.getByRole('button', { name: 'Start batch' }).click();

    await expect(page).toHaveURL(/\/images\/batches\/[0-9a-f]{32}$/);
    const requestId = /\/images\/batches\/([0-9a-f]{32})$/.exec(page.url())?.[1] ?? '';
    await expect(page.getByRole('heading', { name: `Batch ${requestId}` })).toBeVisible();

    // Live progress: the page polls; no reload here.
    await expect(page.getByTestId('batch-status')).toHaveText('Completed', { timeout: 90_000 });
    await expect(page.getByRole('progressbar', { name: 'Batch progress' })).toHaveAttribute(
      'aria-valuetext',
      '3 of 3 processed',
    );
    await expect(page.getByTestId('count-failed')).toHaveText('0');
    await expect(page.getByText('Updating live')).toHaveCount(0);
    expect(images.requests.slice(fetchedBefore).sort()).toEqual(['/blue.png', '/green.png', '/red.png']);

    // The product name is shown as text, never run as HTML.
    await expect(page.getByRole('heading', { name: `2 · ${XSS}` })).toBeVisible();
    await expect(page.locator('img[src="x"]')).toHaveCount(0);

    // Previews come from this origin's /media/ path, resized and converted.
    const preview = page.getByRole('img', { name: `Output of ${images.origin}/red.png` });
    await expect(preview).toBeVisible();
    expect(await preview.getAttribute('src')).toMatch(/^\/media\/[^/]+\.webp$/);
    await expect
      .poll(() => preview.evaluate((img: HTMLImageElement) => (img.complete ? img.naturalWidth : 0)))
      .toBe(32);
    const rows = page.getByTestId('image-row');
    await expect(rows).toHaveCount(3);
    await expect(rows.first()).toContainText('32 × 21');
    await expect(rows.first()).toContainText('WebP');
    await expect(rows.first()).toContainText(/→ .*(smaller|larger|same size)/);
    await expectAccessible(page, 'batch detail, CSV batch completed');
    await expect(page.getByRole('button', { name: /Retry failed images/ })).toHaveCount(0);
    await expect(page.getByRole('button', { name: 'Cancel batch' })).toHaveCount(0);

    // The output CSV: the input columns plus the output URLs, in input order.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('link', { name: 'Download output CSV' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe(`${requestId}-output.csv`);
    const text = (await readFile(await download.path(), 'utf8')).replace(/^\uFEFF/, '');
    const [header, first, second] = parseCsv(text).filter((r) => r.some((cell) => cell !== ''));
    expect(header).toEqual(['S. No.', 'Product Name', 'Input Image Urls', 'Output Image Urls', 'Errors']);
    const outputs = (first?.[3] ?? '').split(',');
    expect(outputs).toHaveLength(2);
    for (const url of [...outputs, second?.[3] ?? '']) {
      expect(url).toMatch(/^https?:\/\/[^/]+\/media\/[^/]+\.webp$/);
    }
    expect(first?.[4]).toBe('');
    expect(second?.[1]).toBe(XSS);
    const served = await page.request.get(new URL(outputs[0] ?? '').pathname);
    expect(served.status()).toBe(200);
    expect(served.headers()['content-type']).toBe('image/webp');

    // The list shows the batch as finished too.
    await page.getByRole('link', { name: '← All batches' }).click();
    const row = page.getByTestId('batches-table').locator(`tr[data-request-id="${requestId}"]`);
    await expect(row).toContainText('Completed');
    await expect(row).toContainText('3 / 3 processed');
  });

  test('uploaded image files are processed the same way', async ({ page }) => {
    test.setTimeout(120_000);
    await openNewBatch(page);
    await page.locator('label', { hasText: 'Upload image files' }).click();
    await page.getByLabel('Choose image files').setInputFiles([
      { name: 'one.png', mimeType: 'image/png', buffer: makePng(20, 20, [10, 10, 10]) },
      { name: 'two.png', mimeType: 'image/png', buffer: makePng(24, 12, [90, 90, 10]) },
    ]);
    await expect(page.getByTestId('chosen-images').getByRole('listitem')).toHaveCount(2);
    await page.getByRole('button', { name: 'Start batch' }).click();

    await expect(page).toHaveURL(/\/images\/batches\/[0-9a-f]{32}$/);
    await expect(page.getByTestId('batch-status')).toHaveText('Completed', { timeout: 90_000 });
    const preview = page.getByRole('img', { name: 'Output of two.png' });
    await expect(preview).toBeVisible();
    expect(await preview.getAttribute('src')).toMatch(/^\/media\/[^/]+\.png$/);
    await expect(page.getByTestId('image-row').nth(1)).toContainText('24 × 12');
  });

  test('a failed image is retried once its source is fixed', async ({ page }) => {
    test.setTimeout(120_000);
    await openNewBatch(page);
    const csv = `S. No.,Product Name,Input Image Urls\n1,Lamp,"${images.origin}/red.png,${images.origin}/late.png"\n`;
    await page.getByLabel('Choose a CSV file').setInputFiles({
      name: 'lamp.csv',
      mimeType: 'text/csv',
      buffer: Buffer.from(csv, 'utf8'),
    });
    await page.getByRole('button', { name: 'Start batch' }).click();
    await expect(page.getByTestId('batch-status')).toHaveText('Completed with errors', { timeout: 90_000 });
    await expect(page.getByTestId('image-error')).toContainText('404');
    await expectAccessible(page, 'batch detail with a failed image');
    await page.locator('label', { hasText: 'Failed only' }).click();
    await expect(page.getByTestId('image-row')).toHaveCount(1);

    images.files['/late.png'] = makePng(30, 30, [120, 120, 0]);
    await page.getByRole('button', { name: 'Retry failed images (1)' }).click();
    await expect(page.getByText('1 failed image queued again.')).toBeVisible();
    await expect(page.getByTestId('batch-status')).toHaveText('Completed', { timeout: 90_000 });
    await expect(page.getByTestId('count-failed')).toHaveText('0');
    await expect(page.getByText('No image has failed.')).toBeVisible();
    await page.locator('label', { hasText: 'All images' }).click();
    await expect(page.getByRole('img', { name: `Output of ${images.origin}/late.png` })).toBeVisible();
  });

  test.describe('a bad CSV', () => {
    test.use({ allowedFailures: ['422 /api/v1/images/batches'] });

    test('is refused with every bad row listed and nothing stored', async ({ page }) => {
      await openNewBatch(page);
      const batchCount = async () =>
        ((await (await page.request.get('/api/v1/images/batches?limit=100')).json()) as { items: unknown[] }).items
          .length;
      const before = await batchCount();
      const csv = [
        'S. No.,Product Name,Input Image Urls',
        `1,Mug,${images.origin}/red.png`,
        '2,Plate,not-a-url',
        `1,Bowl,${images.origin}/green.png`,
        '4,Cup,',
        '',
      ].join('\n');
      await page.getByLabel('Choose a CSV file').setInputFiles({
        name: 'broken.csv',
        mimeType: 'text/csv',
        buffer: Buffer.from(csv, 'utf8'),
      });
      await page.getByRole('button', { name: 'Start batch' }).click();

      const alert = page.getByTestId('submit-error');
      await expect(alert).toContainText('Nothing was stored');
      const problems = alert.getByRole('table', { name: 'Problems in the CSV file' });
      await expect(problems.locator('tbody tr')).toHaveCount(3);
      await expect(problems.locator('tbody tr').first().locator('td').first()).toHaveText('3');
      await expect(problems).toContainText('not-a-url');
      await expectAccessible(page, 'new batch, CSV refused');
      await expect(page).toHaveURL(/\/images\/new$/);
      expect(await batchCount()).toBe(before);
    });
  });
});
