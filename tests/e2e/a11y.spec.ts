import { expectAccessible } from './a11y';
import { expect, signIn, test } from './fixtures';
import { makePng } from './image-server';
import { USERS } from './users';

/**
 * The accessibility sweep: every page of the app, signed out, as a member and as an admin, each
 * checked by axe (WCAG 2.1 A/AA) in the light and the dark colour scheme. A new page adds a
 * visit here (and calls expectAccessible wherever its own spec shows it).
 */

test('signed out: the sign-in page, with and without an error', async ({ page }) => {
  await page.goto('/signin');
  await expect(page.getByRole('heading', { name: 'Sign in to OpsDeck' })).toBeVisible();
  await expectAccessible(page, 'sign-in');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expectAccessible(page, 'sign-in, empty fields');
});

test.describe('sign-in refused', () => {
  test('shows an accessible error', async ({ page }) => {
    await signIn(page, USERS.member.username, 'not-the-password');
    await expect(page.getByRole('alert')).toBeVisible();
    await expectAccessible(page, 'sign-in, wrong password');
  });
});

test('as a member: home, images, new batch, batch detail, account, not found, forbidden', async ({ page }) => {
  test.setTimeout(300_000);
  await signIn(page, USERS.member.username, USERS.member.password);
  await expect(page.getByTestId('health-status')).toHaveText('All systems ready');
  await expectAccessible(page, 'home');

  await page.getByRole('button', { name: /Account menu/ }).click();
  await expect(page.getByRole('menuitem', { name: 'Sign out' })).toBeVisible();
  await expectAccessible(page, 'home, account menu open');
  await page.keyboard.press('Escape');

  await page.goto('/images');
  await expect(page.getByRole('heading', { name: 'Images', exact: true })).toBeVisible();
  await expectAccessible(page, 'images list');

  await page.goto('/images/new');
  await expect(page.getByRole('heading', { name: 'New image batch' })).toBeVisible();
  await expectAccessible(page, 'new batch (CSV)');
  await page.locator('label', { hasText: 'Upload image files' }).click();
  await page.getByLabel('Choose image files').setInputFiles([
    { name: 'one.png', mimeType: 'image/png', buffer: makePng(20, 20, [10, 10, 10]) },
  ]);
  await expect(page.getByTestId('chosen-images').getByRole('listitem')).toHaveCount(1);
  await expectAccessible(page, 'new batch (files chosen)');
  await page.getByRole('button', { name: 'Start batch' }).click();
  await expect(page).toHaveURL(/\/images\/batches\/[0-9a-f]{32}$/);
  await expect(page.getByTestId('batch-status')).toHaveText('Completed', { timeout: 90_000 });
  await expectAccessible(page, 'batch detail');

  await page.goto('/images');
  await expect(page.getByTestId('batches-table').locator('tbody tr').first()).toBeVisible();
  await expectAccessible(page, 'images list with a batch');

  await page.goto('/incidents');
  await expect(page.getByRole('heading', { name: 'Incidents', exact: true })).toBeVisible();
  await expectAccessible(page, 'incidents list');
  await page.keyboard.press('Alt+Shift+D');
  const declare = page.getByRole('dialog', { name: 'Declare an incident' });
  await expect(declare.getByLabel(/^Title/)).toBeFocused();
  await expectAccessible(page, 'declare incident dialog');
  await declare.getByLabel(/^Title/).fill('Accessibility sweep incident');
  await declare.getByRole('button', { name: 'Declare' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Accessibility sweep incident' })).toBeVisible();
  await expect(page.getByTestId('timeline')).toBeVisible();
  await expectAccessible(page, 'incident detail');
  await page.goto('/incidents');
  await expect(page.getByTestId('incidents-table').locator('tbody tr').first()).toBeVisible();
  await expectAccessible(page, 'incidents list with an incident');

  for (const [path, heading] of [
    ['/account', 'Account'],
    ['/incidents/dashboard', 'Incident dashboard'],
    ['/incidents/follow-ups', 'Follow-ups'],
    ['/chat', 'Chat'],
    ['/no-such-page', /not found/i],
    ['/admin/users', 'Access denied'],
  ] as const) {
    await page.goto(path);
    await expect(page.getByRole('heading', { name: heading, exact: typeof heading === 'string' })).toBeVisible();
    await expectAccessible(page, path);
  }
});

test('as an admin: users, the create dialog, the audit log, incident categories, tags and integrations', async ({ page }) => {
  test.setTimeout(120_000);
  await signIn(page, USERS.admin.username, USERS.admin.password);
  await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
  await expectAccessible(page, 'home (admin)');

  await page.goto('/admin/users');
  await expect(page.getByTestId('users-table').locator('tbody tr').first()).toBeVisible();
  await expectAccessible(page, 'admin users');
  await page.getByRole('button', { name: 'Create user' }).click();
  await expect(page.getByRole('dialog', { name: 'Create a user' })).toBeVisible();
  await expectAccessible(page, 'admin users, create dialog');
  await page.keyboard.press('Escape');

  await page.goto('/admin/audit');
  await expect(page.getByTestId('audit-table').locator('tbody tr').first()).toBeVisible();
  await expectAccessible(page, 'audit log');

  await page.goto('/incidents/admin/categories');
  await expect(page.getByRole('heading', { name: 'Incident categories' })).toBeVisible();
  await expectAccessible(page, 'incident categories');
  await page.goto('/incidents/admin/tags');
  await expect(page.getByRole('heading', { name: 'Incident tags' })).toBeVisible();
  await expectAccessible(page, 'incident tags');
  await page.goto('/incidents/admin/integrations');
  await expect(page.getByRole('heading', { name: 'Alert integrations' })).toBeVisible();
  await expectAccessible(page, 'alert integrations');
});
