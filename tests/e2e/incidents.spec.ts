import { expectAccessible } from './a11y';
import { expect, signIn, signOut, test } from './fixtures';
import { apiCall, numberFromUrl, unique } from './incidents-helpers';
import { USERS } from './users';

interface IncidentOut {
  number: number;
  status: string;
  allowed_transitions: string[];
}

test.describe('incidents', () => {
  test.describe('main flow', () => {
    // The empty title the dialog sends on purpose is refused with a 422.
    test.use({ allowedFailures: ['422 /api/v1/incidents'] });
    test('declare with the keyboard shortcut, find it in the list, drive it through the workflow, comment', async ({ page }) => {
      test.setTimeout(300_000);
      const title = unique('Checkout returns 502');
      await signIn(page, USERS.admin.username, USERS.admin.password);
      await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();

      // The shortcut works from any page, the dialog takes the focus and keeps it.
      await page.keyboard.press('Alt+Shift+D');
      const dialog = page.getByRole('dialog', { name: 'Declare an incident' });
      await expect(dialog).toBeVisible();
      const titleField = dialog.getByLabel(/^Title/);
      await expect(titleField).toBeFocused();
      await expectAccessible(page, 'declare dialog');
      for (let i = 0; i < 20; i++) {
        await page.keyboard.press('Tab');
        expect(await dialog.evaluate((el) => el.contains(document.activeElement))).toBe(true);
      }

      // Refused by the server: the error sits next to the field it names.
      await titleField.focus();
      await page.keyboard.press('Enter');
      await expect(titleField).toHaveAttribute('aria-invalid', 'true');
      await expect(dialog.getByRole('alert').first()).toBeVisible();
      await expectAccessible(page, 'declare dialog with errors');

      await titleField.focus();
      await page.keyboard.type(title);
      // Tab to the severity radios (SEV3 is chosen), arrow to SEV2.
      await page.keyboard.press('Tab');
      await expect(dialog.getByRole('radio', { name: 'SEV3 · minor' })).toBeFocused();
      await page.keyboard.press('ArrowLeft');
      await expect(dialog.getByRole('radio', { name: 'SEV2 · major' })).toBeChecked();
      await page.keyboard.press('Tab');
      await expect(dialog.getByLabel(/^Description/)).toBeFocused();
      await page.keyboard.type('Payments **fail** for EU customers.');
      await titleField.focus();
      await page.keyboard.press('Enter');
      await expect(dialog).toBeHidden();

      await expect(page).toHaveURL(/\/incidents\/\d+$/);
      const number = numberFromUrl(page);
      await expect(page.getByRole('heading', { level: 1, name: title })).toBeVisible();
      await expect(page.getByTestId('incident-key')).toHaveText(`INC-${number}`);
      await expect(page.getByTestId('incident-description').locator('strong')).toHaveText('fail');
      await expect(page.getByTestId('incident-status')).toHaveText('Triage');
      await expectAccessible(page, 'incident detail');

      // Only the allowed next states are offered: never "Close" from triage.
      const transitions = page.getByTestId('transitions').getByRole('button');
      const expectTransitions = async (names: string[]) => {
        await expect(transitions).toHaveText(names);
        const incident = await apiCall<IncidentOut>(page, 'GET', `/api/v1/incidents/${number}`);
        expect(incident.allowed_transitions).toHaveLength(names.length);
      };
      await expectTransitions([
        'Acknowledge: Investigating',
        'Acknowledge: Identified',
        'Acknowledge: Monitoring',
        'Resolve',
      ]);
      await page.getByRole('button', { name: 'Acknowledge: Investigating' }).focus();
      await page.keyboard.press('Enter');
      await expect(page.getByTestId('incident-status')).toHaveText('Investigating');
      await expect(page.getByTestId('incident-status')).toBeFocused();
      await expect(page.getByRole('status').filter({ hasText: `INC-${number} is now Investigating.` })).toBeVisible();
      await expectTransitions(['Move to Identified', 'Move to Monitoring', 'Resolve']);
      await page.getByRole('button', { name: 'Resolve' }).click();
      await expect(page.getByTestId('incident-status')).toHaveText('Resolved');
      await expectTransitions(['Close', 'Reopen']);
      await page.getByRole('button', { name: 'Close' }).click();
      await expect(page.getByTestId('incident-status')).toHaveText('Closed');
      await expectTransitions(['Reopen']);
      await page.getByRole('button', { name: 'Reopen' }).click();
      await expect(page.getByTestId('incident-status')).toHaveText('Investigating');

      // Editors change the details; a severity change is on the timeline.
      await page.getByRole('button', { name: 'Edit incident' }).click();
      const edit = page.getByRole('dialog', { name: 'Edit incident' });
      await expect(edit.getByLabel(/^Title/)).toBeFocused();
      await expectAccessible(page, 'edit incident dialog');
      await edit.getByRole('radio', { name: 'SEV1 · critical' }).check();
      await edit.getByRole('button', { name: 'Save changes' }).click();
      await expect(edit).toBeHidden();
      await expect(page.getByText('SEV1 · critical').first()).toBeVisible();
      await expect(page.getByTestId('timeline').getByText('changed the severity from SEV2 · major to SEV1 · critical')).toBeVisible();

      // Every move is on the timeline; a pinned note stands out.
      const timeline = page.getByTestId('timeline');
      await expect(timeline.getByText('moved it from Resolved to Closed')).toBeVisible();
      await page.getByLabel(/^Note/).fill('Rolled back **v2.3**');
      await page.getByLabel('Pin this note').check();
      await page.getByRole('button', { name: 'Add note' }).click();
      const note = timeline.locator('li[data-kind="note"]');
      await expect(note.getByText('Pinned', { exact: true })).toBeVisible();
      await expect(note.locator('strong')).toHaveText('v2.3');
      await page.locator('label', { hasText: 'Pinned only' }).click();
      await expect(timeline.getByTestId('timeline-event')).toHaveCount(1);
      await page.locator('label', { hasText: 'All events' }).click();
      await expect(timeline.getByTestId('timeline-event')).not.toHaveCount(1);

      // Comment, edit it (marked edited), delete it (a placeholder stays).
      await page.getByRole('textbox', { name: 'Comment', exact: true }).fill('Looking at the load balancer');
      await page.getByRole('button', { name: 'Add comment' }).click();
      const comment = page.getByTestId('comment').first();
      await expect(comment).toContainText('Looking at the load balancer');
      await comment.getByRole('button', { name: /^Edit/ }).click();
      await page.getByLabel('Edit your comment').fill('It was the load balancer');
      await page.getByRole('button', { name: 'Save comment' }).click();
      await expect(comment).toContainText('It was the load balancer');
      await expect(comment).toContainText('(edited)');
      await comment.getByRole('button', { name: /^Delete/ }).click();
      await expect(page.getByRole('dialog', { name: 'Delete this comment?' })).toBeVisible();
      await expectAccessible(page, 'delete comment dialog');
      await page.getByRole('button', { name: 'Delete comment' }).click();
      await expect(comment).toContainText('This comment was deleted.');
      await expectAccessible(page, 'incident detail with timeline and comments');

      // The list finds it, by search and filters kept in the URL.
      await page.goto(`/incidents?severity=SEV1&q=${encodeURIComponent(title)}`);
      await expect(page.getByRole('heading', { name: 'Incidents', exact: true })).toBeVisible();
      const table = page.getByTestId('incidents-table');
      await expect(table.getByRole('link', { name: title })).toBeVisible();
      await expect(page.getByRole('checkbox', { name: 'SEV1 · critical' })).toBeChecked();
      await expect(page.getByLabel(/^Search/)).toHaveValue(title);
      await expectAccessible(page, 'incidents list, filtered');
      // The filters live in the URL: the box shows checked once the navigation has rendered.
      await page.getByRole('checkbox', { name: 'SEV4 · low' }).click();
      await expect(page.getByRole('checkbox', { name: 'SEV4 · low' })).toBeChecked();
      await expect(page).toHaveURL(/severity=SEV1&severity=SEV4/);
      await expect(table.getByRole('link', { name: title })).toBeVisible();
      await page.goto(`/incidents?status=closed&q=${encodeURIComponent(title)}`);
      await expect(page.getByText('No incident matches')).toBeVisible();
      await expectAccessible(page, 'incidents list, nothing matches');

      // The saved view sets the URL filters; the admin declared it, so it is theirs.
      await page.goto('/incidents');
      await page.getByRole('link', { name: 'My open incidents' }).click();
      await expect(page).toHaveURL(/mine=true/);
      await expect(page.getByRole('link', { name: 'My open incidents' })).toHaveAttribute('aria-current', 'page');
      await expect(page.getByRole('switch', { name: /Only mine/ })).toBeChecked();
      await expect(table.getByRole('link', { name: title })).toBeVisible();
      await table.getByRole('link', { name: title }).click();
      await expect(page.getByRole('heading', { level: 1, name: title })).toBeVisible();
    });
  });

  test('a member sees no workflow buttons on an incident they cannot edit, and may watch it', async ({ page }) => {
    test.setTimeout(120_000);
    await signIn(page, USERS.admin.username, USERS.admin.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    const incident = await apiCall<IncidentOut>(page, 'POST', '/api/v1/incidents', {
      title: unique('Queue backlog'),
      severity: 'SEV3',
    });
    await signOut(page);
    await signIn(page, USERS.member.username, USERS.member.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    await page.goto(`/incidents/${incident.number}`);
    await expect(page.getByTestId('incident-status')).toHaveText('Triage');
    await expect(page.getByTestId('transitions')).toHaveCount(0);
    await expect(page.getByText('Only its commander, its assignees and admins can change its status.')).toBeVisible();
    await page.getByRole('button', { name: 'Watch', exact: true }).click();
    await expect(page.getByTestId('watchers')).toContainText(USERS.member.displayName);
    await expect(page.getByRole('button', { name: 'Stop watching' })).toBeVisible();
    await expectAccessible(page, 'incident detail (member)');
  });

  test.describe('missing', () => {
    test.use({ allowedFailures: ['404 /api/v1/incidents/999999'] });
    test('an unknown incident shows a not-found page', async ({ page }) => {
      test.setTimeout(120_000);
      await signIn(page, USERS.member.username, USERS.member.password);
      await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
      await page.goto('/incidents/999999');
      await expect(page.getByRole('heading', { name: 'Incident not found' })).toBeVisible();
      await expectAccessible(page, 'incident not found');
      await page.goto('/incidents/not-a-number');
      await expect(page.getByRole('heading', { name: 'Incident not found' })).toBeVisible();
    });
  });

  test.describe('admin', () => {
    // A category named twice is refused with a 409 on purpose.
    test.use({ allowedFailures: ['409 /api/v1/incidents/categories'] });
    test('admins manage categories and tags, and people file incidents under them', async ({ page }) => {
      test.setTimeout(240_000);
      const category = unique('Network');
      const tag = unique('edge').toLowerCase().replace(' ', '-');
      await signIn(page, USERS.admin.username, USERS.admin.password);
      await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
      await page.getByRole('navigation').getByRole('link', { name: 'Incident categories' }).click();
      await expect(page.getByRole('heading', { name: 'Incident categories' })).toBeVisible();
      await expectAccessible(page, 'admin incident categories');
      await page.getByLabel(/^Name/).fill(category);
      await page.getByLabel(/^Description/).fill('Links, DNS, load balancers');
      await page.getByRole('button', { name: 'Add category' }).click();
      await expect(page.getByTestId('categories-table')).toContainText(category);
      // The same name again is refused, next to the field.
      await page.getByLabel(/^Name/).fill(category);
      await page.getByRole('button', { name: 'Add category' }).click();
      await expect(page.getByLabel(/^Name/)).toHaveAttribute('aria-invalid', 'true');
      await expectAccessible(page, 'admin incident categories, with an error');
      await page.getByRole('button', { name: `Edit ${category}` }).click();
      await expect(page.getByRole('dialog', { name: 'Edit category' })).toBeVisible();
      await expectAccessible(page, 'admin incident categories, edit dialog');
      await page.keyboard.press('Escape');

      await page.getByRole('navigation').getByRole('link', { name: 'Incident tags' }).click();
      await expect(page.getByRole('heading', { name: 'Incident tags' })).toBeVisible();
      await page.getByLabel(/^Name/).fill(tag);
      await page.getByRole('button', { name: 'Add tag' }).click();
      await expect(page.getByTestId('tags-table')).toContainText(tag);
      await expectAccessible(page, 'admin incident tags');

      await page.getByRole('button', { name: 'Declare incident' }).click();
      const dialog = page.getByRole('dialog', { name: 'Declare an incident' });
      const title = unique('DNS lookups time out');
      await dialog.getByLabel(/^Title/).fill(title);
      await dialog.getByLabel('Category').selectOption(category);
      await dialog.getByRole('checkbox', { name: tag }).check();
      await dialog.getByRole('button', { name: 'Declare' }).click();
      await expect(page.getByRole('heading', { level: 1, name: title })).toBeVisible();
      await expect(page.getByText(`#${tag}`)).toBeVisible();

      await page.goto(`/incidents?category=${encodeURIComponent(category)}&tag=${encodeURIComponent(tag)}`);
      await expect(page.getByLabel('Category')).toHaveValue(category);
      await expect(page.getByTestId('incidents-table').getByRole('link')).toHaveText([title]);
    });
  });

  test('admins create an alert integration, see its token once, and revoke it', async ({ page }) => {
    test.setTimeout(180_000);
    const name = unique('prod alertmanager');
    await signIn(page, USERS.admin.username, USERS.admin.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    await page.getByRole('navigation').getByRole('link', { name: 'Alert integrations' }).click();
    await expect(page.getByRole('heading', { name: 'Alert integrations' })).toBeVisible();
    await expectAccessible(page, 'admin alert integrations');
    await page.getByLabel(/^Name/).fill(name);
    await page.getByRole('button', { name: 'Create integration' }).click();
    const shown = page.getByTestId('integration-token');
    await expect(shown).toBeVisible();
    const token = await shown.getByLabel('Token').inputValue();
    expect(token.length).toBeGreaterThan(20);
    await expectAccessible(page, 'admin alert integrations, token shown');
    const row = page.getByTestId('integrations-table').getByRole('row', { name: new RegExp(name) });
    await expect(row).toContainText('Active');
    await expect(row).toContainText(token.slice(0, 4));
    await expect(row).not.toContainText(token);
    await page.getByRole('button', { name: 'I have copied it' }).click();
    await expect(shown).toBeHidden();
    // Never shown again: not after a reload either.
    await page.reload();
    await expect(page.getByRole('heading', { name: 'Alert integrations' })).toBeVisible();
    await expect(page.getByText(token)).toHaveCount(0);
    await row.getByRole('button', { name: /^Revoke/ }).click();
    await expect(page.getByRole('dialog', { name: 'Revoke integration' })).toBeVisible();
    await page.getByRole('button', { name: 'Revoke integration' }).click();
    await expect(row).toContainText('Revoked');
  });

  test('postmortem: write it, preview it, send it for review and publish it; dashboard and follow-ups', async ({ page }) => {
    test.setTimeout(240_000);
    await signIn(page, USERS.admin.username, USERS.admin.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    const title = unique('Disk full on db-2');
    const incident = await apiCall<IncidentOut>(page, 'POST', '/api/v1/incidents', { title, severity: 'SEV1' });
    await apiCall(page, 'POST', `/api/v1/incidents/${incident.number}/transition`, { to: 'resolved' });
    // Started from the template through the API: the page's own "start" answer is a 404 first.
    await apiCall(page, 'POST', `/api/v1/incidents/${incident.number}/postmortem`);
    const followUp = unique('Alert on disk at 80%');
    const due = new Date(Date.now() + 7 * 86_400_000).toISOString().slice(0, 10);
    await apiCall(page, 'POST', `/api/v1/incidents/${incident.number}/follow-ups`, {
      title: followUp,
      owner: USERS.member.username,
      due_date: due,
      status: 'open',
    });

    await page.goto(`/incidents/${incident.number}`);
    await expect(page.getByRole('heading', { level: 1, name: title })).toBeVisible();
    await page.getByRole('link', { name: 'Postmortem', exact: true }).click();
    await expect(page.getByRole('heading', { name: `Postmortem of INC-${incident.number}` })).toBeVisible();
    await expect(page.getByTestId('postmortem-status')).toHaveText('Draft');
    await expectAccessible(page, 'postmortem editor');
    const editor = page.getByRole('textbox', { name: 'Postmortem' });
    await editor.fill('## Summary\n\nThe disk **filled up**.');
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    await expect(page.getByRole('status').getByText('Saved.')).toBeVisible();
    await page.getByRole('tab', { name: 'Preview' }).click();
    await expect(page.getByTestId('postmortem-preview').locator('strong')).toHaveText('filled up');
    await expectAccessible(page, 'postmortem preview');
    await page.getByRole('button', { name: 'Send for review' }).click();
    await expect(page.getByTestId('postmortem-status')).toHaveText('In review');
    await page.getByRole('button', { name: 'Publish' }).click();
    await expect(page.getByTestId('postmortem-status')).toHaveText('Published');

    await page.goto('/incidents/follow-ups');
    await expect(page.getByRole('heading', { name: 'Follow-ups' })).toBeVisible();
    const row = page.getByTestId('follow-ups-table').getByRole('row', { name: new RegExp(followUp) });
    await expect(row).toContainText(`INC-${incident.number}`);
    await expect(row).toContainText(due);
    await expectAccessible(page, 'follow-ups');

    await page.goto('/incidents');
    await page.getByRole('link', { name: 'Dashboard' }).click();
    await expect(page.getByRole('heading', { name: 'Incident dashboard' })).toBeVisible();
    await expect(page.getByTestId('open-by-severity')).toBeVisible();
    await expect(page.getByTestId('mtt-table').locator('tbody tr')).toHaveCount(8);
    await expectAccessible(page, 'incident dashboard');
  });

  test('admins write postmortem templates', async ({ page }) => {
    test.setTimeout(180_000);
    const name = unique('Short template');
    await signIn(page, USERS.admin.username, USERS.admin.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    await page.getByRole('navigation').getByRole('link', { name: 'Postmortem templates' }).click();
    await expect(page.getByRole('heading', { name: 'Postmortem templates' })).toBeVisible();
    await page.getByLabel(/^Name/).fill(name);
    await page.getByLabel(/^Template/).fill('## Summary\n\n## Root causes\n');
    await page.getByRole('button', { name: 'Add template' }).click();
    const row = page.getByTestId('templates-table').getByRole('row', { name: new RegExp(name) });
    await expect(row).toBeVisible();
    await expectAccessible(page, 'postmortem templates');
    await row.getByRole('button', { name: /^Edit/ }).click();
    const dialog = page.getByRole('dialog', { name: 'Edit template' });
    await expect(dialog.getByLabel(/^Name/)).toHaveValue(name);
    await expectAccessible(page, 'postmortem templates, edit dialog');
    await dialog.getByLabel(/^Template/).fill('## Summary\n\n## Impact\n');
    await dialog.getByRole('button', { name: 'Save template' }).click();
    await expect(dialog).toBeHidden();
    await expect(page.getByRole('status').getByText(`Template “${name}” saved.`)).toBeVisible();
  });

  test('admins add and delete an incident webhook', async ({ page }) => {
    test.setTimeout(180_000);
    const url = `http://127.0.0.1:9/${unique('hook').replace(' ', '-')}`;
    await signIn(page, USERS.admin.username, USERS.admin.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    await page.getByRole('navigation').getByRole('link', { name: 'Incident webhooks' }).click();
    await expect(page.getByRole('heading', { name: 'Incident webhooks' })).toBeVisible();
    await page.getByLabel(/^URL/).fill(url);
    await page.getByRole('checkbox', { name: 'incident.resolved' }).check();
    await page.getByRole('button', { name: 'Add webhook' }).click();
    const row = page.getByTestId('webhooks-table').getByRole('row', { name: new RegExp(url) });
    await expect(row).toContainText('incident.resolved');
    await expectAccessible(page, 'incident webhooks');
    await row.getByRole('button', { name: /^Delete/ }).click();
    await page.getByRole('button', { name: 'Delete webhook' }).click();
    await expect(row).toHaveCount(0);
  });

  test('people choose which incident e-mails they get', async ({ page }) => {
    test.setTimeout(120_000);
    await signIn(page, USERS.member.username, USERS.member.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    await page.goto('/incidents');
    await page.getByRole('link', { name: 'E-mail preferences' }).click();
    await expect(page.getByRole('heading', { name: 'Incident e-mails' })).toBeVisible();
    const digest = page.getByRole('switch', { name: /Daily digest/ });
    const before = await digest.isChecked();
    await digest.setChecked(!before);
    await page.getByRole('button', { name: 'Save preferences' }).click();
    await expect(page.getByRole('status').getByText('Your e-mail preferences were saved.')).toBeVisible();
    await expectAccessible(page, 'incident e-mail preferences');
    await page.reload();
    await expect(page.getByRole('switch', { name: /Daily digest/ })).toBeChecked({ checked: !before });
  });

  test.describe('as a member', () => {
    test.use({ allowedFailures: [] });
    test('the admin pages of incidents are refused', async ({ page }) => {
      await signIn(page, USERS.member.username, USERS.member.password);
      await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
      await page.goto('/incidents/admin/categories');
      await expect(page.getByRole('heading', { name: 'Access denied' })).toBeVisible();
    });
  });
});
