import { configure, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { apiError, makeUser, mockApi, renderApp, session } from '../../test/utils';
import { dayBoundary } from './AdminAuditPage';

const admin = makeUser({ id: 'u-admin', username: 'root', display_name: 'Root Admin', role: 'admin' });
const evil = '<img src=x onerror=alert(1)>';
const bob = makeUser({ id: 'u-bob', username: 'bob', display_name: evil, email: 'bob@example.com' });

// The first test to open an admin page loads its lazy chunk, slow on a busy machine (as in
// images.test.tsx).
configure({ asyncUtilTimeout: 5000 });

describe('admin pages', { timeout: 20_000 }, () => {
  it('are closed to members: no nav entry and an access-denied page', async () => {
    const api = mockApi({ 'GET /api/v1/auth/session': { status: 200, body: session() } });
    renderApp('/admin/users');
    expect(await screen.findByRole('heading', { name: 'Access denied' })).toBeInTheDocument();
    expect(screen.queryByRole('link', { name: 'Users' })).toBeNull();
    expect(api.requests.some((r) => r.path.startsWith('/api/v1/users'))).toBe(false);
  });

  it('list users with display names as text, search, and create a user', async () => {
    let users = [admin, bob];
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session(admin) },
      'GET /api/v1/users': (request) => {
        const q = new URLSearchParams(request.search).get('q');
        const items = q ? users.filter((u) => u.username.includes(q)) : users;
        return { status: 200, body: { items, next_cursor: null } };
      },
      'POST /api/v1/users': (request) => {
        const body = request.body as { username: string; email: string; display_name: string; role: 'admin' | 'member' };
        if (body.username === 'taken') return apiError(409, 'conflict', 'That username is taken.');
        const created = makeUser({ id: 'u-new', ...body });
        users = [...users, created];
        return { status: 201, body: created };
      },
    });
    const { container } = renderApp('/admin/users');
    const table = await screen.findByTestId('users-table');
    await within(table).findByText('bob');
    expect(within(table).getByText(evil)).toBeInTheDocument();
    expect(container.querySelector('img[src="x"]')).toBeNull();

    const user = userEvent.setup();
    await user.type(screen.getByRole('searchbox', { name: /Search/ }), 'bo');
    await waitFor(() => expect(api.requests.at(-1)?.search).toContain('q=bo'));
    await waitFor(() => expect(within(table).queryByText('root')).toBeNull());

    await user.click(screen.getByRole('button', { name: 'Create user' }));
    const dialog = await screen.findByRole('dialog', { name: 'Create a user' });
    await user.type(within(dialog).getByLabelText(/Username/), 'taken');
    await user.type(within(dialog).getByLabelText(/E-mail/), 'taken@example.com');
    await user.type(within(dialog).getByLabelText(/Initial password/), 'a long enough password');
    await user.click(within(dialog).getByRole('button', { name: 'Create user' }));
    expect(await within(dialog).findByRole('alert')).toHaveTextContent('That username is taken.');

    await user.clear(within(dialog).getByLabelText(/Username/));
    await user.type(within(dialog).getByLabelText(/Username/), 'carol');
    await user.selectOptions(within(dialog).getByLabelText('Role'), 'admin');
    await user.click(within(dialog).getByRole('button', { name: 'Create user' }));
    expect(await screen.findByText('User carol created.')).toBeInTheDocument();
    const created = api.requests.filter((r) => r.method === 'POST').at(-1);
    expect(created?.body).toEqual({
      username: 'carol',
      email: 'taken@example.com',
      password: 'a long enough password',
      display_name: '',
      role: 'admin',
    });
  });

  it('pages users by cursor with Load more, and sorts them', async () => {
    const people = Array.from({ length: 30 }, (_, i) => makeUser({ id: `u-${i}`, username: `user${String(i).padStart(2, '0')}` }));
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session(admin) },
      'GET /api/v1/users': (request) => {
        const params = new URLSearchParams(request.search);
        const ordered = params.get('sort') === '-username' ? [...people].reverse() : people;
        const start = Number(params.get('cursor') ?? 0);
        const end = start + Number(params.get('limit'));
        return { status: 200, body: { items: ordered.slice(start, end), next_cursor: end < ordered.length ? String(end) : null } };
      },
    });
    renderApp('/admin/users');
    const table = await screen.findByTestId('users-table');
    await within(table).findByText('user24');
    expect(within(table).queryByText('user25')).toBeNull();
    expect(screen.getByText('25+ users')).toBeInTheDocument();

    const user = userEvent.setup();
    await user.click(screen.getByRole('button', { name: 'Load more' }));
    await within(table).findByText('user29');
    expect(new URLSearchParams(api.requests.at(-1)?.search).get('cursor')).toBe('25');
    expect(screen.queryByRole('button', { name: 'Load more' })).toBeNull();
    expect(screen.getByText('30 users')).toBeInTheDocument();

    await user.selectOptions(screen.getByLabelText('Sort'), '-username');
    await waitFor(() => expect(within(table).getAllByRole('row')[1]).toHaveTextContent('user29'));
    const params = new URLSearchParams(api.requests.at(-1)?.search);
    expect(params.get('sort')).toBe('-username');
    expect(params.get('cursor')).toBeNull();
  });

  it('change a role and deactivate after confirming', async () => {
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session(admin) },
      'GET /api/v1/users': { status: 200, body: { items: [admin, bob], next_cursor: null } },
      'PATCH /api/v1/users/u-bob': (request) => ({ status: 200, body: { ...bob, ...(request.body as object) } }),
    });
    renderApp('/admin/users');
    const user = userEvent.setup();
    await user.selectOptions(await screen.findByLabelText('Role of bob'), 'admin');
    expect(await screen.findByText('bob is now an admin.')).toBeInTheDocument();

    await user.click(screen.getByRole('button', { name: 'Deactivate bob' }));
    const dialog = await screen.findByRole('dialog', { name: 'Deactivate user' });
    await user.click(within(dialog).getByRole('button', { name: 'Deactivate' }));
    expect(await screen.findByText('bob has been deactivated.')).toBeInTheDocument();

    const patches = api.requests.filter((r) => r.method === 'PATCH');
    expect(patches.map((r) => r.body)).toEqual([{ role: 'admin' }, { is_active: false }]);
    expect(screen.getByRole('button', { name: 'Deactivate root' })).toBeDisabled();
  });

  it('audit log: chain status, filters and keyset paging by next_cursor', async () => {
    const entry = (id: number) => ({
      id,
      created_at: '2026-01-02T03:04:05Z',
      actor_id: 'u-admin',
      actor: 'root',
      action: 'auth.login',
      target_type: 'user',
      target_id: 'u-admin',
      ip: '127.0.0.1',
      request_id: 'r',
      details: { note: evil },
      prev_hash: 'a',
      hash: 'b',
    });
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session(admin) },
      'GET /api/v1/audit/verify': { status: 200, body: { ok: false, checked: 7, first_broken_id: 8, reason: 'hash mismatch' } },
      'GET /api/v1/audit': (request) => {
        const cursor = new URLSearchParams(request.search).get('cursor');
        return cursor
          ? { status: 200, body: { items: [entry(1)], next_cursor: null } }
          : { status: 200, body: { items: [entry(3), entry(2)], next_cursor: 'after-2' } };
      },
    });
    renderApp('/admin/audit');
    expect(await screen.findByText(/Entry 8 does not match its hash: hash mismatch/)).toBeInTheDocument();
    const table = await screen.findByTestId('audit-table');
    await within(table).findByText('3');
    expect(within(table).getAllByText(JSON.stringify({ note: evil }))).toHaveLength(2);

    const user = userEvent.setup();
    await user.click(screen.getByRole('button', { name: 'Older entries' }));
    await within(table).findByText('1');
    expect(new URLSearchParams(api.requests.at(-1)?.search).get('cursor')).toBe('after-2');
    expect(screen.getByRole('button', { name: 'Older entries' })).toBeDisabled();
    await user.click(screen.getByRole('button', { name: 'Newer entries' }));
    await within(table).findByText('3');

    await user.type(screen.getByLabelText(/Actor/), 'root');
    await user.type(screen.getByLabelText(/Action/), 'auth.');
    await user.click(screen.getByRole('button', { name: 'Apply filters' }));
    await waitFor(() => {
      const params = new URLSearchParams(api.requests.at(-1)?.search);
      expect(params.get('actor')).toBe('root');
      expect(params.get('action')).toBe('auth.');
      expect(params.get('cursor')).toBeNull();
    });
  });

  it('turns a date filter into the bounds of that local day', () => {
    const start = dayBoundary('2026-03-04', false);
    const end = dayBoundary('2026-03-04', true);
    expect(start && new Date(start).getDate()).toBe(4);
    expect(end && new Date(end).getHours()).toBe(23);
    expect(dayBoundary('', false)).toBeUndefined();
    expect(dayBoundary('not a date', true)).toBeUndefined();
  });
});
