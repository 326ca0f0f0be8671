import { act, configure, fireEvent, render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { MemoryRouter, Route, Routes } from 'react-router';
import { MantineProvider } from '@mantine/core';
import { QueryClientProvider } from '@tanstack/react-query';
import { afterEach, describe, expect, it } from 'vitest';
import type { Message, Room } from '../../api/chat';
import { chatMessage } from './testMessages';
import { createQueryClient } from '../../api/query';
import { setSocketFactory } from '../../api/socket';
import { apiError, LocationProbe, mockApi, renderApp, session } from '../../test/utils';
import { theme } from '../../theme';
import { FakeSocket } from './fakeSocket';
import { MarkdownPreview } from './markdownPreview';
import { WarRoomButton } from './WarRoomButton';

configure({ asyncUtilTimeout: 8000 });

const ROOM = 'a'.repeat(32);
const OTHER = 'c'.repeat(32);

function room(over: Partial<Room> = {}): Room {
  return {
    id: ROOM,
    kind: 'room',
    visibility: 'public',
    name: 'ops',
    topic: 'On-call',
    description: '',
    created_at: '2026-12-07T09:00:00Z',
    last_activity_at: '2026-12-07T10:00:00Z',
    archived_at: null,
    last_seq: 2,
    member: true,
    role: 'owner',
    last_read_seq: 1,
    unread: 1,
    member_count: 2,
    members: [],
    incident_number: null,
    mentions: 0,
    ...over,
  };
}

const msg = (seq: number, over: Partial<Message> = {}): Message => chatMessage(ROOM, seq, over);

describe('chat page', { timeout: 30_000 }, () => {
  afterEach(() => setSocketFactory(null));

  it('shows the conversations with their badges, the room as a log, and sends with Enter', async () => {
    const socket = new FakeSocket((event, payload) => {
      const p = payload as Record<string, unknown>;
      if (event === 'room:join')
        return p.room_id === OTHER
          ? { ok: true, room_id: p.room_id, last_seq: 4, last_read_seq: 0, unread: 4, mentions: 2 }
          : { ok: true, room_id: p.room_id, last_seq: 2, last_read_seq: 1, unread: 1 };
      if (event === 'sync') return { ok: true, room_id: p.room_id, messages: [], more: false };
      if (event === 'message:send') {
        const message = msg(3, { client_id: p.client_id as string, body: p.body as string, body_html: `<p>${String(p.body)}</p>`, author: { id: 'u-1', username: 'alice', display_name: 'Alice' } });
        return { ok: true, id: message.id, seq: 3, duplicate: false, message };
      }
      return { ok: true };
    });
    setSocketFactory(async () => {
      queueMicrotask(() => socket.setConnected(true));
      return socket;
    });
    mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'GET /api/v1/chat/rooms': {
        status: 200,
        body: { items: [room(), room({ id: OTHER, name: 'db', unread: 4, mentions: 2, last_read_seq: 0, last_seq: 4 })], next_cursor: null },
      },
      [`GET /api/v1/chat/rooms/${ROOM}`]: { status: 200, body: room() },
      [`GET /api/v1/chat/rooms/${ROOM}/messages`]: { status: 200, body: { items: [msg(1), msg(2)], next_cursor: null } },
      [`GET /api/v1/chat/rooms/${ROOM}/members`]: { status: 200, body: [] },
      [`POST /api/v1/chat/rooms/${ROOM}/read`]: { status: 200, body: { room_id: ROOM, last_read_seq: 2, unread: 0 } },
    });
    renderApp(`/chat/rooms/${ROOM}`);

    const nav = await screen.findByRole('navigation', { name: 'Conversations' });
    expect(await within(nav).findByRole('link', { name: 'db, 4 unread, 2 mentions' })).toBeInTheDocument();
    const log = await screen.findByRole('log', { name: 'Messages in #ops' });
    expect(log).toHaveAttribute('aria-live', 'polite');
    await within(log).findByText('hello 2');
    expect(within(log).getByRole('separator', { name: 'New messages' })).toBeInTheDocument();
    // Followed over the socket: joined and synced (every member room for the list's counts).
    await waitFor(() => expect(socket.sent('room:join').map((p) => p.room_id)).toContain(ROOM));
    await waitFor(() => expect(socket.sent('sync')).not.toHaveLength(0));

    // Someone types, then writes: both show up live.
    act(() => socket.push('typing', { room_id: ROOM, user: { id: 'bob', username: 'bob' } }));
    expect(screen.getByTestId('typing')).toHaveTextContent('bob is typing…');
    act(() => socket.push('message:new', msg(3, { body_html: '<p>live one</p>' })));
    await within(log).findByText('live one');
    expect(screen.getByTestId('typing')).toHaveTextContent('');
    // A message in another room counts on its link.
    act(() => socket.push('message:new', msg(5, { room_id: OTHER, mentions_room: true })));
    expect(await within(nav).findByRole('link', { name: 'db, 5 unread, 3 mentions' })).toBeInTheDocument();

    const user = userEvent.setup();
    const composer = screen.getByRole('textbox', { name: 'Message #ops' });
    await user.type(composer, 'first line{Shift>}{Enter}{/Shift}second');
    expect(socket.sent('message:send')).toHaveLength(0);
    expect(composer).toHaveValue('first line\nsecond');
    await user.click(screen.getByRole('tab', { name: 'Preview' }));
    expect(screen.getByTestId('composer-preview')).toHaveTextContent('first linesecond');
    await user.click(screen.getByRole('tab', { name: 'Write' }));
    await user.type(screen.getByRole('textbox', { name: 'Message #ops' }), '{Enter}');
    await waitFor(() => expect(socket.sent('message:send')).toHaveLength(1));
    const sent = socket.sent('message:send')[0];
    expect(sent).toMatchObject({ room_id: ROOM, body: 'first line\nsecond' });
    expect(String(sent?.client_id)).toMatch(/^[A-Za-z0-9._:-]{1,64}$/);
    expect(screen.getByRole('textbox', { name: 'Message #ops' })).toHaveValue('');

    // Keyboard: Up/Down move through the messages, Enter opens the actions.
    const items = within(log).getAllByTestId('chat-message');
    const last = items[items.length - 1] as HTMLElement;
    last.focus();
    fireEvent.keyDown(last, { key: 'ArrowUp' });
    expect(items[items.length - 2]).toHaveFocus();
    fireEvent.keyDown(items[items.length - 2] as HTMLElement, { key: 'Enter' });
    expect(await screen.findByRole('menuitem', { name: 'Reply in thread' })).toBeInTheDocument();
  });
});

