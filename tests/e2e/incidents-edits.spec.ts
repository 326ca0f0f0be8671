import { expectAccessible } from './a11y';
import { expect, signIn, signOut, test } from './fixtures';
import { apiCall, unique } from './incidents-helpers';
import { USERS } from './users';

interface IntegrationCreated {
  id: string;
  token: string;
}

interface IncidentOut {
  number: number;
  severity: string;
}

interface FollowUpOut {
  id: string;
  status: string;
}

test.describe('incidents: editing after the fact', () => {
  test('admins edit an integration’s severity map, and the next alert uses it', async ({ page }) => {
    test.setTimeout(180_000);
    const name = unique('edge generic');
    await signIn(page, USERS.admin.username, USERS.admin.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    const created = await apiCall<IntegrationCreated>(page, 'POST', '/api/v1/incidents/integrations', {
      name,
      kind: 'generic',
      severity_map: { critical: 'SEV1', warning: 'SEV3' },
    });

    await page.getByRole('navigation').getByRole('link', { name: 'Alert integrations' }).click();
    await expect(page.getByRole('heading', { name: 'Alert integrations' })).toBeVisible();
    const row = page.getByTestId('integrations-table').getByRole('row', { name: new RegExp(name) });
    await expect(row).toContainText('critical → SEV1, warning → SEV3');
    const edit = row.getByRole('button', { name: `Edit ${name}` });
    await edit.focus();
    await page.keyboard.press('Enter');
    const dialog = page.getByRole('dialog', { name: 'Edit integration' });
    await expect(dialog).toBeVisible();
    // The focus goes to the form; the map starts from the saved one.
    await expect(dialog.getByLabel(/^Name/)).toBeFocused();
    await expect(dialog.getByLabel(/^Name/)).toHaveValue(name);
    await expect(dialog.getByTestId('severity-map-row')).toHaveCount(2);
    await expect(dialog.getByLabel('Label value 1')).toHaveValue('critical');
    await expectAccessible(page, 'edit integration dialog');

    // critical now means SEV2, and a new value "page" means SEV1.
    await dialog.getByLabel('Severity of value 1').selectOption('SEV2');
    await dialog.getByRole('button', { name: 'Add a value' }).click();
    await dialog.getByLabel('Label value 3').fill('page');
    await dialog.getByLabel('Severity of value 3').selectOption('SEV1');
    await dialog.getByRole('button', { name: 'Save integration' }).click();
    await expect(dialog).toBeHidden();
    await expect(page.getByRole('status').getByText(`“${name}” was saved`)).toBeVisible();
    await expect(row).toContainText('critical → SEV2, warning → SEV3, page → SEV1');
    await expectAccessible(page, 'alert integrations after an edit');

    // The sender's token still works, and its alerts are mapped with the new map.
    const alert = await page.request.post('/api/v1/incidents/integrations/generic', {
      headers: { Authorization: `Bearer ${created.token}` },
      data: { dedup_key: unique('disk'), status: 'firing', title: unique('Disk full'), labels: { severity: 'critical' } },
    });
    expect(alert.status()).toBe(201);
    const { incident } = (await alert.json()) as { incident: number };
    const declared = await apiCall<IncidentOut>(page, 'GET', `/api/v1/incidents/${incident}`);
    expect(declared.severity).toBe('SEV2');
  });

  test('the incident’s editors and a follow-up’s owner change its status on the incident page', async ({ page }) => {
    test.setTimeout(240_000);
    await signIn(page, USERS.admin.username, USERS.admin.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    const incident = await apiCall<IncidentOut>(page, 'POST', '/api/v1/incidents', {
      title: unique('Backups fail'),
      severity: 'SEV3',
    });
    const mine = unique('Alert on failed backups');
    const theirs = unique('Test a restore');
    const owned = await apiCall<FollowUpOut>(page, 'POST', `/api/v1/incidents/${incident.number}/follow-ups`, {
      title: mine,
      owner: USERS.member.username,
    });
    await apiCall(page, 'POST', `/api/v1/incidents/${incident.number}/follow-ups`, { title: theirs });

    await page.goto(`/incidents/${incident.number}`);
    const followUps = page.getByRole('region', { name: 'Follow-ups' });
    const status = followUps.getByLabel(`Status of “${theirs}”`);
    await expect(status).toHaveValue('open');
    await status.selectOption('in_progress');
    await expect(page.getByRole('status').getByText(`Follow-up “${theirs}” is now in progress.`)).toBeVisible();
    await expect(status).toHaveValue('in_progress');
    await expect(page.getByTestId('timeline').getByText('changed a follow-up').first()).toBeVisible();
    await expectAccessible(page, 'incident follow-ups, status changed');
    await signOut(page);

    // The owner (not an editor of the incident) moves their own follow-up, and only it.
    await signIn(page, USERS.member.username, USERS.member.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    await page.goto(`/incidents/${incident.number}`);
    const own = followUps.getByLabel(`Status of “${mine}”`);
    await expect(own).toHaveValue('open');
    await expect(followUps.getByLabel(`Status of “${theirs}”`)).toHaveCount(0);
    await own.focus();
    await own.selectOption('done');
    await expect(page.getByRole('status').getByText(`Follow-up “${mine}” is now done.`)).toBeVisible();
    const listed = await apiCall<{ items: FollowUpOut[] }>(page, 'GET', `/api/v1/incidents/${incident.number}/follow-ups`);
    expect(listed.items.find((item) => item.id === owned.id)?.status).toBe('done');
    await expectAccessible(page, 'incident follow-ups, as their owner');
  });
});
