import { useState, type FormEvent } from 'react';
import { Button, Group, Modal, Select, Stack, Text } from '@mantine/core';
import { useQueryClient } from '@tanstack/react-query';
import { chatKeys, inviteMember, type Member, type Room } from '../../api/chat';
import type { ApiError } from '../../api/errors';
import { FormError } from '../../components/FormError';
import { displayName } from '../../components/format';
import { usePeople } from './people';

/** "username" or "Display Name (username)": how a person is offered in a picker. */
export function personLabel(person: { username: string; display_name?: string | null }): string {
  return person.display_name && person.display_name !== person.username
    ? `${person.display_name} (${person.username})`
    : person.username;
}

/**
 * Adds a person to a room (its moderators and owner): picked among the people the user knows
 * and the people directory as they type (see `usePeople`), without the room's members. The members list updates; the dialog stays
 * open for the next one.
 */
export function InviteDialog({
  room,
  opened,
  members,
  onClose,
}: {
  room: Room;
  opened: boolean;
  members: Member[];
  onClose: () => void;
}) {
  const queryClient = useQueryClient();
  const [search, setSearch] = useState('');
  const { people, loading } = usePeople(opened, search);
  const [choice, setChoice] = useState<string | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const [pending, setPending] = useState(false);
  const inRoom = new Set(members.map((m) => m.user.id));
  const options = people.filter((p) => !inRoom.has(p.id)).map((p) => ({ value: p.id, label: personLabel(p) }));

  function close() {
    setChoice(null);
    setSearch('');
    setError(null);
    setDone(null);
    onClose();
  }

  async function submit(event: FormEvent) {
    event.preventDefault();
    if (!choice) return;
    setPending(true);
    setError(null);
    setDone(null);
    try {
      const member = await inviteMember(room.id, choice);
      queryClient.setQueryData<Member[]>(chatKeys.members(room.id), (list) =>
        list ? [...list.filter((m) => m.user.id !== member.user.id), member] : list,
      );
      void queryClient.invalidateQueries({ queryKey: chatKeys.members(room.id) });
      void queryClient.invalidateQueries({ queryKey: chatKeys.room(room.id) });
      setDone(`${displayName(member.user)} was added to the room.`);
      setChoice(null);
    } catch (e) {
      setError(e as ApiError);
    } finally {
      setPending(false);
    }
  }

  return (
    <Modal opened={opened} onClose={close} title={`Invite to #${room.name}`}>
      <form onSubmit={(e) => void submit(e)}>
        <Stack gap="sm">
          <FormError error={error} />
          <Select
            label="Person"
            description="Anyone with an account: type part of their name."
            placeholder={loading ? 'Loading people…' : 'Type a name'}
            searchable
            clearable
            data={options}
            value={choice}
            onChange={setChoice}
            searchValue={search}
            onSearchChange={setSearch}
            nothingFoundMessage={loading ? 'Loading people…' : 'Nobody else to invite'}
            data-autofocus
            required
          />
          <Text size="sm" role="status" data-testid="invite-status" mih={20}>
            {done ?? ''}
          </Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={close}>
              Done
            </Button>
            <Button type="submit" loading={pending} disabled={!choice}>
              Invite
            </Button>
          </Group>
        </Stack>
      </form>
    </Modal>
  );
}
