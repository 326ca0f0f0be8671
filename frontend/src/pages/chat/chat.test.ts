import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Message, RoomPage } from '../../api/chat';
import { chatMessage } from './testMessages';
import { setSocketFactory } from '../../api/socket';
import { mockApi } from '../../test/utils';
import { FakeSocket } from './fakeSocket';
import { RoomSession } from './roomSession';
import { roomsWithJoin, roomsWithMessage, roomsWithUnread } from './rooms';
import { byteLength, contiguousSeq, lastSeq, mainMessages, mergeMessages, replyCount } from './timeline';
import { typingText } from './RoomView';

const ROOM = 'r'.repeat(32);
const ME = 'me';

const msg = (seq: number, over: Partial<Message> = {}): Message => chatMessage(ROOM, seq, over);

const flush = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('timeline', () => {
  it('keeps each message once, in seq order, whatever order they arrive in', () => {
    const merged = mergeMessages([msg(2), msg(5)], [msg(3), msg(2), msg(1), msg(5)]);
    expect(merged.map((m) => m.seq)).toEqual([1, 2, 3, 5]);
    expect(lastSeq(merged)).toBe(5);
    expect(lastSeq([], 7)).toBe(7);
    expect(contiguousSeq([msg(3), msg(4), msg(6)])).toBe(4);
    expect(contiguousSeq([], 2)).toBe(2);
  });

  it('takes the edit and the tombstone, never an older copy over a newer one', () => {
    const edited = msg(1, { body: 'new', edited_at: '2026-12-07T10:05:00Z' });
    const deleted = msg(1, { body: '', deleted: true });
    expect(mergeMessages([msg(1)], [edited])[0]?.body).toBe('new');
    expect(mergeMessages([edited], [msg(1)])[0]?.body).toBe('new');
    expect(mergeMessages([edited], [deleted])[0]?.deleted).toBe(true);
    expect(mergeMessages([deleted], [edited])[0]?.deleted).toBe(true);
  });

  it('shows replies in their thread and counts them on the root', () => {
    const all = [msg(1), msg(2, { reply_to: 'm1' }), msg(3, { reply_to: 'm1' }), msg(4)];
    expect(mainMessages(all).map((m) => m.seq)).toEqual([1, 4]);
    expect(replyCount(msg(1), all)).toBe(2);
    expect(replyCount(msg(1, { reply_count: 9 }), all)).toBe(9);
  });

  it('counts the limit in UTF-8 bytes', () => {
    expect(byteLength('é')).toBe(2);
    expect(byteLength('👍')).toBe(4);
  });

  it('says who is typing', () => {
    expect(typingText([])).toBe('');
    expect(typingText(['bob'])).toBe('bob is typing…');
    expect(typingText(['bob', 'eve'])).toBe('bob and eve are typing…');
    expect(typingText(['a', 'b', 'c'])).toBe('Several people are typing…');
  });
});

