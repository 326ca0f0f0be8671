import { expectAccessible } from './a11y';
import { expect, signIn, signOut, test } from './fixtures';
import { USERS } from './users';

test('an admin creates a user who then signs in', async ({ page }) => {
  await signIn(page, USERS.admin.username, USERS.admin.password);
  await expect(page.getByRole('heading', { name: `Welcome, ${USERS.admin.displayName}` })).toBeVisible();
  await page.getByRole('navigation').getByRole('link', { name: 'Users' }).click();
  await expect(page.getByRole('heading', { name: 'Users' })).toBeVisible();

  // Display names from other users render as text in the admin list too.
  const table = page.getByTestId('users-table');
  await expect(table.getByText(USERS.xss.displayName, { exact: true })).toBeVisible();
  await expect(page.locator('img[src="x"]')).toHaveCount(0);

  const newUser = { username: 'new-hire', email: 'new-hire@example.com', password: 'saffron-glacier-orbit-29' };
  await page.getByRole('button', { name: 'Create user' }).click();
  const dialog = page.getByRole('dialog', { name: 'Create a user' });
  await dialog.getByLabel('Username').fill(newUser.username);
  await dialog.getByLabel('E-mail').fill(newUser.email);
  await dialog.getByLabel('Display name').fill('New Hire');
  await dialog.getByLabel('Initial password').fill(newUser.password);
  await dialog.getByRole('button', { name: 'Create user' }).click();
  await expect(page.getByText(`User ${newUser.username} created.`)).toBeVisible();
  await expectAccessible(page, 'admin users, user created');
  await page.getByRole('searchbox', { name: 'Search' }).fill('new-hire');
  await expect(table.locator('tbody tr')).toHaveCount(1);
  await expect(table.getByText('New Hire')).toBeVisible();

  await signOut(page);
  await signIn(page, newUser.username, newUser.password);
  await expect(page.getByRole('heading', { name: 'Welcome, New Hire' })).toBeVisible();
  await expect(page.getByTestId('me-username')).toHaveText(newUser.username);
});

test('an admin sees the audit log and its chain status', async ({ page }) => {
  await signIn(page, USERS.admin.username, USERS.admin.password);
  await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
  // A deep link loaded from the server: the SPA fallback serves index.html for it.
  await page.goto('/admin/audit');
  await expect(page.getByRole('heading', { name: 'Audit log' })).toBeVisible();
  await expect(page.getByTestId('chain-status')).toContainText('Audit chain intact');
  await expect(page.getByTestId('audit-table').locator('tbody tr').first()).toBeVisible();
  await page.getByLabel('Actor').fill(USERS.admin.username);
  await page.getByRole('button', { name: 'Apply filters' }).click();
  await expect(page.getByTestId('audit-table').locator('tbody tr').first()).toContainText(USERS.admin.username);
});

test('a member cannot reach the admin pages', async ({ page }) => {
  await signIn(page, USERS.member.username, USERS.member.password);
  await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
  const nav = page.getByRole('navigation');
  await expect(nav.getByRole('link', { name: 'Home' })).toBeVisible();
  await expect(nav.getByRole('link', { name: 'Users' })).toHaveCount(0);
  await expect(nav.getByRole('link', { name: 'Audit log' })).toHaveCount(0);

  for (const path of ['/admin', '/admin/users', '/admin/audit']) {
    await page.goto(path);
    await expect(page.getByRole('heading', { name: 'Access denied' })).toBeVisible();
  }
  expect((await page.request.get('/api/v1/users')).status()).toBe(403);
  expect((await page.request.get('/api/v1/audit')).status()).toBe(403);
});
