import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState, useSyncExternalStore, type KeyboardEvent } from 'react';
import { Link, useNavigate, useSearchParams } from 'react-router';
import { Alert, Anchor, Badge, Button, Drawer, Group, Modal, Popover, Skeleton, Stack, Text, Title } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import {
  chatKeys,
  getRoom,
  getThread,
  listMembers,
  openDm,
  pinToIncident,
  type Message,
  type Pin,
  type Room,
  type RoomPage,
} from '../../api/chat';
import { useCurrentUser } from '../../auth/AuthContext';
import { displayName } from '../../components/format';
import { usePageTitle } from '../../hooks/usePageTitle';
import { Composer } from './Composer';
import { InviteDialog } from './InviteDialog';
import { MessageItem, type MessageActions } from './MessageItem';
import { PresenceDot } from './PresenceDot';
import { setPresence } from './presence';
import { RoomSession, type PendingSend } from './roomSession';
import { roomLabel, setOpenRoomId } from './rooms';
import { mainMessages, repliesTo, replyCount } from './timeline';

function useSession(room: Room | undefined, userId: string, aroundSeq: number | null): RoomSession | null {
  const [session, setSession] = useState<RoomSession | null>(null);
  // A session per room, made once its REST answer is in (set while rendering, not in an effect).
  if (room && (!session || session.roomId !== room.id)) setSession(new RoomSession(room, userId));
  const startAt = room?.last_seq ?? 0;
  const startRef = useRef(startAt);
  useEffect(() => {
    startRef.current = startAt;
  });
  useEffect(() => {
    if (!session) return undefined;
    session.start(startRef.current, aroundSeq);
    return () => session.close();
  }, [session, aroundSeq]);
  return session;
}

const EMPTY = { messages: [], pending: [], typing: [], readAtOpen: 0, readSeq: 0, hasOlder: false, loadingOlder: false, loaded: false, removed: false, error: null };