describe('room list counts', () => {
  const page = (): RoomPage => ({
    items: [
      { id: 'a', last_seq: 1, unread: 0, mentions: 0, last_read_seq: 1 },
      { id: ROOM, last_seq: 4, unread: 1, mentions: 0, last_read_seq: 3 },
    ] as RoomPage['items'],
    next_cursor: null,
  });

  it('moves a room with a new message to the top and counts unread and mentions', () => {
    const next = roomsWithMessage(page(), msg(5, { mentions: [ME] }), ME, null);
    expect(next.items.map((r) => r.id)).toEqual([ROOM, 'a']);
    expect(next.items[0]).toMatchObject({ unread: 2, mentions: 1, last_seq: 5 });
    // A message seen before (a sync replay) or our own does not count.
    expect(roomsWithMessage(next, msg(5), ME, null)).toBe(next);
    expect(roomsWithMessage(page(), msg(6, { author: { id: ME, username: 'me', display_name: '' } }), ME, null).items[0]?.unread).toBe(1);
    // The open room is being read.
    expect(roomsWithMessage(page(), msg(7), ME, ROOM).items[0]?.unread).toBe(1);
  });

  it("takes the server's counts from an unread push", () => {
    const next = roomsWithUnread(page(), { room_id: ROOM, unread: 0, last_read_seq: 4 });
    expect(next.items[1]).toMatchObject({ unread: 0, mentions: 0, last_read_seq: 4 });
  });

  it('counts a message said between the list load and the subscription once, from the join', () => {
    const joined = roomsWithJoin(page(), { room_id: ROOM, last_seq: 5, last_read_seq: 3, unread: 2 });
    expect(joined.items.find((r) => r.id === ROOM)).toMatchObject({ unread: 2, last_seq: 5 });
    // Its message:new, if it comes after all, is not counted again.
    expect(roomsWithMessage(joined, msg(5), ME, null)).toBe(joined);
  });

  it('keeps the higher count when the pushes of two quick messages arrive out of order', () => {
    const second = roomsWithUnread(page(), { room_id: ROOM, unread: 3, mentions: 1, last_read_seq: 3 });
    const first = roomsWithUnread(second, { room_id: ROOM, unread: 2, mentions: 0, last_read_seq: 3 });
    expect(first.items[1]).toMatchObject({ unread: 3, mentions: 1, last_read_seq: 3 });
    // A push from before a read elsewhere changes nothing.
    const read = roomsWithUnread(first, { room_id: ROOM, unread: 0, mentions: 0, last_read_seq: 5 });
    expect(roomsWithUnread(read, { room_id: ROOM, unread: 3, last_read_seq: 3 }).items[1]).toMatchObject({ unread: 0, last_read_seq: 5 });
  });
});

