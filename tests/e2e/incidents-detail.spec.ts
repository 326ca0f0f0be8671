import { expectAccessible } from './a11y';
import { expect, signIn, test } from './fixtures';
import { makePng } from './image-server';
import { apiCall, unique } from './incidents-helpers';
import { USERS } from './users';

interface IncidentOut {
  number: number;
}

interface WebhookOut {
  id: string;
  url: string;
}

test.describe('incident page: attachments, follow-ups, clearing the category', () => {
  test('attach files (images get a preview), download and remove them; add follow-ups; clear the category', async ({
    page,
  }) => {
    test.setTimeout(300_000);
    await signIn(page, USERS.admin.username, USERS.admin.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    const category = unique('Storage');
    await apiCall(page, 'POST', '/api/v1/incidents/categories', { name: category });
    const title = unique('Uploads fail');
    const incident = await apiCall<IncidentOut>(page, 'POST', '/api/v1/incidents', {
      title,
      severity: 'SEV3',
      category,
    });
    const number = incident.number;
    await page.goto(`/incidents/${number}`);
    await expect(page.getByRole('heading', { level: 1, name: title })).toBeVisible();
    await expect(page.getByText(`· ${category}`)).toBeVisible();

    // Attachments: the file input is reached with the keyboard like any field.
    const attachments = page.getByRole('region', { name: 'Attachments' });
    await expect(attachments.getByText('No attachments.')).toBeVisible();
    const picker = page.getByLabel('Choose files to attach');
    await picker.focus();
    await expect(picker).toBeFocused();
    await picker.setInputFiles([
      { name: 'graph.png', mimeType: 'image/png', buffer: makePng(64, 40, [200, 60, 30]) },
      { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('502 from the edge\n', 'utf8') },
    ]);
    await expect(page.getByRole('status').getByText('Attached graph.png, notes.txt.')).toBeVisible();
    await expect(attachments.getByTestId('attachment')).toHaveCount(2);
    // The image pipeline makes the preview; the list polls until it is there.
    await expect(attachments.getByRole('img', { name: 'Preview of graph.png' })).toBeVisible({ timeout: 120_000 });
    const downloading = page.waitForEvent('download');
    await attachments.getByRole('link', { name: /^notes\.txt/ }).click();
    expect((await downloading).suggestedFilename()).toBe('notes.txt');
    await expectAccessible(page, 'incident attachments');
    await attachments.getByRole('button', { name: 'Remove notes.txt' }).click();
    const removing = page.getByRole('dialog', { name: 'Remove attachment' });
    await expect(removing).toBeVisible();
    await expectAccessible(page, 'remove attachment dialog');
    await removing.getByRole('button', { name: 'Remove attachment' }).click();
    await expect(removing).toBeHidden();
    await expect(attachments.getByTestId('attachment')).toHaveCount(1);
    await expect(attachments.getByTestId('attachment')).toContainText('graph.png');

    // Follow-ups: added here, listed here and on the follow-ups page.
    const followUps = page.getByRole('region', { name: 'Follow-ups' });
    await expect(followUps.getByText('No follow-ups yet.')).toBeVisible();
    const followUp = unique('Alert on upload errors');
    const due = new Date(Date.now() + 5 * 86_400_000).toISOString().slice(0, 10);
    await followUps.getByLabel(/^What to do/).fill(followUp);
    await followUps.getByLabel('Owner (username)').fill(USERS.member.username);
    await followUps.getByLabel('Due date').fill(due);
    await followUps.getByLabel('Due date').press('Enter');
    await expect(page.getByRole('status').getByText(`Follow-up “${followUp}” was added.`)).toBeVisible();
    const item = followUps.getByTestId('incident-follow-up');
    await expect(item).toHaveCount(1);
    await expect(item).toContainText(followUp);
    await expect(item).toContainText('Open');
    await expect(item).toContainText(USERS.member.displayName ?? USERS.member.username);
    await expect(item).toContainText(`due ${due}`);
    await expect(followUps.getByLabel(/^What to do/)).toHaveValue('');
    await expectAccessible(page, 'incident follow-ups');

    // The category is cleared in the edit dialog ("No category").
    await page.getByRole('button', { name: 'Edit incident' }).click();
    const edit = page.getByRole('dialog', { name: 'Edit incident' });
    await expect(edit.getByLabel('Category')).toHaveValue(category);
    await edit.getByLabel('Category').selectOption({ label: 'No category' });
    await edit.getByRole('button', { name: 'Save changes' }).click();
    await expect(edit).toBeHidden();
    await expect(page.getByText(`· ${category}`)).toHaveCount(0);
    await expect(
      page.getByTestId('timeline').getByText(`changed the category from “${category}” to nothing`),
    ).toBeVisible();
    const saved = await apiCall<{ category: string | null }>(page, 'GET', `/api/v1/incidents/${number}`);
    expect(saved.category).toBeNull();
  });
});

test.describe('incidents admin: webhook deliveries and the severity map', () => {
  test('admins read the delivery history of a webhook', async ({ page }) => {
    test.setTimeout(180_000);
    await signIn(page, USERS.admin.username, USERS.admin.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    // Port 9 (discard) refuses: the delivery is tried and fails, and is retried later.
    const url = `http://127.0.0.1:9/${unique('history').replace(' ', '-')}`;
    const hook = await apiCall<WebhookOut>(page, 'POST', '/api/v1/incidents/webhooks', {
      url,
      events: ['incident.created'],
    });
    await apiCall(page, 'POST', '/api/v1/incidents', { title: unique('Queue backs up'), severity: 'SEV4' });

    await page.getByRole('navigation').getByRole('link', { name: 'Incident webhooks' }).click();
    await expect(page.getByRole('heading', { name: 'Incident webhooks' })).toBeVisible();
    const row = page.getByTestId('webhooks-table').getByRole('row', { name: new RegExp(hook.url) });
    const open = row.getByRole('button', { name: `Deliveries to ${url}` });
    await open.focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Delivery history' });
    await expect(dialog).toBeVisible();
    await expect(dialog).toContainText(url);
    const deliveries = dialog.getByTestId('delivery');
    // Refreshed until the first attempt is recorded: its status, count and error are shown.
    await expect(async () => {
      await dialog.getByRole('button', { name: 'Refresh' }).click();
      await expect(deliveries.first().locator('td').nth(3)).not.toHaveText('0', { timeout: 2_000 });
    }).toPass({ timeout: 90_000 });
    await expect(deliveries).toHaveCount(1);
    const delivery = deliveries.first();
    await expect(delivery).toContainText('incident.created');
    await expect(delivery.locator('td').nth(2)).toHaveText(/^(Pending|Failed)$/);
    await expect(delivery.locator('td').nth(4)).not.toHaveText(/^(Not tried yet|No answer recorded)$/);
    await expectAccessible(page, 'webhook delivery history');
    await page.keyboard.press('Escape');
    await expect(dialog).toBeHidden();
    await expect(open).toBeFocused();
  });

  // A label value over the API's limit is refused with a 422 on purpose.
  test.use({ allowedFailures: ['422 /api/v1/incidents/integrations'] });
  test('admins map label values to severities, with the problems next to the rows', async ({ page }) => {
    test.setTimeout(180_000);
    const name = unique('staging alertmanager');
    await signIn(page, USERS.admin.username, USERS.admin.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    await page.getByRole('navigation').getByRole('link', { name: 'Alert integrations' }).click();
    await expect(page.getByRole('heading', { name: 'Alert integrations' })).toBeVisible();
    await page.getByLabel(/^Name/).fill(name);
    await page.getByLabel(/^Severity label/).fill('priority');
    const map = page.getByTestId('severity-map');
    await expect(map.getByTestId('severity-map-row')).toHaveCount(4);
    await expect(page.getByLabel('Label value 1')).toHaveValue('critical');

    // Two rows, added with the keyboard: "page" → SEV1, and "CRITICAL" which repeats row 1.
    const add = map.getByRole('button', { name: 'Add a value' });
    await add.focus();
    await page.keyboard.press('Enter');
    await page.getByLabel('Label value 5').fill('page');
    await page.getByLabel('Severity of value 5').selectOption('SEV1');
    await add.focus();
    await page.keyboard.press('Enter');
    await page.getByLabel('Label value 6').fill('CRITICAL');
    await page.getByRole('button', { name: 'Create integration' }).click();
    await expect(page.getByLabel('Label value 6')).toHaveAttribute('aria-invalid', 'true');
    await expect(map).toContainText('is already on row 1');
    await expectAccessible(page, 'severity map, a repeated value');

    // The API's own refusal (a value over 255 characters) is shown next to its row too.
    await page.getByLabel('Label value 6').fill('x'.repeat(300));
    await page.getByRole('button', { name: 'Create integration' }).click();
    await expect(map).toContainText('at most 255 characters');
    await expect(page.getByLabel('Label value 6')).toHaveAttribute('aria-invalid', 'true');
    await expect(page.getByLabel('Label value 5')).not.toHaveAttribute('aria-invalid', 'true');

    await map.getByRole('button', { name: 'Remove value 6' }).click();
    await map.getByRole('button', { name: 'Remove value 4' }).click();
    await page.getByRole('button', { name: 'Create integration' }).click();
    await expect(page.getByTestId('integration-token')).toBeVisible();
    const row = page.getByTestId('integrations-table').getByRole('row', { name: new RegExp(name) });
    await expect(row).toContainText('priority');
    await expect(row).toContainText('page → SEV1');
    await expect(row).toContainText('critical → SEV1');
    await expect(row).not.toContainText('info');
    // The form starts again from the defaults.
    await expect(map.getByTestId('severity-map-row')).toHaveCount(4);
    await expectAccessible(page, 'alert integrations with a custom severity map');
  });
});
