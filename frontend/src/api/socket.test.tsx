import { act, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it } from 'vitest';
import { FakeSocket } from '../pages/chat/fakeSocket';
import { apiError, makeUser, mockApi, renderApp, session } from '../test/utils';
import { closeSocket, connectSocket, onSocketEvent, setSocketFactory, socketStatus } from './socket';

const READY = { status: 200, body: { status: 'ok', checks: { database: 'ok', broker: 'ok', storage: 'ok' }, failing: [] } };

/** A factory of connected fake sockets, keeping each one it made. */
function sockets(): FakeSocket[] {
  const made: FakeSocket[] = [];
  setSocketFactory(async () => {
    const socket = new FakeSocket(() => ({ ok: true }));
    made.push(socket);
    queueMicrotask(() => socket.setConnected(true));
    return socket;
  });
  return made;
}

describe('the shared socket and the session', { timeout: 30_000 }, () => {
  it('closes on sign-out, and the next user of the tab gets a new connection, never the first one’s events', async () => {
    const made = sockets();
    let who = makeUser();
    mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session(who) },
      'GET /ready': READY,
      'DELETE /api/v1/auth/session': { status: 204 },
      'POST /api/v1/auth/session': () => {
        who = makeUser({ id: 'u-2', username: 'bob', display_name: 'Bob Example' });
        return { status: 200, body: session(who) };
      },
    });
    const seen: unknown[] = [];
    const off = onSocketEvent('message:new', (payload) => seen.push(payload));
    renderApp('/');
    await screen.findByRole('heading', { name: 'Welcome, Alice Example' });
    await act(() => connectSocket());
    await waitFor(() => expect(socketStatus()).toBe('connected'));
    const first = made[0] as FakeSocket;
    act(() => first.push('message:new', { id: 'for-alice' }));
    expect(seen).toEqual([{ id: 'for-alice' }]);

    const user = userEvent.setup();
    await user.click(screen.getByRole('button', { name: /Account menu/ }));
    await user.click(await screen.findByRole('menuitem', { name: 'Sign out' }));
    await screen.findByRole('heading', { name: 'Sign in to OpsDeck' });
    expect(first.connected).toBe(false);
    expect(socketStatus()).toBe('idle');
    // Whatever still reaches the old connection goes nowhere.
    act(() => first.push('message:new', { id: 'late-for-alice' }));
    expect(seen).toEqual([{ id: 'for-alice' }]);

    await user.type(screen.getByLabelText(/Username or e-mail/), 'bob');
    await user.type(screen.getByLabelText(/^Password/), 'pw');
    await user.click(screen.getByRole('button', { name: 'Sign in' }));
    await screen.findByRole('heading', { name: 'Welcome, Bob Example' });
    await act(() => connectSocket());
    expect(made).toHaveLength(2);
    const second = made[1] as FakeSocket;
    await waitFor(() => expect(socketStatus()).toBe('connected'));
    act(() => first.push('message:new', { id: 'late-for-alice' }));
    act(() => second.push('message:new', { id: 'for-bob' }));
    expect(seen).toEqual([{ id: 'for-alice' }, { id: 'for-bob' }]);
    off();
  });

  it('closes when the session expires (a 401)', async () => {
    const made = sockets();
    mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'GET /api/v1/users/me/tokens': apiError(401, 'not_authenticated', 'Your session has ended.'),
    });
    await act(() => connectSocket());
    await waitFor(() => expect(socketStatus()).toBe('connected'));
    renderApp('/account');
    await screen.findByRole('heading', { name: 'Sign in to OpsDeck' });
    expect(made[0]?.connected).toBe(false);
    expect(socketStatus()).toBe('idle');
  });

  it('drops a connection still being made when it is closed', async () => {
    let release: (() => void) | null = null;
    const socket = new FakeSocket(() => ({ ok: true }));
    socket.connected = true;
    setSocketFactory(
      () =>
        new Promise((resolve) => {
          release = () => resolve(socket);
        }),
    );
    const pending = connectSocket();
    closeSocket();
    (release as unknown as () => void)();
    await expect(pending).rejects.toThrow();
    expect(socket.connected).toBe(false);
    expect(socketStatus()).toBe('idle');
  });
});
