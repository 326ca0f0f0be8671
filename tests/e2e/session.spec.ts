import { expect, signIn, test } from './fixtures';
import { USERS } from './users';

test.describe('an ended session', () => {
  // The app's next call after the session is revoked elsewhere answers 401 on purpose.
  test.use({ allowedFailures: ['401 /api/v1/users/me/tokens'] });

  test('sends the user to sign in and back to where they were', async ({ page }) => {
    await signIn(page, USERS.member.username, USERS.member.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();

    // Sign the session out behind the app's back (as an expiry or an admin would).
    const csrf = (await page.context().cookies()).find((c) => c.name === 'opsdeck_csrf')?.value;
    expect(csrf).toBeTruthy();
    const ended = await page.request.delete('/api/v1/auth/session', { headers: { 'X-CSRF-Token': csrf ?? '' } });
    expect(ended.status()).toBe(204);

    await page.getByRole('navigation').getByRole('link', { name: 'Account' }).click();
    await expect(page.getByRole('heading', { name: 'Sign in to OpsDeck' })).toBeVisible();
    await expect(page.getByText('Your session has ended. Sign in again to continue.')).toBeVisible();
    await expect(page).toHaveURL(/\/signin\?next=%2Faccount$/);

    await page.getByLabel('Username or e-mail').fill(USERS.member.username);
    await page.getByLabel(/^Password/).fill(USERS.member.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect(page.getByRole('heading', { name: 'Account', exact: true })).toBeVisible();
    await expect(page).toHaveURL(/\/account$/);
  });
});

test.describe('at phone width', () => {
  test.use({ viewport: { width: 390, height: 800 } });

  test('the navigation folds behind a menu button and works from the keyboard', async ({ page }) => {
    await signIn(page, USERS.member.username, USERS.member.password);
    await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
    const nav = page.getByRole('navigation', { name: 'Main navigation' });
    await expect(nav.getByRole('link', { name: 'Incidents' })).toBeHidden();
    const toggle = page.getByRole('button', { name: 'Open navigation' });
    await toggle.focus();
    await page.keyboard.press('Enter');
    await expect(nav.getByRole('link', { name: 'Incidents' })).toBeVisible();
    await nav.getByRole('link', { name: 'Incidents' }).click();
    await expect(page.getByRole('heading', { name: 'Incidents' })).toBeVisible();
    await expect(nav.getByRole('link', { name: 'Incidents' })).toBeHidden();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0);
  });
});
