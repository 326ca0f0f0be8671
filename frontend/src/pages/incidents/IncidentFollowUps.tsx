import { useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import { Anchor, Badge, Button, Card, Group, NativeSelect, Skeleton, Stack, Text, TextInput, Title } from '@mantine/core';
import { useInfiniteQuery, useQueryClient, type QueryClient } from '@tanstack/react-query';
import {
  createFollowUp,
  incidentsKeys,
  listIncidentFollowUps,
  updateFollowUp,
  type FollowUp,
  type FollowUpCreate,
  type FollowUpStatus,
  type Incident,
} from '../../api/incidents';
import { useCurrentUser } from '../../auth/AuthContext';
import { FormError } from '../../components/FormError';
import { displayName } from '../../components/format';
import { useSubmit } from '../../hooks/useSubmit';
import { FOLLOW_UP_STATUSES, followUpStatusLabel, FollowUpStatusBadge } from './badges';
import { formFieldErrors } from './filters';

/** The create body from the form's text: blanks are left out, so the API keeps its defaults. */
export function followUpBody(title: string, owner: string, dueDate: string): FollowUpCreate {
  const body: FollowUpCreate = { title: title.trim(), status: 'open' };
  if (owner.trim()) body.owner = owner.trim();
  if (dueDate) body.due_date = dueDate;
  return body;
}

/** After a follow-up changed: this incident's list, the lists across incidents and the timeline. */
function refreshFollowUps(queryClient: QueryClient, number: number) {
  return Promise.all([
    queryClient.invalidateQueries({ queryKey: incidentsKeys.incidentFollowUps(number) }),
    queryClient.invalidateQueries({ queryKey: ['incidents', 'follow-ups'] }),
    queryClient.invalidateQueries({ queryKey: incidentsKeys.timeline(number) }),
  ]);
}

/**
 * Who may move a follow-up's status: the incident's editors, and the follow-up's owner (their
 * own work), as the API decides (service/follow_ups.py).
 */
export function canMoveFollowUp(incident: Pick<Incident, 'can_edit'>, item: Pick<FollowUp, 'owner'>, userId: string): boolean {
  return incident.can_edit || item.owner?.id === userId;
}

/** The status of one follow-up as a select: a change is saved at once (PATCH /incidents/follow-ups/{id}). */
function FollowUpStatusSelect({
  item,
  number,
  onNotice,
}: {
  item: FollowUp;
  number: number;
  onNotice: (text: string) => void;
}) {
  const queryClient = useQueryClient();
  const move = useSubmit(async (status: FollowUpStatus) => {
    const saved = await updateFollowUp(item.id, { status });
    onNotice(`Follow-up “${saved.title}” is now ${followUpStatusLabel(saved.status).toLowerCase()}.`);
    await refreshFollowUps(queryClient, number);
  });
  return (
    <Stack gap={4}>
      <NativeSelect
        aria-label={`Status of “${item.title}”`}
        size="xs"
        value={item.status}
        disabled={move.pending}
        onChange={(event) => void move.run(event.currentTarget.value as FollowUpStatus)}
        data={FOLLOW_UP_STATUSES.map((value) => ({ value, label: followUpStatusLabel(value) }))}
        data-testid="follow-up-status"
      />
      <FormError error={move.error} title="The status was not changed" />
    </Stack>
  );
}

function NewFollowUpForm({ number, onCreated }: { number: number; onCreated: (title: string) => void }) {
  const queryClient = useQueryClient();
  const [title, setTitle] = useState('');
  const [owner, setOwner] = useState('');
  const [dueDate, setDueDate] = useState('');
  const create = useSubmit(async () => {
    const created = await createFollowUp(number, followUpBody(title, owner, dueDate));
    setTitle('');
    setOwner('');
    setDueDate('');
    onCreated(created.title);
    await refreshFollowUps(queryClient, number);
  });
  const fields = formFieldErrors(create.error);
  const known = fields.title || fields.owner || fields.due_date;

  function submit(event: FormEvent) {
    event.preventDefault();
    void create.run();
  }

  return (
    <form onSubmit={submit} noValidate aria-labelledby="new-follow-up-title">
      <Stack gap="xs">
        <Text size="sm" fw={600} id="new-follow-up-title">
          New follow-up
        </Text>
        <FormError error={create.error && !known ? create.error : null} title="The follow-up was not added" />
        <TextInput
          label="What to do"
          size="xs"
          required
          maxLength={200}
          value={title}
          onChange={(event) => setTitle(event.currentTarget.value)}
          error={fields.title}
        />
        <Group align="flex-start" gap="xs" grow>
          <TextInput
            label="Owner (username)"
            size="xs"
            autoComplete="off"
            autoCapitalize="none"
            spellCheck={false}
            value={owner}
            onChange={(event) => setOwner(event.currentTarget.value)}
            error={fields.owner}
          />
          <TextInput
            label="Due date"
            size="xs"
            type="date"
            value={dueDate}
            onChange={(event) => setDueDate(event.currentTarget.value)}
            error={fields.due_date}
          />
        </Group>
        <Group>
          <Button type="submit" size="xs" variant="default" loading={create.pending}>
            Add follow-up
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

/** The follow-ups of one incident; its editors add new ones here, and they and each follow-up's owner move its status. */
export function IncidentFollowUps({ incident, onNotice }: { incident: Incident; onNotice: (text: string) => void }) {
  const { number } = incident;
  const me = useCurrentUser();
  const list = useInfiniteQuery({
    queryKey: incidentsKeys.incidentFollowUps(number),
    queryFn: ({ pageParam }) => listIncidentFollowUps(number, pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
  });
  const items = list.data?.pages.flatMap((page) => page.items) ?? [];

  return (
    <Card withBorder radius="md" padding="md" component="section" aria-labelledby="follow-ups-title">
      <Stack gap="sm">
        <Group justify="space-between" align="baseline">
          <Title order={2} size="h4" id="follow-ups-title">
            Follow-ups
          </Title>
          <Anchor component={Link} to="/incidents/follow-ups" size="xs">
            All follow-ups
          </Anchor>
        </Group>
        {list.isPending ? (
          <Skeleton height={40} aria-label="Loading the follow-ups" />
        ) : items.length ? (
          <Stack component="ul" gap="xs" p={0} m={0} style={{ listStyle: 'none' }} aria-labelledby="follow-ups-title" data-testid="incident-follow-ups">
            {items.map((item) => (
              <li key={item.id} data-testid="incident-follow-up">
                <Text size="sm" className="break-anywhere">
                  {item.title}
                </Text>
                <Group gap={6}>
                  {canMoveFollowUp(incident, item, me.id) ? (
                    <FollowUpStatusSelect item={item} number={number} onNotice={onNotice} />
                  ) : (
                    <FollowUpStatusBadge status={item.status} size="sm" />
                  )}
                  {item.overdue ? (
                    <Badge size="sm" color="red" variant="filled">
                      Overdue
                    </Badge>
                  ) : null}
                  <Text size="xs" c="dimmed">
                    {item.owner ? displayName(item.owner) : 'No owner'}
                    {item.due_date ? ` · due ${item.due_date}` : ''}
                  </Text>
                </Group>
              </li>
            ))}
          </Stack>
        ) : list.data ? (
          <Text size="sm" c="dimmed">
            No follow-ups yet.
          </Text>
        ) : (
          <FormError error={list.error} title="The follow-ups could not be loaded" />
        )}
        {list.hasNextPage ? (
          <Group>
            <Button size="xs" variant="default" onClick={() => void list.fetchNextPage()} loading={list.isFetchingNextPage}>
              Load more
            </Button>
          </Group>
        ) : null}
        {incident.can_edit ? (
          <NewFollowUpForm number={number} onCreated={(title) => onNotice(`Follow-up “${title}” was added.`)} />
        ) : null}
      </Stack>
    </Card>
  );
}
