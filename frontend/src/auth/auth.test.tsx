import { screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { CSRF, apiError, makeUser, mockApi, renderApp, session, setSessionCookie } from '../test/utils';

const READY = { status: 200, body: { status: 'ok', checks: { database: 'ok', broker: 'ok', storage: 'ok' }, failing: [] } };

describe('session restore', () => {
  it('restores the session on load and shows who you are', async () => {
    mockApi({ 'GET /api/v1/auth/session': { status: 200, body: session() }, 'GET /ready': READY });
    renderApp('/');
    expect(await screen.findByRole('heading', { name: 'Welcome, Alice Example' })).toBeInTheDocument();
    expect(screen.getByTestId('me-username')).toHaveTextContent('alice');
    expect(await screen.findByText('All systems ready')).toBeInTheDocument();
  });

  it('sends an anonymous visitor to sign in, then back to the page they asked for', async () => {
    const api = mockApi({
      'GET /api/v1/auth/session': apiError(401, 'not_authenticated', 'Authentication required.'),
      'POST /api/v1/auth/session': { status: 200, body: session() },
      'GET /api/v1/users/me/tokens': { status: 200, body: [] },
    });
    renderApp('/account?tab=x');
    await screen.findByRole('heading', { name: 'Sign in to OpsDeck' });
    expect(screen.getByTestId('location')).toHaveTextContent('/signin?next=%2Faccount%3Ftab%3Dx');

    const user = userEvent.setup();
    await user.type(screen.getByLabelText(/Username or e-mail/), 'alice');
    await user.type(screen.getByLabelText(/^Password/), 'correct horse battery');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));

    expect(await screen.findByRole('heading', { name: 'Account' })).toBeInTheDocument();
    expect(screen.getByTestId('location')).toHaveTextContent('/account?tab=x');
    const login = api.requests.find((r) => r.method === 'POST');
    expect(login?.body).toEqual({ username: 'alice', password: 'correct horse battery' });
  });
});

