import {
  markRead,
  messagesAround,
  messagesBefore,
  newClientId,
  PAGE_SIZE,
  type Message,
  type Reaction,
  type Room,
} from '../../api/chat';
import {
  connectSocket,
  onSocketConnect,
  onSocketEvent,
  socketEmit,
  socketRequest,
  socketStatus,
  SocketError,
} from '../../api/socket';
import { contiguousSeq, lastSeq, mergeMessages } from './timeline';

/** A send not yet acknowledged: shown greyed, retried with the same client_id. */
export interface PendingSend {
  client_id: string;
  body: string;
  reply_to: string | null;
  attachment_ids: string[];
  status: 'sending' | 'failed';
  error: string | null;
}

export interface TypingUser {
  id: string;
  username: string;
}

export interface RoomSnapshot {
  messages: Message[];
  pending: PendingSend[];
  typing: TypingUser[];
  /** The read pointer when the room was opened: "New messages" goes after it. */
  readAtOpen: number;
  readSeq: number;
  hasOlder: boolean;
  loadingOlder: boolean;
  loaded: boolean;
  removed: boolean;
  error: string | null;
}

const TYPING_SHOWN_MS = 6000;
const TYPING_SENT_EVERY_MS = 3000;
/** Errors after which a send is tried again later (same client_id: made once on the server). */
const RETRYABLE = new Set(['disconnected', 'timeout', 'unavailable', 'rate_limited', 'internal_error']);

interface SendAck {
  id: string;
  seq: number;
  duplicate: boolean;
  message: Message;
}
interface JoinAck {
  room_id: string;
  last_seq: number;
  last_read_seq: number;
  unread: number;
}
interface SyncAck {
  room_id: string;
  messages: Message[];
  more: boolean;
}

/**
 * One open conversation: its messages, pending sends and who is typing, kept in step with the
 * server over the shared socket. After every (re)connect it joins the room and asks for
 * everything after the last seq it holds (`sync`, repeated while `more`), then resends what
 * was not acknowledged: the client catches up exactly, in order, without duplicates.
 * React reads it through `subscribe` / `snapshot` (useSyncExternalStore).
 */
export class RoomSession {
  readonly roomId: string;
  private readonly userId: string;
  private state: RoomSnapshot;
  private listeners = new Set<() => void>();
  private offs: (() => void)[] = [];
  private typingTimers = new Map<string, ReturnType<typeof setTimeout>>();
  private lastTypingSent = 0;
  private syncing: Promise<void> | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  /** The seq the room was opened at (a search hit, a link), instead of its latest messages. */
  private anchor: number | null = null;
  /** Called with a message by someone else that arrived live (for notifications, unread). */
  onIncoming: ((message: Message) => void) | null = null;

  constructor(room: Pick<Room, 'id' | 'last_read_seq'>, userId: string) {
    this.roomId = room.id;
    this.userId = userId;
    this.state = {
      messages: [],
      pending: [],
      typing: [],
      readAtOpen: room.last_read_seq,
      readSeq: room.last_read_seq,
      hasOlder: false,
      loadingOlder: false,
      loaded: false,
      removed: false,
      error: null,
    };
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };

  snapshot = (): RoomSnapshot => this.state;

  private set(change: Partial<RoomSnapshot>): void {
    if (this.closed) return;
    this.state = { ...this.state, ...change };
    for (const listener of this.listeners) listener();
  }

  private mine(payload: unknown): payload is { room_id: string } {
    return (payload as { room_id?: unknown } | null)?.room_id === this.roomId;
  }

  /** Applies messages from any source (event, ack, sync, page); drops the sends they answer. */
  apply(messages: readonly Message[]): void {
    const ours = messages.filter((m) => m.room_id === this.roomId);
    if (ours.length === 0) return;
    const answered = new Set(ours.filter((m) => m.author?.id === this.userId).map((m) => m.client_id));
    this.set({
      messages: mergeMessages(this.state.messages, ours),
      pending: this.state.pending.filter((p) => !answered.has(p.client_id)),
    });
  }

