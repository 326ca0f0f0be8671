import { useMemo } from 'react';
import { useDebouncedValue } from '@mantine/hooks';
import { keepPreviousData, useQueries, useQuery } from '@tanstack/react-query';
import { findPeople } from '../../api/accounts';
import { chatKeys, listMembers, listRooms, type UserRef } from '../../api/chat';
import { useCurrentUser } from '../../auth/AuthContext';
import { mergePeople } from './search';

/** Rooms whose members are read to find people (the most recently active first). */
const ROOMS_READ = 30;

/**
 * The people a user can pick (to invite to a room, to filter a search by author): first
 * everybody they share a conversation with (the members of their rooms, the people of their
 * direct messages), then the people directory (`GET /users/directory`: every active account
 * whose username or display name contains what was typed, 50 at a time).
 */
export function usePeople(enabled: boolean, search = ''): { people: UserRef[]; loading: boolean } {
  const user = useCurrentUser();
  const [typed] = useDebouncedValue(search.trim(), 250);
  const rooms = useQuery({ queryKey: chatKeys.rooms(), queryFn: () => listRooms(), enabled });
  const joined = (rooms.data?.items ?? []).filter((r) => r.kind !== 'dm' && r.member).slice(0, ROOMS_READ);
  const members = useQueries({
    queries: joined.map((room) => ({
      queryKey: chatKeys.members(room.id),
      queryFn: () => listMembers(room.id),
      enabled,
      meta: { quiet: true },
    })),
  });
  const everybody = useQuery({
    queryKey: [...chatKeys.people(), typed],
    queryFn: () => findPeople(typed),
    enabled,
    placeholderData: keepPreviousData,
    meta: { quiet: true },
  });
  const dmPeople = (rooms.data?.items ?? []).filter((r) => r.kind === 'dm').flatMap((r) => r.members);
  const memberLists = members.map((q) => (q.data ?? []).map((m) => m.user));
  const key = [
    dmPeople.map((p) => p.id).join(),
    memberLists.map((l) => l.map((p) => p.id).join()).join('|'),
    everybody.data?.items.map((u) => u.id).join() ?? '',
  ].join('/');
  const people = useMemo(
    () => mergePeople([dmPeople, ...memberLists, everybody.data?.items ?? []], [user.id]),
    // Recomputed when who is in the lists changes.
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [key, user.id],
  );
  const loading = rooms.isPending || members.some((q) => q.isPending) || everybody.isPending;
  return { people, loading: enabled && loading };
}