describe('the session probe', () => {
  it('is not sent by a browser without a session, so a signed-out load has no failing request', async () => {
    const api = mockApi({});
    renderApp('/account');
    await screen.findByRole('heading', { name: 'Sign in to OpsDeck' });
    expect(screen.getByTestId('location')).toHaveTextContent('/signin?next=%2Faccount');
    expect(api.requests).toEqual([]);
  });

  it('is sent while the session cookies are there, and a session ended on the server signs out', async () => {
    setSessionCookie();
    const api = mockApi({
      'GET /api/v1/auth/session': apiError(401, 'not_authenticated', 'Authentication required.'),
    });
    renderApp('/account');
    await screen.findByRole('heading', { name: 'Sign in to OpsDeck' });
    expect(api.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /api/v1/auth/session']);
  });
});

describe('sign-in', () => {
  async function fillAndSubmit(username = 'alice', password = 'wrong password') {
    const user = userEvent.setup();
    await screen.findByRole('heading', { name: 'Sign in to OpsDeck' });
    await user.type(screen.getByLabelText(/Username or e-mail/), username);
    await user.type(screen.getByLabelText(/^Password/), password);
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    return user;
  }

  it("shows the server's message for wrong credentials, announced as an alert", async () => {
    mockApi({
      'GET /api/v1/auth/session': apiError(401, 'not_authenticated', 'Authentication required.'),
      'POST /api/v1/auth/session': apiError(401, 'invalid_credentials', 'Incorrect username or password.'),
    });
    renderApp('/signin');
    await fillAndSubmit();
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('Incorrect username or password.');
    // Still on the sign-in page, not bounced around by the 401.
    expect(screen.getByTestId('location')).toHaveTextContent('/signin');
  });

  it('shows the throttling message with the wait from Retry-After', async () => {
    mockApi({
      'GET /api/v1/auth/session': apiError(401, 'not_authenticated', 'Authentication required.'),
      'POST /api/v1/auth/session': apiError(429, 'too_many_requests', 'Too many failed sign-ins.', {
        'Retry-After': '120',
      }),
    });
    renderApp('/signin');
    await fillAndSubmit();
    expect(await screen.findByRole('alert')).toHaveTextContent('Too many failed sign-ins. Try again in 2 minutes.');
  });

  it('says which fields are missing instead of sending an empty form', async () => {
    const api = mockApi({
      'GET /api/v1/auth/session': apiError(401, 'not_authenticated', 'Authentication required.'),
    });
    renderApp('/signin');
    const user = userEvent.setup();
    await screen.findByRole('heading', { name: 'Sign in to OpsDeck' });
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    expect(screen.getByText('Enter your username or e-mail.')).toBeInTheDocument();
    expect(screen.getByLabelText(/Username or e-mail/)).toHaveAttribute('aria-invalid', 'true');
    expect(api.requests.filter((r) => r.method === 'POST')).toHaveLength(0);
  });

  it('asks for a TOTP code when the server says otp_required, then sends it', async () => {
    const api = mockApi({
      'GET /api/v1/auth/session': apiError(401, 'not_authenticated', 'Authentication required.'),
      'POST /api/v1/auth/session': (request) => {
        const body = request.body as { otp?: string };
        if (!body.otp) return apiError(401, 'otp_required', 'Enter the code from your authenticator app.');
        if (body.otp !== '123456') return apiError(401, 'invalid_otp', 'That code is not valid.');
        return { status: 200, body: session() };
      },
      'GET /ready': READY,
    });
    renderApp('/signin');
    const user = await fillAndSubmit('alice', 'right password');

    const code = await screen.findByLabelText(/Authentication code/);
    expect(code).toHaveFocus();
    await user.type(code, '000000');
    await user.click(screen.getByRole('button', { name: 'Verify and sign in' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('That code is not valid.');

    await user.type(screen.getByLabelText(/Authentication code/), '123456');
    await user.click(screen.getByRole('button', { name: 'Verify and sign in' }));
    expect(await screen.findByRole('heading', { name: 'Welcome, Alice Example' })).toBeInTheDocument();

    const posts = api.requests.filter((r) => r.method === 'POST').map((r) => r.body);
    expect(posts).toEqual([
      { username: 'alice', password: 'right password' },
      { username: 'alice', password: 'right password', otp: '000000' },
      { username: 'alice', password: 'right password', otp: '123456' },
    ]);
  });

  it('offers a recovery code instead of the app code', async () => {
    const api = mockApi({
      'GET /api/v1/auth/session': apiError(401, 'not_authenticated', 'Authentication required.'),
      'POST /api/v1/auth/session': (request) =>
        (request.body as { otp?: string }).otp
          ? { status: 200, body: session() }
          : apiError(401, 'otp_required', 'Enter the code from your authenticator app.'),
      'GET /ready': READY,
    });
    renderApp('/signin');
    const user = await fillAndSubmit('alice', 'right password');
    await screen.findByLabelText(/Authentication code/);
    await user.click(screen.getByRole('button', { name: 'Use a recovery code' }));
    await user.type(screen.getByLabelText(/Recovery code/), 'abcd-efgh-ijkl');
    await user.click(screen.getByRole('button', { name: 'Verify and sign in' }));
    await screen.findByRole('heading', { name: 'Welcome, Alice Example' });
    expect(api.requests.filter((r) => r.method === 'POST').at(-1)?.body).toMatchObject({ otp: 'abcd-efgh-ijkl' });
  });

  it('does not follow a next= that leaves the site', async () => {
    mockApi({
      'GET /api/v1/auth/session': apiError(401, 'not_authenticated', 'Authentication required.'),
      'POST /api/v1/auth/session': { status: 200, body: session() },
      'GET /ready': READY,
    });
    renderApp('/signin?next=//evil.example/x');
    await fillAndSubmit('alice', 'right password');
    await screen.findByRole('heading', { name: 'Welcome, Alice Example' });
    expect(screen.getByTestId('location')).toHaveTextContent(/^\/$/);
  });
});

describe('CSRF and session expiry', () => {
  it('sends X-CSRF-Token on unsafe requests only, and signs out', async () => {
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'GET /ready': READY,
      'DELETE /api/v1/auth/session': { status: 204 },
    });
    renderApp('/');
    const user = userEvent.setup();
    await screen.findByRole('heading', { name: 'Welcome, Alice Example' });
    await user.click(screen.getByRole('button', { name: /Account menu/ }));
    await user.click(await screen.findByRole('menuitem', { name: 'Sign out' }));
    await screen.findByRole('heading', { name: 'Sign in to OpsDeck' });
    expect(screen.getByText('You have signed out.')).toBeInTheDocument();

    const del = api.requests.find((r) => r.method === 'DELETE');
    expect(del?.headers.get('X-CSRF-Token')).toBe(CSRF);
    for (const get of api.requests.filter((r) => r.method === 'GET')) {
      expect(get.headers.get('X-CSRF-Token')).toBeNull();
    }
  });

  it('sends the user to sign in on a 401 and back to where they were afterwards', async () => {
    let signedIn = true;
    mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'POST /api/v1/auth/session': () => {
        signedIn = true;
        return { status: 200, body: session() };
      },
      'GET /api/v1/users/me/tokens': () =>
        signedIn ? { status: 200, body: [] } : apiError(401, 'not_authenticated', 'Your session has ended.'),
      'POST /api/v1/users/me/tokens': () => {
        signedIn = false;
        return apiError(401, 'not_authenticated', 'Your session has ended.');
      },
    });
    renderApp('/account');
    const user = userEvent.setup();
    await screen.findByRole('heading', { name: 'Account' });
    await user.type(screen.getByLabelText(/Token name/), 'ci');
    await user.click(screen.getByRole('button', { name: 'Create token' }));

    await screen.findByRole('heading', { name: 'Sign in to OpsDeck' });
    expect(screen.getByTestId('location')).toHaveTextContent('/signin?next=%2Faccount');
    expect(screen.getByText(/Your session has ended/)).toBeInTheDocument();

    await user.type(screen.getByLabelText(/Username or e-mail/), 'alice');
    await user.type(screen.getByLabelText(/^Password/), 'pw');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    await screen.findByRole('heading', { name: 'Account' });
    expect(screen.getByTestId('location')).toHaveTextContent(/^\/account$/);
  });
});