  /**
   * Loads the latest page (or, with `aroundSeq`, the page around that message: jump to a
   * message), then follows the room over the socket.
   */
  start(initialLastSeq: number, aroundSeq: number | null = null): void {
    this.closed = false;
    this.anchor = aroundSeq;
    const on = <T>(event: string, handler: (payload: T) => void) =>
      this.offs.push(onSocketEvent<T>(event, handler));
    on<Message>('message:new', (message) => {
      if (!this.mine(message)) return;
      const known = this.state.messages.some((m) => m.id === message.id);
      const gap = this.state.loaded && message.seq > contiguousSeq(this.state.messages) + 1;
      this.apply([message]);
      // Ahead of what is held (one was missed): ask for the gap.
      if (gap) void this.catchUp();
      if (message.author) this.stopTyping(message.author.id);
      if (!known && message.author?.id !== this.userId) this.onIncoming?.(message);
    });
    on<Message>('message:edited', (message) => this.mine(message) && this.apply([message]));
    on<Message>('message:deleted', (message) => this.mine(message) && this.apply([message]));
    on<{ room_id: string; id: string; reactions: Reaction[] }>('reaction', (event) => {
      if (this.mine(event)) this.setReactions(event.id, event.reactions);
    });
    on<{ room_id: string; user: TypingUser }>('typing', (event) => {
      if (this.mine(event) && event.user.id !== this.userId) this.showTyping(event.user);
    });
    on<{ room_id: string }>('room:removed', (event) => this.mine(event) && this.set({ removed: true }));
    on<{ room_id: string; last_read_seq: number }>('unread', (event) => {
      if (this.mine(event) && event.last_read_seq > this.state.readSeq) this.set({ readSeq: event.last_read_seq });
    });
    this.offs.push(onSocketConnect(() => void this.catchUp()));
    connectSocket().catch(() => undefined);
    if (aroundSeq !== null) void this.loadAround(aroundSeq, initialLastSeq);
    else void this.loadLatest(initialLastSeq);
  }

  close(): void {
    for (const off of this.offs) off();
    this.offs = [];
    for (const timer of this.typingTimers.values()) clearTimeout(timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.closed = true;
  }

  private async loadLatest(upTo: number): Promise<void> {
    try {
      const page = await messagesBefore(this.roomId, upTo + 1, PAGE_SIZE);
      this.apply(page.items);
      this.set({ loaded: true, hasOlder: page.next_cursor !== null || page.items.length === PAGE_SIZE, error: null });
    } catch (error) {
      this.set({ loaded: true, error: (error as Error).message });
    }
  }

  /**
   * The page around `seq`; the messages after it, up to the latest, follow over the socket
   * (`sync`), so what is held stays without gaps. A seq the room does not have: the latest page.
   */
  private async loadAround(seq: number, lastSeqAtOpen: number): Promise<void> {
    let found = false;
    try {
      const page = await messagesAround(this.roomId, seq, PAGE_SIZE);
      this.apply(page.items);
      found = page.items.length > 0;
      if (found) this.set({ loaded: true, hasOlder: (page.items[0]?.seq ?? 1) > 1, error: null });
    } catch (error) {
      this.set({ loaded: true, error: (error as Error).message });
      return;
    }
    if (!found) {
      this.anchor = null;
      await this.loadLatest(lastSeqAtOpen);
    }
    // A connect while the page was loading did not sync (nothing was held yet): now it can.
    if (this.closed || socketStatus() !== 'connected') return;
    await this.syncing;
    await this.catchUp();
  }

  /** After a (re)connect: join, read everything after the last seq held, resend the pending. */
  catchUp(): Promise<void> {
    this.syncing ??= (async () => {
      try {
        const joined = await socketRequest<JoinAck>('room:join', { room_id: this.roomId });
        let after = contiguousSeq(this.state.messages);
        // Nothing held yet: the REST page loads the history; only the gap after it is synced.
        // Opened at a message: its page comes first, and syncs from its end once in.
        const waitForPage = after === 0 && !this.state.loaded && this.anchor !== null;
        if (after === 0 && !this.state.loaded) after = Math.max(0, joined.last_seq - PAGE_SIZE);
        for (let round = 0; round < 50 && !waitForPage; round += 1) {
          const answer = await socketRequest<SyncAck>('sync', { room_id: this.roomId, after_seq: after });
          this.apply(answer.messages);
          after = answer.more ? lastSeq(answer.messages, after) : contiguousSeq(this.state.messages);
          if (!answer.more) break;
        }
        if (joined.last_read_seq > this.state.readSeq) this.set({ readSeq: joined.last_read_seq });
        await this.flushPending();
      } catch (error) {
        if (error instanceof SocketError && error.code === 'room_not_found') this.set({ removed: true });
      } finally {
        this.syncing = null;
      }
    })();
    return this.syncing;
  }

  async loadOlder(limit = PAGE_SIZE): Promise<number> {
    const first = this.state.messages[0];
    if (!first || this.state.loadingOlder || !this.state.hasOlder) return 0;
    this.set({ loadingOlder: true });
    try {
      const page = await messagesBefore(this.roomId, first.seq, limit);
      this.apply(page.items);
      this.set({ hasOlder: page.items.length === limit && (page.items[0]?.seq ?? 1) > 1, loadingOlder: false });
      return page.items.length;
    } catch (error) {
      this.set({ loadingOlder: false, error: (error as Error).message });
      return 0;
    }
  }

  /** Loads older pages until `seq` is held (jump to the first unread). */
  async loadUntil(seq: number): Promise<void> {
    for (let i = 0; i < 20; i += 1) {
      const first = this.state.messages[0];
      if (!first || first.seq <= seq || !this.state.hasOlder) return;
      if ((await this.loadOlder(200)) === 0) return;
    }
  }

  send(body: string, options: { replyTo?: string | null; attachmentIds?: string[] } = {}): string {
    const pending: PendingSend = {
      client_id: newClientId(),
      body,
      reply_to: options.replyTo ?? null,
      attachment_ids: options.attachmentIds ?? [],
      status: 'sending',
      error: null,
    };
    this.set({ pending: [...this.state.pending, pending] });
    void this.trySend(pending);
    return pending.client_id;
  }

  retry(clientId: string): void {
    const pending = this.state.pending.find((p) => p.client_id === clientId);
    if (!pending) return;
    const again = { ...pending, status: 'sending' as const, error: null };
    this.replacePending(again);
    void this.trySend(again);
  }

  discard(clientId: string): void {
    this.set({ pending: this.state.pending.filter((p) => p.client_id !== clientId) });
  }

  private replacePending(next: PendingSend): void {
    this.set({ pending: this.state.pending.map((p) => (p.client_id === next.client_id ? next : p)) });
  }

  private async trySend(pending: PendingSend): Promise<void> {
    const payload: Record<string, unknown> = {
      room_id: this.roomId,
      client_id: pending.client_id,
      body: pending.body,
    };
    if (pending.reply_to) payload.reply_to = pending.reply_to;
    if (pending.attachment_ids.length) payload.attachment_ids = pending.attachment_ids;
    try {
      const ack = await socketRequest<SendAck>('message:send', payload);
      this.apply([ack.message]);
    } catch (error) {
      const code = error instanceof SocketError ? error.code : 'disconnected';
      if (RETRYABLE.has(code)) {
        // Stays "sending": tried again after the next connect (or shortly, when rate limited).
        if (socketStatus() === 'connected') this.scheduleRetry();
        return;
      }
      this.replacePending({ ...pending, status: 'failed', error: (error as Error).message });
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.flushPending();
    }, 2000);
  }

