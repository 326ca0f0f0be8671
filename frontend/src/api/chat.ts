import { api, unwrap } from './client';
import type { components } from './schema';

type Schemas = components['schemas'];

/** A reaction on a message (docs/chat.md): the emoji, how many, who. */
export type Reaction = Schemas['ReactionOut'];
export type Attachment = Schemas['ChatAttachmentOut'];
export type Presence = Schemas['PresenceStatus'];

/** A message as the server sends it (reactions, thread counts, mentions, attachments, pin). */
export type Message = Schemas['MessageOut'];
export type Room = Schemas['RoomOut'];
export type RoomPage = Schemas['RoomPage'];
export type MessagePage = Schemas['MessagePage'];
export type Member = Schemas['MemberOut'];
export type RoomCreate = Schemas['RoomCreate'];
export type UserRef = Schemas['UserRef'];

export const MESSAGE_LIMIT_BYTES = 10_240;
export const PAGE_SIZE = 50;

/** Query keys of the chat module, for caching and invalidation. */
export const chatKeys = {
  all: ['chat'] as const,
  rooms: () => ['chat', 'rooms'] as const,
  room: (id: string) => ['chat', 'room', id] as const,
  members: (id: string) => ['chat', 'room', id, 'members'] as const,
  thread: (id: string) => ['chat', 'thread', id] as const,
  search: (filters: SearchFilters) => ['chat', 'search', filters] as const,
  people: () => ['chat', 'people'] as const,
};

export function listRooms(cursor?: string | null): Promise<RoomPage> {
  return unwrap(
    api.GET('/api/v1/chat/rooms', { params: { query: { cursor: cursor ?? undefined, limit: 100 } } }),
  ) as Promise<RoomPage>;
}

export function getRoom(id: string): Promise<Room> {
  return unwrap(api.GET('/api/v1/chat/rooms/{room_id}', { params: { path: { room_id: id } } }));
}

export function createRoom(body: RoomCreate): Promise<Room> {
  return unwrap(api.POST('/api/v1/chat/rooms', { body }));
}

export function joinRoom(id: string): Promise<Room> {
  return unwrap(api.POST('/api/v1/chat/rooms/{room_id}/join', { params: { path: { room_id: id } } }));
}

export function leaveRoom(id: string): Promise<void> {
  return unwrap(api.POST('/api/v1/chat/rooms/{room_id}/leave', { params: { path: { room_id: id } } })).then(
    () => undefined,
  );
}

export function listMembers(id: string): Promise<Member[]> {
  return unwrap(api.GET('/api/v1/chat/rooms/{room_id}/members', { params: { path: { room_id: id } } }));
}

export function openDm(userIds: string[]): Promise<Room> {
  return unwrap(api.POST('/api/v1/chat/dms', { body: { user_ids: userIds } }));
}

export function markRead(id: string, seq: number) {
  return unwrap(
    api.POST('/api/v1/chat/rooms/{room_id}/read', { params: { path: { room_id: id } }, body: { seq } }),
  );
}

/** The `limit` messages just before `beforeSeq` (scrolling up), in seq order. */
export function messagesBefore(id: string, beforeSeq: number, limit = PAGE_SIZE): Promise<MessagePage> {
  return unwrap(
    api.GET('/api/v1/chat/rooms/{room_id}/messages', {
      params: { path: { room_id: id }, query: { before_seq: beforeSeq, limit } },
    }),
  );
}

/** Messages after `afterSeq` in seq order (catching up over REST). */
export function messagesAfter(id: string, afterSeq: number, cursor?: string | null, limit = 200): Promise<MessagePage> {
  return unwrap(
    api.GET('/api/v1/chat/rooms/{room_id}/messages', {
      params: { path: { room_id: id }, query: { after_seq: afterSeq, limit, cursor: cursor ?? undefined } },
    }),
  );
}

export function sendMessageRest(
  id: string,
  body: { client_id: string; body: string; reply_to?: string | null; attachment_ids?: string[] },
): Promise<Message> {
  return unwrap(
    api.POST('/api/v1/chat/rooms/{room_id}/messages', {
      params: { path: { room_id: id } },
      body: { ...body, attachment_ids: body.attachment_ids ?? [] },
    }),
  );
}