describe('user text is text', () => {
  it('renders an HTML-looking display name literally', async () => {
    const evil = '<img src=x onerror=alert(1)>';
    mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session(makeUser({ display_name: evil })) },
      'GET /ready': READY,
    });
    const { container } = renderApp('/');
    expect(await screen.findByRole('heading', { name: `Welcome, ${evil}` })).toBeInTheDocument();
    expect(within(screen.getByTestId('me-display-name')).getByText(evil)).toBeInTheDocument();
    expect(container.querySelector('img[src="x"]')).toBeNull();
    expect(document.querySelector('img[src="x"]')).toBeNull();
  });
});

describe('global error banner', () => {
  it("shows the server's message when a page's data fails to load", async () => {
    mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'GET /api/v1/users/me/tokens': {
        status: 500,
        body: { error: { code: 'internal_error', message: 'Something went wrong on our side; it has been logged.', details: [] } },
        headers: { 'X-Request-ID': 'req-42' },
      },
    });
    renderApp('/account');
    const banner = await screen.findByTestId('error-banner');
    expect(banner).toHaveTextContent('Something went wrong on our side; it has been logged.');
    expect(banner).toHaveTextContent('req-42');
    const user = userEvent.setup();
    await user.click(within(banner).getByRole('button', { name: 'Dismiss error' }));
    await waitFor(() => expect(screen.queryByTestId('error-banner')).toBeNull());
  });
});
