import * as OTPAuth from 'otpauth';
import { expectAccessible } from './a11y';
import { expect, signIn, signOut, test } from './fixtures';
import { USERS } from './users';

test('a member signs in and sees who they are and the platform health', async ({ page }) => {
  const { username, password, displayName } = USERS.member;
  await signIn(page, username, password);
  await expect(page.getByRole('heading', { name: `Welcome, ${displayName}` })).toBeVisible();
  await expect(page.getByTestId('me-username')).toHaveText(username);
  await expect(page.getByTestId('health-status')).toHaveText('All systems ready');
  await expect(page).toHaveURL(/\/$/);
});

test('the signed-out sign-in page loads without a failing request or a session probe', async ({ page }) => {
  // The fixture fails the test on any failed request, answer of 400 or more, or console error.
  const probes: string[] = [];
  page.on('request', (request) => {
    if (new URL(request.url()).pathname === '/api/v1/auth/session') probes.push(request.method());
  });
  await page.goto('/signin');
  await expect(page.getByRole('heading', { name: 'Sign in to OpsDeck' })).toBeVisible();
  await page.goto('/account');
  await expect(page).toHaveURL(/\/signin\?next=%2Faccount$/);
  await page.waitForLoadState('networkidle');
  expect(probes).toEqual([]);
});

test("a wrong password shows the server's message", async ({ page, request }) => {
  const answer = await request.post('/api/v1/auth/session', {
    data: { username: USERS.member.username, password: 'not-the-password' },
  });
  expect(answer.status()).toBe(401);
  const { error } = (await answer.json()) as { error: { code: string; message: string } };
  expect(error.code).toBe('invalid_credentials');

  await signIn(page, USERS.member.username, 'also-not-the-password');
  await expect(page.getByRole('alert')).toHaveText(error.message);
  await expect(page).toHaveURL(/\/signin$/);
});

test('signing out ends the session', async ({ page }) => {
  await signIn(page, USERS.member.username, USERS.member.password);
  await expect(page.getByRole('heading', { name: /^Welcome/ })).toBeVisible();
  await signOut(page);
  await expect(page.getByText('You have signed out.')).toBeVisible();
  expect((await page.request.get('/api/v1/auth/session')).status()).toBe(401);
  await page.goto('/account');
  await expect(page.getByRole('heading', { name: 'Sign in to OpsDeck' })).toBeVisible();
  await expect(page).toHaveURL(/\/signin\?next=%2Faccount$/);
});

test('a page reload keeps the session, and a deep link survives sign-in', async ({ page }) => {
  await page.goto('/account');
  await expect(page).toHaveURL(/\/signin\?next=%2Faccount$/);
  await page.getByLabel('Username or e-mail').fill(USERS.member.username);
  await page.getByLabel(/^Password/).fill(USERS.member.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('heading', { name: 'Account', exact: true })).toBeVisible();
  await expect(page).toHaveURL(/\/account$/);

  await page.reload();
  await expect(page.getByRole('heading', { name: 'Account', exact: true })).toBeVisible();
  await expect(page).toHaveURL(/\/account$/);
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'opsdeck_session');
  expect(session?.httpOnly).toBe(true);
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage, ...sessionStorage }));
  expect(stored).not.toContain(session?.value ?? '<none>');
  expect(stored.toLowerCase()).not.toContain('csrf');
});

test('a new admin enables 2FA, then signs in with a TOTP code and with a recovery code', async ({ page }) => {
  // Three sign-ins and three accessibility scans: on a busy 2-core machine this took 34 s,
  // over the default 30 s budget, with every step passing.
  test.setTimeout(120_000);
  const { username, password } = USERS.twofa;
  await signIn(page, username, password);
  await expect(page.getByRole('heading', { name: `Welcome, ${username}` })).toBeVisible();

  await page.goto('/account');
  const section = page.getByRole('region', { name: 'Two-factor authentication' });
  await section.getByRole('button', { name: 'Enable two-factor authentication' }).click();
  await section.getByLabel('Confirm your password').fill(password);
  await section.getByRole('button', { name: 'Continue' }).click();
  await expect(section.getByRole('img', { name: /QR code/ })).toBeVisible();
  await expectAccessible(page, 'account, two-factor set-up');
  const secret = await section.getByTestId('totp-secret').getAttribute('data-secret');
  expect(secret).toMatch(/^[A-Z2-7]+=*$/);
  const totp = new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret ?? ''), digits: 6, period: 30 });

  await section.getByLabel('Code from the app').fill(totp.generate());
  await section.getByRole('button', { name: 'Confirm and turn on' }).click();
  const codes = section.getByTestId('recovery-codes').getByRole('listitem');
  await expect(codes).toHaveCount(10);
  await expectAccessible(page, 'account, recovery codes');
  const recoveryCode = (await codes.first().innerText()).trim();
  await section.getByRole('button', { name: 'I have saved them' }).click();
  await expect(section.getByTestId('totp-status')).toHaveText('On');

  await signOut(page);
  await signIn(page, username, password);
  const codeField = page.getByLabel('Authentication code');
  await expect(codeField).toBeFocused();
  await codeField.fill('000000');
  await page.getByRole('button', { name: 'Verify and sign in' }).click();
  await expect(page.getByRole('alert')).toContainText(/code/i);
  await expectAccessible(page, 'sign-in, second factor refused');
  // The confirming code's time step is spent; the next step's code is within the server's
  // one-step drift window and unused.
  await page.getByLabel('Authentication code').fill(totp.generate({ timestamp: Date.now() + 30_000 }));
  await page.getByRole('button', { name: 'Verify and sign in' }).click();
  await expect(page.getByRole('heading', { name: `Welcome, ${username}` })).toBeVisible();

  await signOut(page);
  await signIn(page, username, password);
  await page.getByRole('button', { name: 'Use a recovery code' }).click();
  await page.getByLabel('Recovery code').fill(recoveryCode);
  await page.getByRole('button', { name: 'Verify and sign in' }).click();
  await expect(page.getByRole('heading', { name: `Welcome, ${username}` })).toBeVisible();
});

test('a display name with HTML is shown as text, never run', async ({ page }) => {
  const { username, password, displayName } = USERS.xss;
  await signIn(page, username, password);
  await expect(page.getByRole('heading', { name: `Welcome, ${displayName}` })).toBeVisible();
  await expect(page.getByTestId('me-display-name')).toHaveText(displayName);
  await expect(page.locator('img[src="x"]')).toHaveCount(0);
  // The fixture fails the test if alert() opened a dialog.
});
