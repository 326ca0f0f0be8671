import type { Message } from '../../api/chat';

/** A message as the server sends it, for unit tests: message `seq` of room `roomId` by Bob. */
export function chatMessage(roomId: string, seq: number, over: Partial<Message> = {}): Message {
  return {
    id: `m${seq}`,
    room_id: roomId,
    seq,
    client_id: `c${seq}`,
    author: { id: 'bob', username: 'bob', display_name: 'Bob' },
    body: `hello ${seq}`,
    body_html: `<p>hello ${seq}</p>`,
    created_at: '2026-12-07T10:00:00Z',
    edited_at: null,
    deleted: false,
    reply_to: null,
    reactions: [],
    reply_count: 0,
    last_reply_at: null,
    attachments: [],
    mentions: [],
    mentions_room: false,
    pinned_to_incident: null,
    ...over,
  };
}
