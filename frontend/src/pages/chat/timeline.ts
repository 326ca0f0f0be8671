import type { Message } from '../../api/chat';

/**
 * A conversation's messages as the client holds them: in seq order, each id once. Events,
 * acks, sync answers and REST pages all go through `mergeMessages`, so a message that arrives
 * twice (an echo of our own send, a sync after a reconnect, a resend) is shown once, and an
 * edit or a tombstone replaces the message it changes.
 */
export function mergeMessages(current: readonly Message[], incoming: readonly Message[]): Message[] {
  if (incoming.length === 0) return current as Message[];
  const byId = new Map(current.map((message) => [message.id, message]));
  for (const message of incoming) {
    const known = byId.get(message.id);
    byId.set(message.id, known ? newer(known, message) : message);
  }
  return [...byId.values()].sort((a, b) => a.seq - b.seq);
}

/** Of two copies of one message, the later state: a tombstone wins, then the latest edit. */
function newer(known: Message, incoming: Message): Message {
  if (known.deleted && !incoming.deleted) return known;
  if (!known.deleted && incoming.deleted) return incoming;
  const a = known.edited_at ? Date.parse(known.edited_at) : 0;
  const b = incoming.edited_at ? Date.parse(incoming.edited_at) : 0;
  if (b < a) return { ...known, reactions: incoming.reactions ?? known.reactions, reply_count: incoming.reply_count ?? known.reply_count };
  return { ...known, ...incoming };
}

/** The highest seq held: what a sync after a reconnect continues from. */
export function lastSeq(messages: readonly Message[], floor = 0): number {
  const last = messages[messages.length - 1];
  return Math.max(floor, last?.seq ?? 0);
}

/**
 * The seq up to which nothing is missing (from the first message held): what a sync continues
 * from. A live message that arrived ahead of a gap (pushed while the gap was being synced) does
 * not move it, so the gap is still asked for.
 */
export function contiguousSeq(messages: readonly Message[], floor = 0): number {
  let seq = messages[0]?.seq ?? floor;
  for (const message of messages.slice(1)) {
    if (message.seq !== seq + 1) break;
    seq = message.seq;
  }
  return Math.max(seq, floor);
}

/** Messages of the main log: thread replies are shown in their thread. */
export function mainMessages(messages: readonly Message[]): Message[] {
  return messages.filter((message) => !message.reply_to);
}

/** The replies to `rootId` the client holds, in seq order. */
export function repliesTo(messages: readonly Message[], rootId: string): Message[] {
  return messages.filter((message) => message.reply_to === rootId);
}

/** Replies to a root: the larger of the server's count and the replies held here. */
export function replyCount(root: Message, messages: readonly Message[]): number {
  // The server's count is the whole thread's as of when the root was read; replies that came
  // live since are counted from what this client holds.
  return Math.max(root.reply_count, repliesTo(messages, root.id).length);
}

/** Whether a message names the viewer: `@username` (server's `mentions`) or `@room`. */
export function mentionsUser(message: Message, userId: string): boolean {
  return Boolean(message.mentions_room) || (message.mentions ?? []).includes(userId);
}

/** UTF-8 length: the server's 10 KB limit counts bytes, not characters. */
export function byteLength(text: string): number {
  return new TextEncoder().encode(text).length;
}
