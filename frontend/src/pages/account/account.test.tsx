import { configure, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import type { ApiToken } from '../../api/types';
import { CSRF, apiError, makeUser, mockApi, renderApp, session } from '../../test/utils';

const CODES = Array.from({ length: 10 }, (_, i) => `code-${i}-abcd`);

// The first test loads the lazy Account chunk, slow on a busy machine (as in images.test.tsx).
configure({ asyncUtilTimeout: 5000 });

describe('account page', { timeout: 20_000 }, () => {
  it('enables 2FA: QR code and key from the provisioning URI, confirm, recovery codes once', async () => {
    let enabled = false;
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'GET /api/v1/users/me/tokens': { status: 200, body: [] },
      'POST /api/v1/users/me/2fa/setup': (request) =>
        (request.body as { password: string }).password === 'pw'
          ? {
              status: 200,
              body: {
                secret: 'JBSWY3DPEHPK3PXP',
                provisioning_uri: 'otpauth://totp/OpsDeck:alice?secret=JBSWY3DPEHPK3PXP&issuer=OpsDeck',
              },
            }
          : apiError(401, 'invalid_credentials', 'Incorrect password.'),
      'POST /api/v1/users/me/2fa/confirm': (request) => {
        if ((request.body as { code: string }).code !== '123456') {
          return apiError(400, 'invalid_otp', 'That code is not valid.');
        }
        enabled = true;
        return { status: 200, body: { recovery_codes: CODES } };
      },
      'GET /api/v1/users/me': () => ({ status: 200, body: makeUser({ totp_enabled: enabled }) }),
    });
    renderApp('/account');
    const user = userEvent.setup();
    const section = await screen.findByRole('region', { name: 'Two-factor authentication' });
    expect(within(section).getByTestId('totp-status')).toHaveTextContent('Off');
    await user.click(within(section).getByRole('button', { name: 'Enable two-factor authentication' }));
    await user.type(within(section).getByLabelText(/Confirm your password/), 'pw');
    await user.click(within(section).getByRole('button', { name: 'Continue' }));

    const qr = await within(section).findByRole('img', { name: /QR code/ });
    expect(qr.getAttribute('src')).toMatch(/^data:image\/png;base64,/);
    expect(within(section).getByTestId('totp-secret')).toHaveTextContent('JBSW Y3DP EHPK 3PXP');

    await user.type(within(section).getByLabelText(/Code from the app/), '000000');
    await user.click(within(section).getByRole('button', { name: 'Confirm and turn on' }));
    expect(await within(section).findByRole('alert')).toHaveTextContent('That code is not valid.');
    await user.clear(within(section).getByLabelText(/Code from the app/));
    await user.type(within(section).getByLabelText(/Code from the app/), '123456');
    await user.click(within(section).getByRole('button', { name: 'Confirm and turn on' }));

    const list = await within(section).findByTestId('recovery-codes');
    expect(within(list).getAllByRole('listitem')).toHaveLength(10);
    expect(within(section).getByRole('button', { name: 'Download' })).toBeInTheDocument();
    expect(await within(section).findByText('On')).toBeInTheDocument();
    await user.click(within(section).getByRole('button', { name: 'I have saved them' }));
    expect(within(section).queryByTestId('recovery-codes')).toBeNull();
    expect(within(section).getByRole('button', { name: 'Turn off two-factor' })).toBeInTheDocument();

    for (const post of api.requests.filter((r) => r.method === 'POST')) {
      expect(post.headers.get('X-CSRF-Token')).toBe(CSRF);
    }
  });

  it('creates a token, shows it once, and revokes one', async () => {
    const existing: ApiToken = {
      id: 't-1',
      name: 'old script',
      token_prefix: 'opd_ab12',
      created_at: '2026-01-01T00:00:00Z',
      last_used_at: null,
      expires_at: null,
      revoked_at: null,
    };
    let tokens = [existing];
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'GET /api/v1/users/me/tokens': () => ({ status: 200, body: tokens }),
      'POST /api/v1/users/me/tokens': (request) => {
        const body = request.body as { name: string; expires_in_days?: number };
        const created = { ...existing, id: 't-2', name: body.name, token_prefix: 'opd_cd34', token: 'opd_cd34_SECRET' };
        tokens = [...tokens, created];
        return { status: 201, body: created };
      },
      'DELETE /api/v1/users/me/tokens/t-1': () => {
        tokens = tokens.map((t) => (t.id === 't-1' ? { ...t, revoked_at: '2026-02-01T00:00:00Z' } : t));
        return { status: 204 };
      },
    });
    renderApp('/account');
    const user = userEvent.setup();
    const section = await screen.findByRole('region', { name: 'Personal API tokens' });
    await within(section).findByText('old script');
    await user.type(within(section).getByLabelText(/Token name/), 'deploy');
    await user.type(within(section).getByLabelText(/Expires after/), '30');
    await user.click(within(section).getByRole('button', { name: 'Create token' }));
    expect(await within(section).findByTestId('new-token')).toHaveTextContent('opd_cd34_SECRET');
    expect(api.requests.find((r) => r.method === 'POST')?.body).toEqual({ name: 'deploy', expires_in_days: 30 });
    await user.click(within(section).getByRole('button', { name: 'Done' }));
    expect(within(section).queryByTestId('new-token')).toBeNull();

    await user.click(within(section).getByRole('button', { name: 'Revoke token old script' }));
    const dialog = await screen.findByRole('dialog', { name: 'Revoke token' });
    await user.click(within(dialog).getByRole('button', { name: 'Revoke token' }));
    expect(await within(section).findByText('Revoked')).toBeInTheDocument();
  });

  it('changes the password and shows the server message for a weak one', async () => {
    mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'GET /api/v1/users/me/tokens': { status: 200, body: [] },
      'POST /api/v1/users/me/password': (request) => {
        const body = request.body as { new_password: string };
        if (body.new_password === 'password') {
          return {
            status: 422,
            body: {
              error: {
                code: 'weak_password',
                message: 'This password is too common.',
                details: [{ field: 'body.new_password', message: 'This password is too common.', type: 'weak_password' }],
              },
            },
          };
        }
        return { status: 204 };
      },
    });
    renderApp('/account');
    const user = userEvent.setup();
    const section = await screen.findByRole('region', { name: 'Password' });
    await user.type(within(section).getByLabelText(/Current password/), 'old pw');
    await user.type(within(section).getByLabelText(/^New password/), 'password');
    await user.type(within(section).getByLabelText(/Repeat the new password/), 'password');
    await user.click(within(section).getByRole('button', { name: 'Change password' }));
    expect(await within(section).findByRole('alert')).toHaveTextContent('This password is too common.');
    expect(within(section).getByLabelText(/^New password/)).toHaveAttribute('aria-invalid', 'true');

    await user.clear(within(section).getByLabelText(/^New password/));
    await user.type(within(section).getByLabelText(/^New password/), 'a much better passphrase');
    await user.clear(within(section).getByLabelText(/Repeat the new password/));
    await user.type(within(section).getByLabelText(/Repeat the new password/), 'a different one');
    await user.click(within(section).getByRole('button', { name: 'Change password' }));
    expect(within(section).getByText('The two new passwords do not match.')).toBeInTheDocument();

    await user.clear(within(section).getByLabelText(/Repeat the new password/));
    await user.type(within(section).getByLabelText(/Repeat the new password/), 'a much better passphrase');
    await user.click(within(section).getByRole('button', { name: 'Change password' }));
    expect(await within(section).findByText(/Password changed/)).toBeInTheDocument();
  });
});
