import type { Message, Room, RoomPage } from '../../api/chat';
import { mentionsUser } from './timeline';

let openRoom: string | null = null;

/** The conversation on screen: its new messages are read, not counted as unread. */
export function setOpenRoomId(id: string | null): void {
  openRoom = id;
}
export function openRoomId(): string | null {
  return openRoom;
}

/** The list after a new message: the room moves to the top; unread and mentions count up. */
export function roomsWithMessage(page: RoomPage, message: Message, userId: string, open: string | null): RoomPage {
  const room = page.items.find((r) => r.id === message.room_id);
  if (!room || message.seq <= room.last_seq) return page;
  const counts = message.author?.id !== userId && (open !== room.id || document.visibilityState === 'hidden');
  const updated: Room = {
    ...room,
    last_seq: message.seq,
    last_activity_at: message.created_at,
    unread: room.unread + (counts ? 1 : 0),
    mentions: (room.mentions ?? 0) + (counts && mentionsUser(message, userId) ? 1 : 0),
  };
  return { ...page, items: [updated, ...page.items.filter((r) => r.id !== room.id)] };
}

/**
 * The server's own count (after a read elsewhere, or pushed after a new message). Pushes after
 * two quick messages may arrive in either order, so at the same read pointer a count only goes
 * up (a new message never lowers it); a pointer that moved on (a read) sets it outright.
 */
export function roomsWithUnread(
  page: RoomPage,
  event: { room_id: string; unread: number; last_read_seq: number; mentions?: number },
): RoomPage {
  return {
    ...page,
    items: page.items.map((room) => {
      if (room.id !== event.room_id || event.last_read_seq < room.last_read_seq) return room;
      const read = event.last_read_seq > room.last_read_seq;
      const mentions = event.mentions ?? (event.unread === 0 ? 0 : room.mentions);
      return {
        ...room,
        unread: read ? event.unread : Math.max(room.unread, event.unread),
        last_read_seq: event.last_read_seq,
        mentions: read ? mentions : Math.max(room.mentions, mentions),
      };
    }),
  };
}

/** A conversation's state as `room:join` answers it (the moment this connection subscribed). */
export interface JoinAck {
  room_id: string;
  last_seq: number;
  last_read_seq: number;
  unread: number;
  mentions?: number;
}

/**
 * The list once a connection has subscribed to a conversation: the join's answer counts what
 * was said between the list's load and the subscription (a message in that gap reached
 * neither), and the events that follow count the rest.
 */
export function roomsWithJoin(page: RoomPage, ack: JoinAck): RoomPage {
  const counted = roomsWithUnread(page, ack);
  return {
    ...counted,
    items: counted.items.map((room) =>
      room.id === ack.room_id ? { ...room, last_seq: Math.max(room.last_seq, ack.last_seq) } : room,
    ),
  };
}

/** How a conversation is named: the room's name, or a DM's other people. */
export function roomLabel(room: Room, userId: string): string {
  if (room.kind !== 'dm') return room.name;
  const others = room.members.filter((m) => m.id !== userId);
  return others.map((m) => m.display_name || m.username).join(', ') || room.name || 'Direct message';
}
