import { useEffect, useRef, useState, type FormEvent } from 'react';
import { NavLink, useNavigate } from 'react-router';
import { Badge, Button, Group, Modal, Radio, Skeleton, Stack, Text, TextInput, Title } from '@mantine/core';
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { chatKeys, createRoom, listRooms, type Room, type RoomPage } from '../../api/chat';
import type { ApiError } from '../../api/errors';
import { useCurrentUser } from '../../auth/AuthContext';
import { FormError } from '../../components/FormError';
import { PresenceDot } from './PresenceDot';
import { roomLabel } from './rooms';

function RoomLink({ room, userId }: { room: Room; userId: string }) {
  const label = roomLabel(room, userId);
  const other = room.kind === 'dm' ? room.members.find((m) => m.id !== userId) : undefined;
  const mentions = room.mentions ?? 0;
  const unreadText = room.unread ? `, ${room.unread} unread` : '';
  const mentionText = mentions ? `, ${mentions} mention${mentions === 1 ? '' : 's'}` : '';
  return (
    <NavLink
      to={`/chat/rooms/${room.id}`}
      className="chat-room-link"
      aria-label={`${label}${unreadText}${mentionText}`}
      style={({ isActive }) => ({
        display: 'flex',
        alignItems: 'center',
        gap: 6,
        padding: '4px 8px',
        borderRadius: 4,
        textDecoration: 'none',
        color: 'inherit',
        fontWeight: room.unread || isActive ? 700 : 400,
        background: isActive ? 'var(--mantine-color-default-hover)' : undefined,
      })}
    >
      {other ? <PresenceDot userId={other.id} /> : <span aria-hidden="true">#</span>}
      <span style={{ flex: 1, overflow: 'hidden', textOverflow: 'ellipsis', whiteSpace: 'nowrap' }}>{label}</span>
      {mentions ? (
        <Badge size="sm" color="red" variant="filled" aria-hidden="true" data-testid="mention-badge">
          @{mentions}
        </Badge>
      ) : null}
      {room.unread ? (
        <Badge size="sm" variant="filled" color="dark" aria-hidden="true" data-testid="unread-badge">
          {room.unread}
        </Badge>
      ) : null}
    </NavLink>
  );
}

export function RoomList({ onLoaded }: { onLoaded: (rooms: Room[]) => void }) {
  const user = useCurrentUser();
  const [creating, setCreating] = useState(false);
  const rooms = useQuery({ queryKey: chatKeys.rooms(), queryFn: () => listRooms() });
  const loaded = useRef(onLoaded);
  useEffect(() => {
    loaded.current = onLoaded;
  });
  const ids = rooms.data?.items.map((r) => `${r.id}:${r.member}`).join() ?? '';
  useEffect(() => {
    if (rooms.data) loaded.current(rooms.data.items);
    // Joined again only when the set of conversations changes.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [ids]);
  const items = rooms.data?.items ?? [];
  const conversations = items.filter((r) => r.kind !== 'dm' && r.member);
  const dms = items.filter((r) => r.kind === 'dm');
  const others = items.filter((r) => r.kind !== 'dm' && !r.member);

  return (
    <nav className="chat-rooms" aria-label="Conversations">
      <Group justify="space-between" mb="xs">
        <Title order={2} size="h4">
          Conversations
        </Title>
        <Group gap={4}>
          <Button size="xs" variant="default" component={NavLink} to="/chat/search">
            Search
          </Button>
          <Button size="xs" variant="light" onClick={() => setCreating(true)}>
            New room
          </Button>
        </Group>
      </Group>
      {rooms.isPending ? (
        <Stack gap={4} aria-busy="true" aria-label="Loading conversations">
          <Skeleton height={20} />
          <Skeleton height={20} />
        </Stack>
      ) : null}
      {[
        ['Rooms', conversations],
        ['Direct messages', dms],
        ['Other public rooms', others],
      ].map(([title, list]) =>
        (list as Room[]).length ? (
          <section key={title as string} aria-label={title as string}>
            <Text size="xs" fw={700} c="dimmed" tt="uppercase" mt="sm" mb={4}>
              {title as string}
            </Text>
            <ul style={{ listStyle: 'none', margin: 0, padding: 0 }}>
              {(list as Room[]).map((room) => (
                <li key={room.id}>
                  <RoomLink room={room} userId={user.id} />
                </li>
              ))}
            </ul>
          </section>
        ) : null,
      )}
      {rooms.data && items.length === 0 ? (
        <Text size="sm" c="dimmed" mt="sm">
          No conversations yet.
        </Text>
      ) : null}
      <NewRoomDialog opened={creating} onClose={() => setCreating(false)} />
    </nav>
  );
}

function NewRoomDialog({ opened, onClose }: { opened: boolean; onClose: () => void }) {
  const navigate = useNavigate();
  const queryClient = useQueryClient();
  const [name, setName] = useState('');
  const [topic, setTopic] = useState('');
  const [visibility, setVisibility] = useState<'public' | 'private'>('public');
  const [error, setError] = useState<ApiError | null>(null);
  const [pending, setPending] = useState(false);

  async function submit(event: FormEvent) {
    event.preventDefault();
    setPending(true);
    setError(null);
    try {
      const room = await createRoom({ name: name.trim(), topic: topic.trim(), visibility, description: '' });
      queryClient.setQueryData<RoomPage>(chatKeys.rooms(), (page) =>
        page ? { ...page, items: [room, ...page.items.filter((r) => r.id !== room.id)] } : page,
      );
      void queryClient.invalidateQueries({ queryKey: chatKeys.rooms() });
      setName('');
      setTopic('');
      onClose();
      navigate(`/chat/rooms/${room.id}`);
    } catch (e) {
      setError(e as ApiError);
    } finally {
      setPending(false);
    }
  }

  return (
    <Modal opened={opened} onClose={onClose} title="New room">
      <form onSubmit={(e) => void submit(e)}>
        <Stack gap="sm">
          <FormError error={error} />
          <TextInput label="Name" required maxLength={80} value={name} onChange={(e) => setName(e.currentTarget.value)} data-autofocus />
          <TextInput label="Topic" maxLength={250} value={topic} onChange={(e) => setTopic(e.currentTarget.value)} />
          <Radio.Group label="Who can see it" value={visibility} onChange={(v) => setVisibility(v as 'public' | 'private')}>
            <Group mt={4}>
              <Radio value="public" label="Public: everybody signed in" />
              <Radio value="private" label="Private: members only" />
            </Group>
          </Radio.Group>
          <Group justify="flex-end">
            <Button variant="default" onClick={onClose}>
              Cancel
            </Button>
            <Button type="submit" loading={pending}>
              Create room
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