/** A socket that joins and syncs with nothing new: the room's history comes over REST. */
function quietSocket(): FakeSocket {
  const socket = new FakeSocket((event, payload) => {
    const p = payload as Record<string, unknown>;
    if (event === 'room:join') return { ok: true, room_id: p.room_id, last_seq: 8, last_read_seq: 8, unread: 0 };
    if (event === 'sync') return { ok: true, room_id: p.room_id, messages: [], more: false };
    return { ok: true };
  });
  setSocketFactory(async () => {
    queueMicrotask(() => socket.setConnected(true));
    return socket;
  });
  return socket;
}

describe('war room, search and invites', { timeout: 30_000 }, () => {
  afterEach(() => setSocketFactory(null));

  it("pins a war room's message to the incident's timeline, with a link there; a refusal shows the server's message", async () => {
    quietSocket();
    const warRoom = room({ incident_number: 42, name: 'INC-42: Checkout down', last_seq: 2, last_read_seq: 2, unread: 0 });
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'GET /api/v1/chat/rooms': { status: 200, body: { items: [warRoom], next_cursor: null } },
      [`GET /api/v1/chat/rooms/${ROOM}`]: { status: 200, body: warRoom },
      [`GET /api/v1/chat/rooms/${ROOM}/messages`]: { status: 200, body: { items: [msg(1), msg(2)], next_cursor: null } },
      [`GET /api/v1/chat/rooms/${ROOM}/members`]: { status: 200, body: [] },
      'POST /api/v1/chat/messages/m2/pin-to-incident': { status: 201, body: { number: 42, event_id: 'e1' } },
      'POST /api/v1/chat/messages/m1/pin-to-incident': apiError(403, 'not_allowed', 'You may not see this incident.'),
    });
    renderApp(`/chat/rooms/${ROOM}`);
    const log = await screen.findByRole('log', { name: 'Messages in #INC-42: Checkout down' });
    await within(log).findByText('hello 2');
    const user = userEvent.setup();

    // Keyboard: the message, Enter, the menu's item.
    const second = within(log).getAllByTestId('chat-message')[1] as HTMLElement;
    second.focus();
    fireEvent.keyDown(second, { key: 'Enter' });
    await user.click(await screen.findByRole('menuitem', { name: 'Pin to INC-42 timeline' }));
    const notice = await screen.findByTestId('pin-notice');
    expect(notice).toHaveAttribute('role', 'status');
    expect(notice).toHaveTextContent('Pinned to the timeline of INC-42.');
    expect(within(notice).getByRole('link', { name: 'Open INC-42' })).toHaveAttribute('href', '/incidents/42');
    expect(api.requests.find((r) => r.path.endsWith('/pin-to-incident'))?.headers.get('X-CSRF-Token')).toBeTruthy();
    // The message says where it went, and is not offered for pinning again.
    expect(within(second).getByRole('link', { name: 'pinned to INC-42' })).toHaveAttribute('href', '/incidents/42');
    await user.click(within(second).getByRole('button', { name: 'Message actions' }));
    expect(await screen.findByRole('menuitem', { name: 'Reply in thread' })).toBeInTheDocument();
    expect(screen.queryByRole('menuitem', { name: 'Pin to INC-42 timeline' })).toBeNull();
    await user.keyboard('{Escape}');

    const first = within(log).getAllByTestId('chat-message')[0] as HTMLElement;
    await user.click(within(first).getByRole('button', { name: 'Message actions' }));
    await user.click(await screen.findByRole('menuitem', { name: 'Pin to INC-42 timeline' }));
    expect(await screen.findByText('You may not see this incident.')).toBeInTheDocument();
  });

  it('offers no pinning outside a war room', async () => {
    quietSocket();
    const plain = room({ last_read_seq: 2, unread: 0 });
    mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'GET /api/v1/chat/rooms': { status: 200, body: { items: [plain], next_cursor: null } },
      [`GET /api/v1/chat/rooms/${ROOM}`]: { status: 200, body: plain },
      [`GET /api/v1/chat/rooms/${ROOM}/messages`]: { status: 200, body: { items: [msg(1), msg(2)], next_cursor: null } },
      [`GET /api/v1/chat/rooms/${ROOM}/members`]: { status: 200, body: [] },
    });
    renderApp(`/chat/rooms/${ROOM}`);
    const log = await screen.findByRole('log', { name: 'Messages in #ops' });
    await within(log).findByText('hello 2');
    await userEvent.click(within(log).getAllByRole('button', { name: 'Message actions' })[1] as HTMLElement);
    expect(await screen.findByRole('menuitem', { name: 'Reply in thread' })).toBeInTheDocument();
    expect(screen.queryByRole('menuitem', { name: /^Pin to/ })).toBeNull();
  });

  it('searches with filters, highlights the words, and opens a hit at its message', async () => {
    quietSocket();
    const opened = room({ last_seq: 20, last_read_seq: 20, unread: 0 });
    const hit = msg(7, { body: 'We deployed v2', body_html: '<p>We <strong>deployed</strong> v2</p>' });
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'GET /api/v1/chat/rooms': { status: 200, body: { items: [opened], next_cursor: null } },
      [`GET /api/v1/chat/rooms/${ROOM}/members`]: { status: 200, body: [] },
      'GET /api/v1/chat/search': {
        status: 200,
        body: { items: [{ message: hit, room: { id: ROOM, name: 'ops', kind: 'room' }, rank: 0.5 }], next_cursor: null },
      },
      [`GET /api/v1/chat/rooms/${ROOM}`]: { status: 200, body: opened },
      [`GET /api/v1/chat/rooms/${ROOM}/messages`]: (request) =>
        new URLSearchParams(request.search).get('around_seq') === '7'
          ? { status: 200, body: { items: [msg(6), hit, msg(8)], next_cursor: null } }
          : { status: 200, body: { items: [msg(19), msg(20)], next_cursor: null } },
    });
    renderApp('/chat');
    const user = userEvent.setup();
    await user.click(await screen.findByRole('link', { name: 'Search' }));
    await screen.findByRole('heading', { name: 'Search messages' });
    const words = screen.getByRole('searchbox', { name: /^Words/ });
    await user.type(words, 'deploying -staging{Enter}');
    await waitFor(() => expect(screen.getByTestId('search-status')).toHaveTextContent('1 message found.'));
    expect(screen.getByTestId('location')).toHaveTextContent('/chat/search?q=deploying+-staging');
    const search = api.requests.find((r) => r.path === '/api/v1/chat/search');
    expect(new URLSearchParams(search?.search).get('q')).toBe('deploying -staging');
    expect(new URLSearchParams(search?.search).get('room_id')).toBeNull();

    const results = screen.getByRole('list', { name: 'Search results' });
    const link = within(results).getByRole('link');
    expect(link).toHaveAttribute('href', `/chat/rooms/${ROOM}?seq=7`);
    expect(link).toHaveTextContent('#ops');
    expect(link).toHaveTextContent('Bob');
    expect(link.querySelector('mark')).toHaveTextContent('deployed');
    expect(link.querySelector('strong')).toBeNull();

    await user.click(link);
    expect(screen.getByTestId('location')).toHaveTextContent(`/chat/rooms/${ROOM}?seq=7`);
    const log = await screen.findByRole('log', { name: 'Messages in #ops' });
    const target = (await within(log).findByText('deployed')).closest('[data-testid="chat-message"]');
    await waitFor(() => expect(target).toHaveFocus());
    expect(target).toHaveAttribute('aria-current', 'true');
    const around = api.requests.find((r) => r.path.endsWith('/messages') && r.search.includes('around_seq'));
    expect(new URLSearchParams(around?.search).get('around_seq')).toBe('7');
  });

  it('passes the room, author and days of the form to the search', async () => {
    quietSocket();
    const dm = room({ id: OTHER, kind: 'dm', name: '', members: [{ id: 'u-1', username: 'alice', display_name: 'Alice' }, { id: 'u-9', username: 'carol', display_name: 'Carol' }] });
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'GET /api/v1/chat/rooms': { status: 200, body: { items: [room(), dm], next_cursor: null } },
      [`GET /api/v1/chat/rooms/${ROOM}/members`]: { status: 200, body: [] },
      'GET /api/v1/chat/search': { status: 200, body: { items: [], next_cursor: null } },
    });
    renderApp(`/chat/search?q=disk&room=${ROOM}&author=u-9&from=2026-12-01&to=2026-12-07`);
    await waitFor(() => expect(screen.getByTestId('search-status')).toHaveTextContent('No messages found.'));
    const query = new URLSearchParams(api.requests.find((r) => r.path === '/api/v1/chat/search')?.search);
    expect(query.get('q')).toBe('disk');
    expect(query.get('room_id')).toBe(ROOM);
    expect(query.get('author_id')).toBe('u-9');
    expect(new Date(query.get('since') ?? '').getTime()).toBe(new Date(2026, 11, 1).getTime());
    expect(new Date(query.get('until') ?? '').getTime()).toBe(new Date(2026, 11, 8).getTime());
    // The form shows what was searched.
    expect(screen.getByRole('searchbox', { name: /^Words/ })).toHaveValue('disk');
    await waitFor(() => expect(screen.getByRole('combobox', { name: 'Author' })).toHaveValue('Carol (carol)'));
  });

  it('invites someone the moderator knows from the members list, and the list updates', async () => {
    quietSocket();
    const carol = { id: 'u-9', username: 'carol', display_name: 'Carol' };
    const dm = room({ id: OTHER, kind: 'dm', name: '', members: [{ id: 'u-1', username: 'alice', display_name: 'Alice' }, carol] });
    const ops = room({ last_read_seq: 2, unread: 0, member_count: 1 });
    const owner = { user: { id: 'u-1', username: 'alice', display_name: 'Alice' }, role: 'owner', joined_at: '2026-12-07T09:00:00Z', presence: 'online' };
    const invited = { user: carol, role: 'member', joined_at: '2026-12-07T10:00:00Z', presence: 'offline' };
    let members: unknown[] = [owner];
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'GET /api/v1/chat/rooms': { status: 200, body: { items: [ops, dm], next_cursor: null } },
      [`GET /api/v1/chat/rooms/${ROOM}`]: { status: 200, body: ops },
      [`GET /api/v1/chat/rooms/${ROOM}/messages`]: { status: 200, body: { items: [msg(1), msg(2)], next_cursor: null } },
      [`GET /api/v1/chat/rooms/${ROOM}/members`]: () => ({ status: 200, body: members }),
      [`POST /api/v1/chat/rooms/${ROOM}/members`]: () => {
        members = [owner, invited];
        return { status: 201, body: invited };
      },
    });
    renderApp(`/chat/rooms/${ROOM}`);
    const user = userEvent.setup();
    await user.click(await screen.findByRole('button', { name: 'Members (1)' }));
    await user.click(await screen.findByRole('button', { name: 'Invite someone' }));
    const dialog = await screen.findByRole('dialog', { name: 'Invite to #ops' });
    const person = within(dialog).getByRole('combobox', { name: /^Person/ });
    await waitFor(() => expect(person).toHaveFocus());
    await user.type(person, 'car');
    await user.click(await screen.findByRole('option', { name: 'Carol (carol)' }));
    await user.click(within(dialog).getByRole('button', { name: 'Invite' }));
    expect(await within(dialog).findByRole('status')).toHaveTextContent('Carol was added to the room.');
    expect(api.requests.find((r) => r.method === 'POST' && r.path.endsWith('/members'))?.body).toEqual({ user_id: 'u-9' });
    await user.click(within(dialog).getByRole('button', { name: 'Done' }));
    await waitFor(() => expect(screen.queryByRole('dialog', { name: 'Invite to #ops' })).toBeNull());
    await user.click(screen.getByRole('button', { name: /^Members/ }));
    await waitFor(() => expect(screen.getAllByTestId('room-member').map((m) => m.textContent)).toEqual(expect.arrayContaining([expect.stringContaining('Carol')])));
  });

  it('finds people in the directory as the moderator types, beyond those they know', async () => {
    quietSocket();
    const dave = { id: 'u-7', username: 'dave', display_name: 'Dave Ops' };
    const ops = room({ last_read_seq: 2, unread: 0, member_count: 1 });
    const owner = { user: { id: 'u-1', username: 'alice', display_name: 'Alice' }, role: 'owner', joined_at: '2026-12-07T09:00:00Z', presence: 'online' };
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'GET /api/v1/chat/rooms': { status: 200, body: { items: [ops], next_cursor: null } },
      [`GET /api/v1/chat/rooms/${ROOM}`]: { status: 200, body: ops },
      [`GET /api/v1/chat/rooms/${ROOM}/messages`]: { status: 200, body: { items: [msg(1), msg(2)], next_cursor: null } },
      [`GET /api/v1/chat/rooms/${ROOM}/members`]: { status: 200, body: [owner] },
      'GET /api/v1/users/directory': (request) => ({
        status: 200,
        body: { items: new URLSearchParams(request.search).get('q') === 'dav' ? [dave] : [], next_cursor: null },
      }),
      [`POST /api/v1/chat/rooms/${ROOM}/members`]: { status: 201, body: { user: dave, role: 'member', joined_at: '2026-12-07T10:00:00Z', presence: 'offline' } },
    });
    renderApp(`/chat/rooms/${ROOM}`);
    const user = userEvent.setup();
    await user.click(await screen.findByRole('button', { name: 'Members (1)' }));
    await user.click(await screen.findByRole('button', { name: 'Invite someone' }));
    const dialog = await screen.findByRole('dialog', { name: 'Invite to #ops' });
    await user.type(within(dialog).getByRole('combobox', { name: /^Person/ }), 'dav');
    await user.click(await screen.findByRole('option', { name: 'Dave Ops (dave)' }));
    await user.click(within(dialog).getByRole('button', { name: 'Invite' }));
    expect(await within(dialog).findByRole('status')).toHaveTextContent('Dave Ops was added to the room.');
    expect(api.requests.find((r) => r.method === 'POST' && r.path.endsWith('/members'))?.body).toEqual({ user_id: 'u-7' });
  });

  it('offers no invite to a plain member', async () => {
    quietSocket();
    const ops = room({ role: 'member', last_read_seq: 2, unread: 0 });
    mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'GET /api/v1/chat/rooms': { status: 200, body: { items: [ops], next_cursor: null } },
      [`GET /api/v1/chat/rooms/${ROOM}`]: { status: 200, body: ops },
      [`GET /api/v1/chat/rooms/${ROOM}/messages`]: { status: 200, body: { items: [msg(1)], next_cursor: null } },
      [`GET /api/v1/chat/rooms/${ROOM}/members`]: { status: 200, body: [] },
    });
    renderApp(`/chat/rooms/${ROOM}`);
    await userEvent.click(await screen.findByRole('button', { name: /^Members/ }));
    await screen.findByRole('dialog', { name: /^Members/ });
    expect(screen.queryByRole('button', { name: 'Invite someone' })).toBeNull();
  });
});