describe('RoomSession', () => {
  afterEach(() => setSocketFactory(null));

  function setup(answer: (event: string, payload: Record<string, unknown>) => unknown, history: Message[] = []) {
    const socket = new FakeSocket((event, payload) => answer(event, payload as Record<string, unknown>));
    setSocketFactory(async () => socket);
    mockApi({ 'GET /api/v1/chat/rooms/rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr/messages': { status: 200, body: { items: history, next_cursor: null } } });
    const session = new RoomSession({ id: ROOM, last_read_seq: 1 }, ME);
    return { socket, session };
  }

  it('catches up after a reconnect: syncs from the last seq held, in order, without duplicates', async () => {
    let server = [msg(1), msg(2)];
    const { socket, session } = setup((event, payload) => {
      if (event === 'room:join') return { ok: true, room_id: ROOM, last_seq: server.length, last_read_seq: 1, unread: 1 };
      if (event === 'sync') {
        const after = payload.after_seq as number;
        const rest = server.filter((m) => m.seq > after);
        return { ok: true, room_id: ROOM, messages: rest.slice(0, 2), more: rest.length > 2 };
      }
      return { ok: true };
    }, [msg(1), msg(2)]);
    session.start(2);
    socket.setConnected(true);
    await vi.waitFor(() => expect(session.snapshot().loaded).toBe(true));
    await flush();
    expect(session.snapshot().messages.map((m) => m.seq)).toEqual([1, 2]);

    // The lid closes; five messages are sent meanwhile, one pushed twice when it reopens.
    socket.setConnected(false);
    server = [1, 2, 3, 4, 5, 6, 7].map((n) => msg(n));
    socket.push('message:new', msg(4));
    socket.setConnected(true);
    await vi.waitFor(() => expect(session.snapshot().messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]));
    const syncs = socket.sent('sync').map((p) => p.after_seq);
    // From the last seq held without a gap (2, not the 4 pushed early), page by page.
    expect(syncs.slice(-3)).toEqual([2, 4, 6]);
    session.close();
  });

  it('opened at a message: loads the page around it, then syncs from its end to the latest, without a gap', async () => {
    const server = Array.from({ length: 12 }, (_, i) => msg(i + 1));
    const { socket, session } = setup((event, payload) => {
      if (event === 'room:join') return { ok: true, room_id: ROOM, last_seq: 12, last_read_seq: 12, unread: 0 };
      if (event === 'sync') {
        const rest = server.filter((m) => m.seq > (payload.after_seq as number));
        return { ok: true, room_id: ROOM, messages: rest.slice(0, 3), more: rest.length > 3 };
      }
      return { ok: true };
    }, [msg(3), msg(4), msg(5)]);
    socket.connected = true;
    session.start(12, 4);
    await vi.waitFor(() => expect(session.snapshot().messages.map((m) => m.seq)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]));
    expect(session.snapshot()).toMatchObject({ loaded: true, hasOlder: true });
    // Never the latest page's guess (12 - 50): from the end of the page around the message.
    expect(socket.sent('sync').map((p) => p.after_seq)).toEqual([5, 8, 11]);
    session.close();
  });

  it('keeps an unacknowledged send and resends it with the same client_id after reconnecting', async () => {
    let up = false;
    const made = new Map<string, Message>();
    const { socket, session } = setup((event, payload) => {
      if (event === 'message:send') {
        if (!up) return new Error('timeout');
        const clientId = payload.client_id as string;
        const known = made.get(clientId);
        const message = known ?? msg(10 + made.size, { client_id: clientId, author: { id: ME, username: 'me', display_name: 'Me' }, body: payload.body as string });
        made.set(clientId, message);
        return { ok: true, id: message.id, seq: message.seq, duplicate: Boolean(known), message };
      }
      if (event === 'room:join') return { ok: true, room_id: ROOM, last_seq: 0, last_read_seq: 0, unread: 0 };
      if (event === 'sync') return { ok: true, room_id: ROOM, messages: [], more: false };
      return { ok: true };
    });
    session.start(0);
    socket.connected = true;
    session.send('first try');
    await flush();
    await flush();
    expect(session.snapshot().pending).toMatchObject([{ body: 'first try', status: 'sending' }]);
    const clientId = session.snapshot().pending[0]?.client_id;

    up = true;
    socket.setConnected(true);
    await vi.waitFor(() => expect(session.snapshot().pending).toEqual([]));
    const sends = socket.sent('message:send');
    expect(sends.every((p) => p.client_id === clientId)).toBe(true);
    // The echo of our own message is the same message: shown once.
    socket.push('message:new', made.get(clientId ?? ''));
    expect(session.snapshot().messages).toHaveLength(1);
    session.close();
  });

  it('marks a refused send failed, and applies edits, deletes, reactions and typing from the room', async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    const { socket, session } = setup((event) => {
      if (event === 'message:send') return { ok: false, error: { code: 'message_too_long', message: 'Too long.' } };
      if (event === 'reaction:toggle') return { ok: true, id: 'm1', reactions: [{ emoji: '👍', count: 1, user_ids: [ME] }] };
      return { ok: true, room_id: ROOM, last_seq: 1, last_read_seq: 1, unread: 0, messages: [], more: false };
    }, [msg(1)]);
    socket.connected = true;
    session.start(1);
    await vi.waitFor(() => expect(session.snapshot().messages).toHaveLength(1));
    session.send('x'.repeat(20));
    await vi.waitFor(() => expect(session.snapshot().pending[0]?.status).toBe('failed'));
    expect(session.snapshot().pending[0]?.error).toBe('Too long.');

    socket.push('message:edited', msg(1, { body: 'changed', edited_at: '2026-12-07T11:00:00Z' }));
    expect(session.snapshot().messages[0]?.body).toBe('changed');
    await session.react('m1', '👍');
    expect(session.snapshot().messages[0]?.reactions).toEqual([{ emoji: '👍', count: 1, user_ids: [ME] }]);
    socket.push('typing', { room_id: ROOM, user: { id: 'bob', username: 'bob' } });
    socket.push('typing', { room_id: 'elsewhere', user: { id: 'eve', username: 'eve' } });
    expect(session.snapshot().typing).toEqual([{ id: 'bob', username: 'bob' }]);
    vi.advanceTimersByTime(7000);
    expect(session.snapshot().typing).toEqual([]);
    socket.push('message:deleted', msg(1, { body: '', deleted: true }));
    expect(session.snapshot().messages[0]?.deleted).toBe(true);
    vi.useRealTimers();
    session.close();
  });
});
