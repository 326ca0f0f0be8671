import { expectAccessible } from './a11y';
import { expect, signIn, signOut, test } from './fixtures';
import { apiCall, numberFromUrl } from './incidents-helpers';
import { USERS } from './users';

/**
 * Stored XSS in every text field of an incident (title, description, comment, note, tag and
 * category names), shown on every page that shows them: each must be inert. Any alert() fails
 * the test (here, and in the page fixture); no element may carry a script, an event handler or
 * a javascript: link.
 */
const PAYLOADS = [
  '<img src=x onerror=alert(1)>',
  '<script>alert(1)</script>',
  '[x](javascript:alert(1))',
  '"><svg onload=alert(1)>',
];
const ALL = PAYLOADS.join('\n\n');
const suffix = Date.now().toString(36);

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

test('stored XSS payloads are shown as text everywhere and never run', async ({ page }) => {
  test.setTimeout(300_000);
  const alerts: string[] = [];
  page.on('dialog', (dialog) => {
    alerts.push(dialog.message());
    void dialog.dismiss();
  });
  const scripted = async (where: string) => {
    const found = await page.evaluate(() => {
      const bad: string[] = [];
      for (const el of Array.from(document.querySelectorAll('#root *, body > div *'))) {
        if (el.tagName === 'SCRIPT') bad.push('script element');
        for (const attr of Array.from(el.attributes)) {
          if (/^on/i.test(attr.name)) bad.push(`${el.tagName} ${attr.name}`);
          if (/^\s*javascript:/i.test(attr.value)) bad.push(`${el.tagName} ${attr.name}=${attr.value}`);
        }
      }
      return bad;
    });
    expect(found, `active content on ${where}`).toEqual([]);
    expect(alerts, `alerts on ${where}`).toEqual([]);
  };

  await signIn(page, USERS.admin.username, USERS.admin.password);
  await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
  // Names are at most 64 characters and unique: each payload with a short suffix.
  const categories = PAYLOADS.map((p) => `${p} c${suffix}`);
  const tags = PAYLOADS.map((p) => `${p} t${suffix}`.toLowerCase());
  for (const name of categories) await apiCall(page, 'POST', '/api/v1/incidents/categories', { name, description: name });
  for (const name of tags) await apiCall(page, 'POST', '/api/v1/incidents/tags', { name });

  await page.goto('/incidents/admin/categories');
  for (const name of categories) {
    await expect(page.getByTestId('categories-table').getByRole('row', { name: new RegExp(`^${escape(name)}`) })).toBeVisible();
  }
  await scripted('admin categories');
  await page.goto('/incidents/admin/tags');
  for (const name of tags) {
    await expect(page.getByTestId('tags-table').getByRole('cell', { name, exact: true })).toBeVisible();
  }
  await scripted('admin tags');

  // Declared through the dialog, payloads in the title and the description, filed under them.
  await page.keyboard.press('Alt+Shift+D');
  const dialog = page.getByRole('dialog', { name: 'Declare an incident' });
  await expect(dialog).toBeVisible();
  await expect(dialog.getByRole('checkbox', { name: tags[0] })).toBeVisible();
  await scripted('declare dialog');
  const title = `${PAYLOADS[0]} ${PAYLOADS[1]} ${PAYLOADS[3]} ${suffix}`;
  await dialog.getByLabel(/^Title/).fill(title);
  await dialog.getByLabel(/^Description/).fill(ALL);
  await dialog.getByLabel('Category').selectOption(categories[3]!);
  for (const tag of tags) await dialog.getByRole('checkbox', { name: tag }).check();
  await dialog.getByRole('button', { name: 'Declare' }).click();
  await expect(page.getByRole('heading', { level: 1, name: title })).toBeVisible();
  const number = numberFromUrl(page);
  await page.getByRole('textbox', { name: 'Comment', exact: true }).fill(ALL);
  await page.getByRole('button', { name: 'Add comment' }).click();
  await expect(page.getByTestId('comment')).toHaveCount(1);
  await page.getByLabel(/^Note/).fill(ALL);
  await page.getByRole('button', { name: 'Add note' }).click();
  await expect(page.locator('li[data-kind="note"]')).toHaveCount(1);
  // A title change puts the payload in the timeline's old → new too.
  await apiCall(page, 'PATCH', `/api/v1/incidents/${number}`, { title: `${PAYLOADS[3]} ${suffix}` });
  await signOut(page);

  // Another user (whose display name is a payload too) reads and comments.
  await signIn(page, USERS.xss.username, USERS.xss.password);
  await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
  await scripted('home');
  await page.goto(`/incidents/${number}`);
  await expect(page.getByRole('heading', { level: 1, name: `${PAYLOADS[3]} ${suffix}` })).toBeVisible();
  await page.getByRole('textbox', { name: 'Comment', exact: true }).fill(PAYLOADS.join(' '));
  await page.getByRole('button', { name: 'Add comment' }).click();
  await expect(page.getByTestId('comment')).toHaveCount(2);
  await page.getByLabel(/^Note/).fill(PAYLOADS[2]!);
  await page.getByRole('button', { name: 'Add note' }).click();
  await expect(page.locator('li[data-kind="note"]')).toHaveCount(2);
  await expect(page.getByTestId('timeline')).toContainText(`to “${PAYLOADS[3]} ${suffix}”`);
  await expect(page.getByText(`#${tags[0]}`, { exact: false })).toBeVisible();
  // The markdown link lost its javascript: target; the raw HTML is text or gone, never live.
  await expect(page.getByTestId('incident-description').locator('img, script, svg')).toHaveCount(0);
  await scripted('incident detail');
  await expectAccessible(page, 'incident detail with XSS payloads');

  await page.goto(`/incidents?category=${encodeURIComponent(categories[3]!)}&tag=${encodeURIComponent(tags[0]!)}`);
  await expect(page.getByTestId('incidents-table').getByRole('link', { name: `${PAYLOADS[3]} ${suffix}` })).toBeVisible();
  await expect(page.getByLabel('Category')).toHaveValue(categories[3]!);
  await scripted('incidents list');
  await page.goto(`/incidents?q=${encodeURIComponent(PAYLOADS[1]!)}`);
  await expect(page.getByLabel(/^Search/)).toHaveValue(PAYLOADS[1]!);
  await scripted('incidents list searched for a payload');
  await page.goto('/');
  await expect(page.getByTestId('incidents-summary')).toBeVisible();
  await scripted('home with incidents');
});
