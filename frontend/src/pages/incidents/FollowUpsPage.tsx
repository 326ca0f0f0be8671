import { Link, useSearchParams } from 'react-router';
import { Anchor, Badge, Button, Group, SegmentedControl, Skeleton, Stack, Table, Text, Title } from '@mantine/core';
import { keepPreviousData, useInfiniteQuery } from '@tanstack/react-query';
import { incidentsKeys, listFollowUps, type FollowUpFilter } from '../../api/incidents';
import { displayName, formatDateTime } from '../../components/format';
import { usePageTitle } from '../../hooks/usePageTitle';
import { FollowUpStatusBadge } from './badges';

type View = 'overdue' | 'open' | 'all';

const FILTERS: Record<View, FollowUpFilter> = {
  overdue: { status: ['open', 'in_progress'], overdue: true },
  open: { status: ['open', 'in_progress'] },
  all: { status: [] },
};

/** Follow-ups of every incident; overdue ones stand out (in words, not colour alone). */
export default function FollowUpsPage() {
  usePageTitle('Follow-ups');
  const [params, setParams] = useSearchParams();
  const raw = params.get('view');
  const view: View = raw === 'overdue' || raw === 'all' ? raw : 'open';
  const filter = FILTERS[view];
  const list = useInfiniteQuery({
    queryKey: incidentsKeys.followUps(filter),
    queryFn: ({ pageParam }) => listFollowUps(filter, pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
    placeholderData: keepPreviousData,
  });
  const items = list.data?.pages.flatMap((page) => page.items) ?? [];

  return (
    <Stack gap="lg">
      <div>
        <Title order={1}>Follow-ups</Title>
        <Text c="dimmed" size="sm">
          Action items from postmortems, across every incident you can see.
        </Text>
      </div>
      <SegmentedControl
        aria-label="Follow-ups shown"
        value={view}
        onChange={(value) => setParams(value === 'open' ? {} : { view: value }, { replace: true })}
        data={[
          { value: 'open', label: 'Not done' },
          { value: 'overdue', label: 'Overdue' },
          { value: 'all', label: 'All' },
        ]}
        style={{ alignSelf: 'flex-start' }}
      />
      {list.isPending ? (
        <Skeleton height={80} aria-label="Loading the follow-ups" />
      ) : items.length === 0 ? (
        <Text size="sm" c="dimmed">
          {view === 'overdue' ? 'Nothing is overdue.' : 'No follow-ups.'}
        </Text>
      ) : (
        <Table.ScrollContainer minWidth={760}>
          <Table verticalSpacing="sm" aria-label="Follow-ups" data-testid="follow-ups-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Follow-up</Table.Th>
                <Table.Th>Incident</Table.Th>
                <Table.Th>Owner</Table.Th>
                <Table.Th>Due</Table.Th>
                <Table.Th>Status</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((item) => (
                <Table.Tr key={item.id} data-overdue={item.overdue || undefined}>
                  <Table.Td className="break-anywhere">{item.title}</Table.Td>
                  <Table.Td className="break-anywhere">
                    <Anchor component={Link} to={`/incidents/${item.incident_number}`} size="sm" underline="always">
                      {item.incident_key}
                    </Anchor>{' '}
                    <Text span size="xs" c="dimmed">
                      {item.incident_title}
                    </Text>
                  </Table.Td>
                  <Table.Td>{item.owner ? displayName(item.owner) : '—'}</Table.Td>
                  <Table.Td style={{ whiteSpace: 'nowrap' }}>
                    {item.due_date ?? '—'}
                    {item.overdue ? (
                      <Badge ml={6} size="sm" color="red" variant="filled">
                        Overdue
                      </Badge>
                    ) : null}
                  </Table.Td>
                  <Table.Td>
                    <FollowUpStatusBadge status={item.status} />
                    {item.completed_at ? (
                      <Text size="xs" c="dimmed">
                        {formatDateTime(item.completed_at)}
                      </Text>
                    ) : null}
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      {list.hasNextPage ? (
        <Group>
          <Button variant="default" onClick={() => void list.fetchNextPage()} loading={list.isFetchingNextPage}>
            Load more
          </Button>
        </Group>
      ) : null}
    </Stack>
  );
}
