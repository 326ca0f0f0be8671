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
import { LocationProbe, mockApi, renderApp, session } from '../../test/utils';
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
