import { useState, type FormEvent } from 'react';
import { Badge, Button, Checkbox, Group, SegmentedControl, Skeleton, Stack, Text, Textarea, Title } from '@mantine/core';
import { useInfiniteQuery, useQueryClient } from '@tanstack/react-query';
import {
  addNote,
  incidentsKeys,
  listTimeline,
  pinEvent,
  type Incident,
  type TimelineEvent,
} from '../../api/incidents';
import { FormError } from '../../components/FormError';
import { displayName, formatDateTime } from '../../components/format';
import { useSubmit } from '../../hooks/useSubmit';
import { describeEvent } from './events';
import { formFieldErrors } from './filters';
import { ServerHtml } from './Markdown';

function NoteForm({ number }: { number: number }) {
  const queryClient = useQueryClient();
  const [body, setBody] = useState('');
  const [pinned, setPinned] = useState(false);
  const note = useSubmit(async () => {
    await addNote(number, body, pinned);
    setBody('');
    setPinned(false);
    await queryClient.invalidateQueries({ queryKey: incidentsKeys.timeline(number) });
  });
  const fields = formFieldErrors(note.error);
  function submit(event: FormEvent) {
    event.preventDefault();
    void note.run();
  }
  return (
    <form onSubmit={submit} noValidate>
      <Stack gap="xs">
        <FormError error={note.error && !fields.body ? note.error : null} />
        <Textarea
          label="Note"
          description="Markdown; notes stay on the timeline"
          autosize
          minRows={2}
          value={body}
          onChange={(event) => setBody(event.currentTarget.value)}
          error={fields.body}
        />
        <Group justify="space-between">
          <Checkbox label="Pin this note" checked={pinned} onChange={(event) => setPinned(event.currentTarget.checked)} />
          <Button type="submit" size="xs" variant="default" loading={note.pending}>
            Add note
          </Button>
        </Group>
      </Stack>
    </form>
  );
}

function EventItem({
  event,
  canPin,
  onPin,
  pending,
}: {
  event: TimelineEvent;
  canPin: boolean;
  onPin: (event: TimelineEvent) => void;
  pending: boolean;
}) {
  const when = formatDateTime(event.at);
  return (
    <li data-pinned={event.pinned || undefined} data-kind={event.kind} data-testid="timeline-event">
      <Group justify="space-between" align="flex-start" wrap="nowrap" gap="xs">
        <div style={{ minWidth: 0 }}>
          <Text size="sm" className="break-anywhere">
            <Text span size="xs" c="dimmed" mr={6}>
              {when}
            </Text>
            <Text span fw={600}>
              {event.actor ? displayName(event.actor) : 'OpsDeck'}
            </Text>{' '}
            {describeEvent(event)}
            {event.pinned ? (
              <Badge ml={6} size="xs" variant="light" color="yellow">
                Pinned
              </Badge>
            ) : null}
          </Text>
          {event.body_html ? <ServerHtml html={event.body_html} /> : null}
        </div>
        {canPin ? (
          <Button size="compact-xs" variant="subtle" disabled={pending} onClick={() => onPin(event)}>
            {event.pinned ? 'Unpin' : 'Pin'}
            <span className="visually-hidden"> the event of {when}</span>
          </Button>
        ) : null}
      </Group>
    </li>
  );
}

/** The incident's timeline, oldest first: every change, notes, and the pinned key events. */
export function Timeline({ incident }: { incident: Incident }) {
  const { number } = incident;
  const queryClient = useQueryClient();
  const [show, setShow] = useState<'all' | 'pinned'>('all');
  const timeline = useInfiniteQuery({
    queryKey: incidentsKeys.timeline(number),
    queryFn: ({ pageParam }) => listTimeline(number, pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
  });
  const pin = useSubmit(async (event: TimelineEvent) => {
    await pinEvent(number, event.id, !event.pinned);
    await queryClient.invalidateQueries({ queryKey: incidentsKeys.timeline(number) });
  });
  const events = timeline.data?.pages.flatMap((page) => page.items) ?? [];
  const shown = show === 'pinned' ? events.filter((event) => event.pinned) : events;

  return (
    <section aria-labelledby="timeline-title">
      <Group justify="space-between" mb="xs">
        <Title order={2} size="h4" id="timeline-title">
          Timeline
        </Title>
        <SegmentedControl
          size="xs"
          aria-label="Timeline events shown"
          value={show}
          onChange={(value) => setShow(value as 'all' | 'pinned')}
          data={[
            { value: 'all', label: 'All events' },
            { value: 'pinned', label: 'Pinned only' },
          ]}
        />
      </Group>
      <FormError error={pin.error} />
      {timeline.isPending ? (
        <Stack gap="xs" aria-busy="true" aria-label="Loading the timeline">
          <Skeleton height={20} />
          <Skeleton height={20} />
        </Stack>
      ) : timeline.isError && !timeline.data ? (
        <FormError error={timeline.error} title="The timeline could not be loaded" />
      ) : shown.length === 0 ? (
        <Text size="sm" c="dimmed">
          {show === 'pinned' ? 'No pinned events.' : 'Nothing yet.'}
        </Text>
      ) : (
        <ol className="incident-timeline" aria-labelledby="timeline-title" data-testid="timeline">
          {shown.map((event) => (
            <EventItem
              key={event.id}
              event={event}
              canPin={incident.can_edit}
              pending={pin.pending}
              onPin={(e) => void pin.run(e)}
            />
          ))}
        </ol>
      )}
      {timeline.hasNextPage ? (
        <Button
          mt="xs"
          size="xs"
          variant="default"
          onClick={() => void timeline.fetchNextPage()}
          loading={timeline.isFetchingNextPage}
        >
          Load more events
        </Button>
      ) : null}
      <Stack mt="md">
        <NoteForm number={number} />
      </Stack>
    </section>
  );
}
