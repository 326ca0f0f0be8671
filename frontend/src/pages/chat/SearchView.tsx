import { useEffect, useMemo, useState, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router';
import { Alert, Button, Group, Select, SimpleGrid, Skeleton, Stack, Text, TextInput, Title } from '@mantine/core';
import { useInfiniteQuery, useQuery } from '@tanstack/react-query';
import { chatKeys, listRooms, searchMessages, type SearchFilters, type SearchHit } from '../../api/chat';
import { useCurrentUser } from '../../auth/AuthContext';
import { displayName, formatDateTime } from '../../components/format';
import { usePageTitle } from '../../hooks/usePageTitle';
import { personLabel } from './InviteDialog';
import { usePeople } from './people';
import { roomLabel, setOpenRoomId } from './rooms';
import { dayBounds, mergePeople, messageText, searchTerms, snippet } from './search';

const MAX_QUERY = 200;

/** Where a hit opens: its room, at its message (`?seq=`, read by the room view). */
export function hitPath(hit: Pick<SearchHit, 'room' | 'message'>): string {
  return `/chat/rooms/${hit.room.id}?seq=${hit.message.seq}`;
}

/**
 * History search (docs/chat.md, "Search"): words across the conversations the user may read,
 * narrowed by room, author and dates. The form is kept in the URL (`q`, `room`, `author`,
 * `from`, `to`), so a search can be reloaded, shared and gone back to; a hit opens its room
 * at the message, highlighted.
 */
export function SearchView() {
  const user = useCurrentUser();
  usePageTitle('Search · Chat');
  useEffect(() => setOpenRoomId(null), []);
  const [params, setParams] = useSearchParams();
  const applied = {
    q: params.get('q') ?? '',
    room: params.get('room') ?? '',
    author: params.get('author') ?? '',
    from: params.get('from') ?? '',
    to: params.get('to') ?? '',
  };
  const [q, setQ] = useState(applied.q);
  const [room, setRoom] = useState<string | null>(applied.room || null);
  const [author, setAuthor] = useState<string | null>(applied.author || null);
  const [from, setFrom] = useState(applied.from);
  const [to, setTo] = useState(applied.to);

  const rooms = useQuery({ queryKey: chatKeys.rooms(), queryFn: () => listRooms() });
  const { people } = usePeople(true);
  const roomOptions = (rooms.data?.items ?? []).map((r) => ({
    value: r.id,
    label: r.kind === 'dm' ? roomLabel(r, user.id) : `#${r.name}`,
  }));
  const authorOptions = mergePeople([[user], people]).map((p) => ({
    value: p.id,
    label: p.id === user.id ? `${personLabel(p)}, you` : personLabel(p),
  }));

  const filters = useMemo<SearchFilters>(() => {
    const bounds = dayBounds(applied.from, applied.to);
    return { q: applied.q, roomId: applied.room || null, authorId: applied.author || null, ...bounds };
  }, [applied.q, applied.room, applied.author, applied.from, applied.to]);
  const terms = useMemo(() => searchTerms(filters.q), [filters.q]);
  const results = useInfiniteQuery({
    queryKey: chatKeys.search(filters),
    queryFn: ({ pageParam }) => searchMessages(filters, pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
    enabled: filters.q.trim() !== '',
    meta: { quiet: true },
  });
  const hits = results.data?.pages.flatMap((page) => page.items) ?? [];

  function submit(event: FormEvent) {
    event.preventDefault();
    const next = new URLSearchParams();
    if (q.trim()) next.set('q', q.trim());
    if (room) next.set('room', room);
    if (author) next.set('author', author);
    if (from) next.set('from', from);
    if (to) next.set('to', to);
    setParams(next);
  }

  return (
    <section className="chat-room" aria-labelledby="chat-search-title">
      <Title order={1} size="h3" id="chat-search-title" mb="xs">
        Search messages
      </Title>
      <form onSubmit={submit} role="search" aria-label="Search messages">
        <Stack gap="xs" mb="sm">
          <Group gap="xs" align="flex-end" wrap="nowrap">
            <TextInput
              label="Words"
              type="search"
              style={{ flex: 1 }}
              required
              maxLength={MAX_QUERY}
              value={q}
              onChange={(e) => setQ(e.currentTarget.value)}
              description={'Words, "a phrase", or between two words, -word to leave out.'}
            />
            <Button type="submit">Search</Button>
          </Group>
          <SimpleGrid cols={{ base: 1, sm: 4 }} spacing="xs">
            <Select label="Room" clearable searchable data={roomOptions} value={room} onChange={setRoom} placeholder="Any" />
            <Select label="Author" clearable searchable data={authorOptions} value={author} onChange={setAuthor} placeholder="Anybody" />
            <TextInput label="From" type="date" value={from} onChange={(e) => setFrom(e.currentTarget.value)} />
            <TextInput label="To" type="date" value={to} onChange={(e) => setTo(e.currentTarget.value)} />
          </SimpleGrid>
        </Stack>
      </form>

      {results.isError ? (
        <Alert color="red" variant="light" role="alert" mb="xs">
          {(results.error as Error).message}
        </Alert>
      ) : null}
      <Text size="sm" c="dimmed" role="status" mb={4} data-testid="search-status">
        {filters.q === ''
          ? ''
          : results.isPending
            ? 'Searching…'
            : results.isSuccess
              ? hits.length === 0
                ? 'No messages found.'
                : `${hits.length}${results.hasNextPage ? '+' : ''} ${hits.length === 1 ? 'message' : 'messages'} found.`
              : ''}
      </Text>
      {results.isPending && filters.q ? <Skeleton height={60} /> : null}
      {hits.length ? (
        <ol className="chat-search-results" aria-label="Search results" style={{ flex: 1, minHeight: 0 }}>
          {hits.map((hit) => (
            <li key={hit.message.id}>
              <SearchHitLink hit={hit} terms={terms} label={hitRoomLabel(hit, rooms.data?.items ?? [], user.id)} />
            </li>
          ))}
        </ol>
      ) : null}
      {results.hasNextPage ? (
        <Group justify="center" mt="xs">
          <Button variant="default" size="xs" loading={results.isFetchingNextPage} onClick={() => void results.fetchNextPage()}>
            More results
          </Button>
        </Group>
      ) : null}
    </section>
  );
}

function hitRoomLabel(hit: SearchHit, rooms: Parameters<typeof roomLabel>[0][], userId: string): string {
  const known = rooms.find((r) => r.id === hit.room.id);
  if (known) return known.kind === 'dm' ? roomLabel(known, userId) : `#${known.name}`;
  return hit.room.kind === 'dm' ? hit.room.name || 'Direct message' : `#${hit.room.name}`;
}

function SearchHitLink({ hit, terms, label }: { hit: SearchHit; terms: string[]; label: string }) {
  const parts = snippet(messageText(hit.message), terms);
  const author = hit.message.author ? displayName(hit.message.author) : 'Deleted user';
  return (
    <Link className="chat-search-hit" to={hitPath(hit)} data-testid="search-hit">
      <Group gap={8}>
        <Text size="sm" fw={700} component="span">
          {label}
        </Text>
        <Text size="sm" component="span">
          {author}
        </Text>
        <Text size="xs" c="dimmed" component="time" dateTime={hit.message.created_at}>
          {formatDateTime(hit.message.created_at)}
        </Text>
      </Group>
      <Text size="sm" component="p" m={0} className="break-anywhere">
        {parts.map((part, i) => (part.mark ? <mark key={i}>{part.text}</mark> : <span key={i}>{part.text}</span>))}
      </Text>
    </Link>
  );
}