export function RoomView({ roomId }: { roomId: string }) {
  const user = useCurrentUser();
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const roomQuery = useQuery({ queryKey: chatKeys.room(roomId), queryFn: () => getRoom(roomId), meta: { quiet: true } });
  const room = roomQuery.data;
  // `?seq=N` (a search hit, a pinned note's link): opened at that message, highlighted.
  const [params] = useSearchParams();
  const jumpSeq = /^\d+$/.test(params.get('seq') ?? '') ? Number(params.get('seq')) : null;
  const session = useSession(room, user.id, jumpSeq);
  const state = useSyncExternalStore(
    useCallback((l: () => void) => (session ? session.subscribe(l) : () => undefined), [session]),
    () => session?.snapshot() ?? EMPTY,
  );
  const label = room ? roomLabel(room, user.id) : 'Conversation';
  usePageTitle(room ? `${room.kind === 'dm' ? '' : '#'}${label} · Chat` : 'Chat');
  const [thread, setThread] = useState<Message | null>(null);
  const [deleting, setDeleting] = useState<Message | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [pinned, setPinned] = useState<Pin | null>(null);
  const [focusedId, setFocusedId] = useState<string | null>(null);
  const [menuFor, setMenuFor] = useState<string | null>(null);
  const [showJump, setShowJump] = useState(true);
  const log = useRef<HTMLDivElement>(null);
  const atBottom = useRef(jumpSeq === null);
  const jumped = useRef(false);
  const keepFromBottom = useRef<number | null>(null);

  useEffect(() => {
    setOpenRoomId(roomId);
    return () => setOpenRoomId(null);
  }, [roomId]);

  const visible = useMemo(() => mainMessages(state.messages), [state.messages]);
  const pendingMain = state.pending.filter((p) => !p.reply_to);
  const last = state.messages[state.messages.length - 1];
  const firstUnread = visible.find((m) => m.seq > state.readAtOpen && m.author?.id !== user.id && !m.deleted);
  const unreadAtOpen = room ? Math.max(0, room.last_seq - state.readAtOpen) : 0;
  const target = jumpSeq !== null ? state.messages.find((m) => m.seq === jumpSeq) : undefined;
  // A thread's reply is shown through its root.
  const highlightId = target ? (target.reply_to ?? target.id) : null;
  const jumpMissing = jumpSeq !== null && state.loaded && !target;

  // Opened at a message: once it is shown, it is scrolled to and focused (once).
  useEffect(() => {
    if (!highlightId || jumped.current) return;
    const el = log.current?.querySelector<HTMLElement>(`[data-message-id="${highlightId}"]`);
    if (!el) return;
    jumped.current = true;
    setFocusedId(highlightId);
    el.scrollIntoView({ block: 'center' });
    el.focus();
  }, [highlightId, visible]);

  // The room list shows this conversation read while it is open.
  useEffect(() => {
    if (!last || !session) return;
    if (document.visibilityState === 'hidden' || !atBottom.current) return;
    void session.read(last.seq);
    queryClient.setQueryData<RoomPage>(chatKeys.rooms(), (page) =>
      page
        ? { ...page, items: page.items.map((r) => (r.id === roomId ? { ...r, unread: 0, mentions: 0, last_read_seq: Math.max(r.last_read_seq, last.seq) } : r)) }
        : page,
    );
  }, [last, session, queryClient, roomId]);

  // Scrolling: stay at the bottom as messages arrive; keep the position when older ones load.
  useLayoutEffect(() => {
    const el = log.current;
    if (!el) return;
    if (keepFromBottom.current !== null) {
      el.scrollTop = el.scrollHeight - keepFromBottom.current;
      keepFromBottom.current = null;
    } else if (atBottom.current) {
      el.scrollTop = el.scrollHeight;
    }
  }, [visible, state.pending]);

  const loadOlder = useCallback(async () => {
    const el = log.current;
    if (!session || !el) return;
    keepFromBottom.current = el.scrollHeight - el.scrollTop;
    const loaded = await session.loadOlder();
    if (loaded === 0) keepFromBottom.current = null;
  }, [session]);

  function onScroll() {
    const el = log.current;
    if (!el) return;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (el.scrollTop < 80 && state.hasOlder && !state.loadingOlder) void loadOlder();
    if (atBottom.current && last && session) void session.read(last.seq);
  }

  async function jumpToUnread() {
    if (!session) return;
    await session.loadUntil(state.readAtOpen + 1);
    setShowJump(false);
    requestAnimationFrame(() => {
      const divider = log.current?.querySelector<HTMLElement>('[data-unread-divider]');
      divider?.scrollIntoView({ block: 'center' });
      const next = divider?.nextElementSibling as HTMLElement | null;
      if (next?.dataset.messageId) {
        setFocusedId(next.dataset.messageId);
        next.focus();
      }
    });
  }

  // Keyboard: Up/Down move through messages, Home/End to the ends, Enter opens the actions.
  function logKeys(event: KeyboardEvent<HTMLDivElement>) {
    const target = event.target as HTMLElement;
    if (!target.classList.contains('chat-message')) return;
    const items = [...(log.current?.querySelectorAll<HTMLElement>('.chat-message') ?? [])];
    const at = items.indexOf(target);
    let next: HTMLElement | undefined;
    if (event.key === 'ArrowUp') next = items[at - 1];
    else if (event.key === 'ArrowDown') next = items[at + 1];
    else if (event.key === 'Home') next = items[0];
    else if (event.key === 'End') next = items[items.length - 1];
    else if (event.key === 'Enter' && target.dataset.messageId) {
      event.preventDefault();
      setMenuFor(target.dataset.messageId);
      return;
    } else return;
    event.preventDefault();
    if (!next && event.key === 'ArrowUp' && state.hasOlder) void loadOlder();
    if (next) {
      setFocusedId(next.dataset.messageId ?? null);
      next.focus();
    }
  }

  function closePanels(event: KeyboardEvent<HTMLElement>) {
    if (event.key !== 'Escape') return;
    if (thread) setThread(null);
  }

  const actions = useMemo(
    () => ({
      onReact: (message: Message, emoji: string) => {
        session?.react(message.id, emoji).catch((e: Error) => setActionError(e.message));
      },
      onReply: (message: Message) => setThread(message),
      onEdit: async (message: Message, body: string) => {
        if (!session) return;
        await session.edit(message.id, body);
      },
      onDelete: (message: Message) => setDeleting(message),
      onPin: (message: Message) => {
        setPinned(null);
        pinToIncident(message.id).then(
          (pin) => {
            session?.update(message.id, { pinned_to_incident: pin });
            setPinned(pin);
          },
          (e: Error) => setActionError(e.message),
        );
      },
    }),
    [session],
  );

  if (roomQuery.isPending) {
    return (
      <Stack className="chat-room" aria-busy="true" aria-label="Loading the conversation">
        <Skeleton height={28} width="40%" />
        <Skeleton height={200} />
      </Stack>
    );
  }
  if (!room) {
    return (
      <section className="chat-room">
        <Title order={1}>Conversation not found</Title>
        <Text>It does not exist, or you are not in it.</Text>
      </section>
    );
  }

  const canModerate = room.role === 'owner' || room.role === 'moderator' || user.role === 'admin';
  const focusId = focusedId && visible.some((m) => m.id === focusedId) ? focusedId : visible[visible.length - 1]?.id;
  const archived = room.archived_at !== null;

  return (
    <section className="chat-room" aria-labelledby="chat-room-title" onKeyDown={closePanels}>
      <Group justify="space-between" mb="xs" wrap="nowrap">
        <div style={{ minWidth: 0 }}>
          <Title order={1} size="h3" id="chat-room-title" className="break-anywhere">
            {room.kind === 'dm' ? label : `# ${label}`}
          </Title>
          {room.topic ? (
            <Text size="sm" c="dimmed" className="break-anywhere">
              {room.topic}
            </Text>
          ) : null}
        </div>
        <Group gap="xs" wrap="nowrap">
          {room.incident_number ? (
            <Button size="xs" variant="default" component="a" href={`/incidents/${room.incident_number}`}>
              INC-{room.incident_number}
            </Button>
          ) : null}
          {archived ? <Badge color="gray">Archived</Badge> : null}
          <MembersButton room={room} canInvite={canModerate && room.member && room.kind !== 'dm' && !archived} />
        </Group>
      </Group>

      {state.removed ? (
        <Alert color="yellow" role="alert" mb="xs" title="You are no longer in this conversation">
          <Button size="xs" variant="default" onClick={() => navigate('/chat')}>
            Back to the conversations
          </Button>
        </Alert>
      ) : null}
      {state.error ? (
        <Alert color="red" variant="light" role="alert" mb="xs">
          {state.error}
        </Alert>
      ) : null}
      {actionError ? (
        <Alert color="red" variant="light" role="alert" mb="xs" withCloseButton closeButtonLabel="Dismiss" onClose={() => setActionError(null)}>
          {actionError}
        </Alert>
      ) : null}
      {pinned ? (
        <Alert
          color="green"
          variant="light"
          role="status"
          mb="xs"
          withCloseButton
          closeButtonLabel="Dismiss"
          onClose={() => setPinned(null)}
          data-testid="pin-notice"
        >
          Pinned to the timeline of INC-{pinned.number}.{' '}
          <Anchor component={Link} to={`/incidents/${pinned.number}`}>
            Open INC-{pinned.number}
          </Anchor>
        </Alert>
      ) : null}
      {jumpMissing ? (
        <Alert color="yellow" variant="light" role="status" mb="xs">
          That message is not in this conversation any more.
        </Alert>
      ) : null}
      {showJump && unreadAtOpen > 0 && jumpSeq === null ? (
        <Group mb={4}>
          <Button size="xs" variant="light" onClick={() => void jumpToUnread()}>
            Jump to first unread ({unreadAtOpen})
          </Button>
          <Button size="xs" variant="subtle" onClick={() => { setShowJump(false); session?.dismissUnread(); }}>
            Mark as read
          </Button>
        </Group>
      ) : null}

      <div
        ref={log}
        className="chat-log"
        role="log"
        aria-live="polite"
        aria-relevant="additions"
        aria-label={`Messages in ${room.kind === 'dm' ? label : `#${label}`}`}
        onScroll={onScroll}
        onKeyDown={logKeys}
        data-testid="chat-log"
      >
        {state.hasOlder ? (
          <Group justify="center" mb="xs">
            <Button size="compact-xs" variant="subtle" loading={state.loadingOlder} onClick={() => void loadOlder()}>
              Load older messages
            </Button>
          </Group>
        ) : state.loaded && visible.length > 0 ? (
          <Text size="xs" c="dimmed" ta="center" mb="xs">
            The beginning of the conversation
          </Text>
        ) : null}
        {!state.loaded ? <Skeleton height={60} /> : null}
        {state.loaded && visible.length === 0 && pendingMain.length === 0 ? (
          <Text size="sm" c="dimmed">
            No messages yet. Say hello!
          </Text>
        ) : null}
        {visible.map((message) => (
          <div key={message.id} style={{ display: 'contents' }}>
            {firstUnread?.id === message.id ? (
              <div className="chat-unread-divider" data-unread-divider role="separator" aria-label="New messages">
                <Text size="xs" c="red" fw={700}>
                  New messages
                </Text>
              </div>
            ) : null}
            <MessageItem
              message={message}
              userId={user.id}
              canModerate={canModerate}
              replies={replyCount(message, state.messages)}
              focused={message.id === focusId}
              highlighted={message.id === highlightId}
              incidentNumber={room.incident_number}
              menuOpen={menuFor === message.id}
              onMenuChange={(open) => setMenuFor(open ? message.id : null)}
              onFocusItem={() => setFocusedId(message.id)}
              {...actions}
            />
          </div>
        ))}
        {pendingMain.map((p) => (
          <PendingItem key={p.client_id} pending={p} onRetry={() => session?.retry(p.client_id)} onDiscard={() => session?.discard(p.client_id)} />
        ))}
      </div>
      <TypingLine names={state.typing.map((t) => t.username)} />
      <Composer
        roomId={room.id}
        idPrefix="room"
        label={`Message ${room.kind === 'dm' ? label : `#${label}`}`}
        disabled={archived || state.removed}
        onSend={(body, attachmentIds) => {
          atBottom.current = true;
          session?.send(body, { attachmentIds });
        }}
        onTyping={() => session?.typing()}
      />

      <ThreadPanel
        root={thread ? (state.messages.find((m) => m.id === thread.id) ?? thread) : null}
        session={session}
        messages={state.messages}
        pending={state.pending}
        userId={user.id}
        canModerate={canModerate}
        incidentNumber={room.incident_number ?? null}
        onClose={() => setThread(null)}
        actions={actions}
      />
      <Modal opened={deleting !== null} onClose={() => setDeleting(null)} title="Delete this message?">
        <Text size="sm">Everybody in the conversation will see that a message was deleted.</Text>
        <Group justify="flex-end" mt="md">
          <Button variant="default" onClick={() => setDeleting(null)}>
            Cancel
          </Button>
          <Button
            color="red"
            onClick={() => {
              const message = deleting;
              setDeleting(null);
              if (message) session?.remove(message.id).catch((e: Error) => setActionError(e.message));
            }}
          >
            Delete
          </Button>
        </Group>
      </Modal>
    </section>
  );
}

function PendingItem({ pending, onRetry, onDiscard }: { pending: PendingSend; onRetry: () => void; onDiscard: () => void }) {
  return (
    <div className="chat-message" data-pending="true" data-testid="chat-pending">
      <Text size="sm" style={{ whiteSpace: 'pre-wrap' }}>
        {pending.body}
      </Text>
      {pending.status === 'failed' ? (
        <Group gap="xs">
          <Text size="xs" c="red" role="alert">
            Not sent: {pending.error}
          </Text>
          <Button size="compact-xs" variant="default" onClick={onRetry}>
            Retry
          </Button>
          <Button size="compact-xs" variant="subtle" onClick={onDiscard}>
            Discard
          </Button>
        </Group>
      ) : (
        <Text size="xs" c="dimmed">
          Sending…
        </Text>
      )}
    </div>
  );
}

export function typingText(names: string[]): string {
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return 'Several people are typing…';
}

function TypingLine({ names }: { names: string[] }) {
  return (
    <Text size="xs" c="dimmed" h={18} role="status" data-testid="typing">
      {typingText(names)}
    </Text>
  );
}

function MembersButton({ room, canInvite }: { room: Room; canInvite: boolean }) {
  const user = useCurrentUser();
  const navigate = useNavigate();
  const [opened, setOpened] = useState(false);
  const [inviting, setInviting] = useState(false);
  const target = useRef<HTMLButtonElement>(null);
  const members = useQuery({
    queryKey: chatKeys.members(room.id),
    queryFn: async () => {
      const list = await listMembers(room.id);
      for (const m of list) if (m.presence) setPresence(m.user.id, m.presence);
      return list;
    },
    enabled: room.member,
    meta: { quiet: true },
  });
  return (
    <>
      <Popover opened={opened} onChange={setOpened} position="bottom-end" trapFocus withinPortal>
        <Popover.Target>
          <Button ref={target} size="xs" variant="default" onClick={() => setOpened((o) => !o)} aria-expanded={opened}>
            Members ({room.member_count})
          </Button>
        </Popover.Target>
        <Popover.Dropdown aria-label="Members">
          <Stack gap={4} maw={280}>
            {canInvite ? (
              <Button
                size="compact-sm"
                variant="light"
                onClick={() => {
                  setOpened(false);
                  setInviting(true);
                }}
              >
                Invite someone
              </Button>
            ) : null}
            {(members.data ?? []).map((m) => (
              <Group key={m.user.id} gap={6} wrap="nowrap" justify="space-between" data-testid="room-member">
                <Group gap={6} wrap="nowrap">
                  <PresenceDot userId={m.user.id} />
                  <Text size="sm">{displayName(m.user)}</Text>
                  {m.role !== 'member' ? (
                    <Text size="xs" c="dimmed">
                      {m.role}
                    </Text>
                  ) : null}
                </Group>
                {m.user.id !== user.id ? (
                  <Button
                    size="compact-xs"
                    variant="subtle"
                    aria-label={`Message ${displayName(m.user)} directly`}
                    onClick={async () => {
                      const dm = await openDm([m.user.id]);
                      setOpened(false);
                      navigate(`/chat/rooms/${dm.id}`);
                    }}
                  >
                    Message
                  </Button>
                ) : null}
              </Group>
            ))}
            {members.isPending && room.member ? <Skeleton height={18} /> : null}
          </Stack>
        </Popover.Dropdown>
      </Popover>
      {canInvite ? (
        <InviteDialog
          room={room}
          opened={inviting}
          members={members.data ?? []}
          onClose={() => {
            setInviting(false);
            // Back to where the dialog was opened from (the members list's button).
            requestAnimationFrame(() => target.current?.focus());
          }}
        />
      ) : null}
    </>
  );
}

interface ThreadProps {
  root: Message | null;
  session: RoomSession | null;
  messages: Message[];
  pending: PendingSend[];
  userId: string;
  canModerate: boolean;
  incidentNumber: number | null;
  onClose: () => void;
  actions: MessageActions;
}

function ThreadPanel({ root, session, messages, pending, userId, canModerate, incidentNumber, onClose, actions }: ThreadProps) {
  const [menuFor, setMenuFor] = useState<string | null>(null);
  // A server with threads says how many replies there are: read them all from it.
  const remote = useQuery({
    queryKey: chatKeys.thread(root?.id ?? ''),
    queryFn: () => getThread(root?.id ?? ''),
    enabled: root !== null && root.reply_count !== undefined,
    meta: { quiet: true },
  });
  useEffect(() => {
    if (remote.data && session) session.apply(remote.data.items);
  }, [remote.data, session]);
  const replies = root ? repliesTo(messages, root.id) : [];
  const waiting = root ? pending.filter((p) => p.reply_to === root.id) : [];
  return (
    <Drawer
      opened={root !== null}
      onClose={onClose}
      position="right"
      title="Thread"
      size="md"
      closeButtonProps={{ 'aria-label': 'Close the thread' }}
    >
      {root ? (
        <Stack gap="xs">
          <MessageItem
            message={root}
            userId={userId}
            canModerate={canModerate}
            replies={0}
            focused
            inThread
            incidentNumber={incidentNumber}
            menuOpen={menuFor === root.id}
            onMenuChange={(open) => setMenuFor(open ? root.id : null)}
            onFocusItem={() => undefined}
            {...actions}
          />
          <Text size="xs" c="dimmed">
            {replies.length} {replies.length === 1 ? 'reply' : 'replies'}
          </Text>
          <div role="log" aria-live="polite" aria-label="Replies" data-testid="thread-log">
            {replies.map((reply) => (
              <MessageItem
                key={reply.id}
                message={reply}
                userId={userId}
                canModerate={canModerate}
                replies={0}
                focused={false}
                inThread
                incidentNumber={incidentNumber}
                menuOpen={menuFor === reply.id}
                onMenuChange={(open) => setMenuFor(open ? reply.id : null)}
                onFocusItem={() => undefined}
                {...actions}
              />
            ))}
            {waiting.map((p) => (
              <PendingItem key={p.client_id} pending={p} onRetry={() => session?.retry(p.client_id)} onDiscard={() => session?.discard(p.client_id)} />
            ))}
          </div>
          <Composer
            roomId={root.room_id}
            idPrefix="thread"
            label="Reply in thread"
            onSend={(body, attachmentIds) => session?.send(body, { replyTo: root.id, attachmentIds })}
            onTyping={() => session?.typing()}
          />
        </Stack>
      ) : null}
    </Drawer>
  );
}