describe('war room button', { timeout: 20_000 }, () => {
  it('opens the war room and goes there', async () => {
    const api = mockApi({ 'POST /api/v1/incidents/42/war-room': { status: 201, body: room({ id: OTHER, incident_number: 42 }) } });
    render(
      <MemoryRouter initialEntries={['/incidents/42']}>
        <MantineProvider theme={theme} env="test">
          <QueryClientProvider client={createQueryClient()}>
            <Routes>
              <Route path="*" element={<WarRoomButton number={42} roomId={null} />} />
            </Routes>
            <LocationProbe />
          </QueryClientProvider>
        </MantineProvider>
      </MemoryRouter>,
    );
    await userEvent.click(screen.getByRole('button', { name: 'War room' }));
    await waitFor(() => expect(screen.getByTestId('location')).toHaveTextContent(`/chat/rooms/${OTHER}`));
    expect(api.requests.find((r) => r.method === 'POST')?.headers.get('X-CSRF-Token')).toBeDefined();
  });

  it('is a link once the room exists', () => {
    render(
      <MemoryRouter>
        <MantineProvider theme={theme} env="test">
          <WarRoomButton number={42} roomId={OTHER} />
        </MantineProvider>
      </MemoryRouter>,
    );
    expect(screen.getByRole('link', { name: 'War room' })).toHaveAttribute('href', `/chat/rooms/${OTHER}`);
  });
});

describe('markdown preview', () => {
  it('builds elements, keeps only http(s) and mailto links, and never reads HTML', () => {
    const { container } = render(
      <MarkdownPreview text={'**bold** *it* `x<y`\n\n- one\n- [site](https://example.com) [bad](javascript:alert(1))\n\n<img src=x onerror=alert(1)>'} />,
    );
    expect(container.querySelector('strong')).toHaveTextContent('bold');
    expect(container.querySelector('em')).toHaveTextContent('it');
    expect(container.querySelector('code')).toHaveTextContent('x<y');
    expect(container.querySelectorAll('li')).toHaveLength(2);
    const links = container.querySelectorAll('a');
    expect(links).toHaveLength(1);
    expect(links[0]).toHaveAttribute('href', 'https://example.com');
    expect(container.querySelector('img')).toBeNull();
    expect(container).toHaveTextContent('<img src=x onerror=alert(1)>');
  });
});