/** The incident's war room, opened the first time (`201`), the same room after (`200`). */
export function openWarRoom(number: number): Promise<Room> {
  return unwrap(api.POST('/api/v1/incidents/{number}/war-room', { params: { path: { number } } }));
}

export function toggleReactionRest(messageId: string, emoji: string): Promise<Message> {
  return unwrap(
    api.POST('/api/v1/chat/messages/{message_id}/reactions', {
      params: { path: { message_id: messageId } },
      body: { emoji },
    }),
  );
}

export type ThreadPage = Schemas['ThreadOut'];

export function getThread(messageId: string, cursor?: string | null): Promise<ThreadPage> {
  return unwrap(
    api.GET('/api/v1/chat/messages/{message_id}/thread', {
      params: { path: { message_id: messageId }, query: { limit: 100, cursor: cursor ?? undefined } },
    }),
  );
}

// The generated body type describes the file as a string; openapi-fetch sends a FormData body
// as multipart as it is (the browser sets the boundary), so the form stands in for it.
export function uploadAttachment(roomId: string, file: File): Promise<Attachment> {
  const form = new FormData();
  form.set('file', file, file.name);
  return unwrap(
    api.POST('/api/v1/chat/rooms/{room_id}/attachments', {
      params: { path: { room_id: roomId } },
      body: form as unknown as Schemas['Body_chat-upload-attachment'],
    }),
  );
}

/** Where a pinned message went: the incident and its timeline event. */
export type Pin = Schemas['PinOut'];

/** Pins a war room's message to its incident's timeline (`200` with the same pin again). */
export function pinToIncident(messageId: string): Promise<Pin> {
  return unwrap(
    api.POST('/api/v1/chat/messages/{message_id}/pin-to-incident', { params: { path: { message_id: messageId } } }),
  );
}

/** The messages around `seq` (jump to a message), in seq order. */
export function messagesAround(roomId: string, seq: number, limit = PAGE_SIZE): Promise<MessagePage> {
  return unwrap(
    api.GET('/api/v1/chat/rooms/{room_id}/messages', {
      params: { path: { room_id: roomId }, query: { around_seq: seq, limit } },
    }),
  );
}

/** Adds someone to a room (its moderators and owner). */
export function inviteMember(roomId: string, userId: string): Promise<Member> {
  return unwrap(
    api.POST('/api/v1/chat/rooms/{room_id}/members', { params: { path: { room_id: roomId } }, body: { user_id: userId } }),
  );
}

export type SearchHit = Schemas['SearchHit'];
export type SearchPage = Schemas['SearchPage'];

export interface SearchFilters {
  q: string;
  roomId?: string | null;
  authorId?: string | null;
  /** ISO 8601: sent at or after. */
  since?: string | null;
  /** ISO 8601: sent before. */
  until?: string | null;
}

export const SEARCH_PAGE_SIZE = 20;

/** Full-text search over the conversations the user may read (docs/chat.md, "Search"). */
export function searchMessages(filters: SearchFilters, cursor?: string | null): Promise<SearchPage> {
  return unwrap(
    api.GET('/api/v1/chat/search', {
      params: {
        query: {
          q: filters.q,
          room_id: filters.roomId || undefined,
          author_id: filters.authorId || undefined,
          since: filters.since || undefined,
          until: filters.until || undefined,
          cursor: cursor ?? undefined,
          limit: SEARCH_PAGE_SIZE,
        },
      },
    }),
  );
}

/** Emoji offered in the reaction picker (the server accepts any single emoji). */
export const QUICK_REACTIONS = ['👍', '❤️', '😄', '🎉', '👀', '🚀'] as const;

/** One grapheme of Unicode emoji, as the server's check (short text otherwise refused). */
export function isEmoji(text: string): boolean {
  const segments = [...new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(text)];
  return segments.length === 1 && /\p{Extended_Pictographic}|\p{Regional_Indicator}/u.test(text);
}

/** A client id for a send: retried sends reuse it, so the server makes the message once. */
export function newClientId(): string {
  return globalThis.crypto?.randomUUID?.() ?? `c-${Date.now()}-${Math.random().toString(36).slice(2)}`;
}
