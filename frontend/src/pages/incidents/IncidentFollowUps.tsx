import { useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import { Anchor, Badge, Button, Card, Group, Skeleton, Stack, Text, TextInput, Title } from '@mantine/core';
import { useInfiniteQuery, useQueryClient } from '@tanstack/react-query';
import {
  createFollowUp,
  incidentsKeys,
  listIncidentFollowUps,
  type FollowUpCreate,
  type Incident,
} from '../../api/incidents';
import { FormError } from '../../components/FormError';
import { displayName } from '../../components/format';
import { useSubmit } from '../../hooks/useSubmit';
import { FollowUpStatusBadge } from './badges';
import { formFieldErrors } from './filters';

/** The create body from the form's text: blanks are left out, so the API keeps its defaults. */
export function followUpBody(title: string, owner: string, dueDate: string): FollowUpCreate {
  const body: FollowUpCreate = { title: title.trim(), status: 'open' };
  if (owner.trim()) body.owner = owner.trim();
  if (dueDate) body.due_date = dueDate;
  return body;
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
    await Promise.all([
      queryClient.invalidateQueries({ queryKey: incidentsKeys.incidentFollowUps(number) }),
      queryClient.invalidateQueries({ queryKey: ['incidents', 'follow-ups'] }),
      queryClient.invalidateQueries({ queryKey: incidentsKeys.timeline(number) }),
    ]);
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

/** The follow-ups of one incident; its editors add new ones here. */
export function IncidentFollowUps({ incident, onNotice }: { incident: Incident; onNotice: (text: string) => void }) {
  const { number } = incident;
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
                  <FollowUpStatusBadge status={item.status} size="sm" />
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