  private async flushPending(): Promise<void> {
    for (const pending of this.state.pending.filter((p) => p.status === 'sending')) {
      await this.trySend(pending);
    }
  }

  async edit(id: string, body: string): Promise<void> {
    const ack = await socketRequest<{ message: Message }>('message:edit', { id, body });
    this.apply([ack.message]);
  }

  async remove(id: string): Promise<void> {
    await socketRequest('message:delete', { id });
  }

  async react(id: string, emoji: string): Promise<void> {
    const ack = await socketRequest<{ id: string; reactions: Reaction[] }>('reaction:toggle', { id, emoji });
    this.setReactions(ack.id ?? id, ack.reactions);
  }

  /** Changes one held message (e.g. where it was pinned, which no event tells). */
  update(id: string, change: Partial<Message>): void {
    this.set({ messages: this.state.messages.map((m) => (m.id === id ? { ...m, ...change } : m)) });
  }

  private setReactions(id: string, reactions: Reaction[]): void {
    this.set({
      messages: this.state.messages.map((m) => (m.id === id ? { ...m, reactions } : m)),
    });
  }

  /** Tells the room we are typing, at most every few seconds. */
  typing(): void {
    const now = Date.now();
    if (now - this.lastTypingSent < TYPING_SENT_EVERY_MS) return;
    this.lastTypingSent = now;
    socketEmit('typing', { room_id: this.roomId });
  }

  private showTyping(user: TypingUser): void {
    clearTimeout(this.typingTimers.get(user.id));
    this.typingTimers.set(user.id, setTimeout(() => this.stopTyping(user.id), TYPING_SHOWN_MS));
    if (!this.state.typing.some((t) => t.id === user.id)) this.set({ typing: [...this.state.typing, user] });
  }

  private stopTyping(userId: string): void {
    clearTimeout(this.typingTimers.get(userId));
    this.typingTimers.delete(userId);
    if (this.state.typing.some((t) => t.id === userId)) {
      this.set({ typing: this.state.typing.filter((t) => t.id !== userId) });
    }
  }

  /** Moves the read pointer to `seq` (never back): over the socket, or REST when it is down. */
  async read(seq: number): Promise<void> {
    if (seq <= this.state.readSeq) return;
    this.set({ readSeq: seq });
    try {
      if (socketStatus() === 'connected') await socketRequest('read', { room_id: this.roomId, seq });
      else await markRead(this.roomId, seq);
    } catch {
      // The next read (or the room list) sets it again.
    }
  }

  /** Ends the "New messages" marker (the reader has seen them). */
  dismissUnread(): void {
    this.set({ readAtOpen: lastSeq(this.state.messages, this.state.readSeq) });
  }
}
