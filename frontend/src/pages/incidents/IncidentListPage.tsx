import { useEffect, useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import {
  Alert,
  Anchor,
  Button,
  Checkbox,
  Group,
  Kbd,
  NativeSelect,
  Skeleton,
  Stack,
  Switch,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { useDebouncedValue } from '@mantine/hooks';
import { keepPreviousData, useInfiniteQuery, useQuery, useQueryClient } from '@tanstack/react-query';
import { useLiveTopic } from '../../live/useLiveTopic';
import {
  exportCsvPath,
  incidentKey,
  incidentsKeys,
  listCategories,
  listIncidents,
  listTags,
  SEVERITIES,
  STATUSES,
  type IncidentFilters,
  type IncidentSummary,
  type IncidentStatus,
  type Severity,
} from '../../api/incidents';
import { displayName, formatDateTime } from '../../components/format';
import { usePageTitle } from '../../hooks/usePageTitle';
import { IncidentStatusBadge, SeverityBadge, severityLabel, statusLabel } from './badges';
import { currentView, filtersFromParams, isFiltered, listPath, paramsFromFilters, SAVED_VIEWS } from './filters';

function unique(items: IncidentSummary[]): IncidentSummary[] {
  const seen = new Set<number>();
  return items.filter((item) => (seen.has(item.number) ? false : (seen.add(item.number), true)));
}

/** The search box: typed freely, written to the URL once typing pauses. */
function SearchBox({ value, onSearch }: { value: string; onSearch: (q: string) => void }) {
  const [text, setText] = useState(value);
  const [debounced] = useDebouncedValue(text, 300);
  // A saved view or the back button changes the URL: the box follows it.
  const [seen, setSeen] = useState(value);
  if (seen !== value) {
    setSeen(value);
    setText(value);
  }
  useEffect(() => {
    if (debounced.trim() !== value.trim()) onSearch(debounced);
    // eslint-disable-next-line react-hooks/exhaustive-deps -- only a new pause in typing searches
  }, [debounced]);
  return (
    <TextInput
      label="Search"
      description="Title, description and comments"
      type="search"
      value={text}
      maxLength={200}
      onChange={(event) => setText(event.currentTarget.value)}
      onKeyDown={(event) => {
        if (event.key === 'Enter') onSearch(text);
      }}
      w={280}
    />
  );
}

export default function IncidentListPage() {
  usePageTitle('Incidents');
  const [params, setParams] = useSearchParams();
  const filters = filtersFromParams(params);
  const view = currentView(filters);

  const setFilters = (change: Partial<IncidentFilters>) => {
    setParams(paramsFromFilters({ ...filters, ...change }), { replace: true });
  };

  const categories = useQuery({ queryKey: incidentsKeys.categories(), queryFn: listCategories, meta: { quiet: true } });
  const tags = useQuery({ queryKey: incidentsKeys.tags(), queryFn: listTags, meta: { quiet: true } });
  const list = useInfiniteQuery({
    queryKey: incidentsKeys.list(filters),
    queryFn: ({ pageParam }) => listIncidents(filters, pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
    placeholderData: keepPreviousData,
  });
  // Any incident declared or changed is pushed over the shared socket: read the list again.
  const queryClient = useQueryClient();
  useLiveTopic('incidents', () => void queryClient.invalidateQueries({ queryKey: incidentsKeys.lists() }));
  const items = unique(list.data?.pages.flatMap((page) => page.items) ?? []);
  const count = `${items.length}${list.hasNextPage ? '+' : ''}`;

  return (
    <Stack gap="lg">
      <Group justify="space-between" align="flex-end" wrap="wrap">
        <div>
          <Title order={1}>Incidents</Title>
          <Text c="dimmed" size="sm">
            Newest first. Declare one from any page with the “Declare incident” button at the top
            or the keyboard shortcut <Kbd>Alt</Kbd> + <Kbd>Shift</Kbd> + <Kbd>D</Kbd>.
          </Text>
        </div>
        <Group gap="xs">
          <Button variant="default" size="xs" component={Link} to="/incidents/dashboard">
            Dashboard
          </Button>
          <Button variant="default" size="xs" component={Link} to="/incidents/follow-ups">
            Follow-ups
          </Button>
          <Button variant="default" size="xs" component={Link} to="/incidents/notifications">
            E-mail preferences
          </Button>
          <Button variant="default" size="xs" component="a" href={exportCsvPath(paramsFromFilters(filters))} download>
            Export CSV
          </Button>
        </Group>
      </Group>

      <nav aria-label="Saved views">
        <Group gap="xs">
          {SAVED_VIEWS.map((saved) => {
            const active = view?.label === saved.label;
            return (
              <Button
                key={saved.label}
                component={Link}
                to={listPath({ ...saved.filters, q: filters.q })}
                variant={active ? 'light' : 'subtle'}
                size="compact-sm"
                aria-current={active ? 'page' : undefined}
              >
                {saved.label}
              </Button>
            );
          })}
        </Group>
      </nav>

      <Stack gap="sm" role="search" aria-label="Filter incidents">
        <Group align="flex-end" wrap="wrap">
          <SearchBox value={filters.q} onSearch={(q) => setFilters({ q })} />
          <NativeSelect
            label="Category"
            value={filters.category}
            onChange={(event) => setFilters({ category: event.currentTarget.value })}
            data={[
              { value: '', label: 'Any category' },
              ...(categories.data ?? []).map((c) => ({ value: c.name, label: c.name })),
              // A category in the URL that is not (yet) in the list still shows as chosen.
              ...(filters.category && !categories.data?.some((c) => c.name === filters.category)
                ? [{ value: filters.category, label: filters.category }]
                : []),
            ]}
          />
          <NativeSelect
            label="Tag"
            value={filters.tag}
            onChange={(event) => setFilters({ tag: event.currentTarget.value })}
            data={[
              { value: '', label: 'Any tag' },
              ...(tags.data ?? []).map((t) => ({ value: t.name, label: t.name })),
              ...(filters.tag && !tags.data?.some((t) => t.name === filters.tag)
                ? [{ value: filters.tag, label: filters.tag }]
                : []),
            ]}
          />
          <Switch
            label="Only mine"
            description="I command, reported, am assigned or watch"
            checked={filters.mine}
            onChange={(event) => setFilters({ mine: event.currentTarget.checked })}
          />
        </Group>
        <Checkbox.Group
          label="Status"
          value={filters.status}
          onChange={(value) => setFilters({ status: value as IncidentStatus[] })}
        >
          <Group gap="md" mt={4}>
            {STATUSES.map((status) => (
              <Checkbox key={status} value={status} label={statusLabel(status)} />
            ))}
          </Group>
        </Checkbox.Group>
        <Checkbox.Group
          label="Severity"
          value={filters.severity}
          onChange={(value) => setFilters({ severity: value as Severity[] })}
        >
          <Group gap="md" mt={4}>
            {SEVERITIES.map((severity) => (
              <Checkbox key={severity} value={severity} label={severityLabel(severity)} />
            ))}
          </Group>
        </Checkbox.Group>
        {isFiltered(filters) ? (
          <Group>
            <Button variant="subtle" size="compact-sm" component={Link} to="/incidents">
              Clear filters
            </Button>
          </Group>
        ) : null}
      </Stack>

      {list.isPending ? (
        <Stack gap="xs" aria-busy="true" aria-label="Loading incidents">
          <Skeleton height={36} />
          <Skeleton height={36} />
          <Skeleton height={36} />
        </Stack>
      ) : list.isError && !list.data ? (
        <Alert color="red" variant="light" title="The incidents could not be loaded" role="alert">
          {list.error.message}
        </Alert>
      ) : items.length === 0 ? (
        <Alert variant="light" color="blue" title={isFiltered(filters) ? 'No incident matches' : 'No incidents yet'}>
          {isFiltered(filters) ? (
            <>
              Nothing matches these filters.{' '}
              <Anchor component={Link} to="/incidents">
                Show every incident
              </Anchor>
              .
            </>
          ) : (
            'When something breaks, declare an incident so everybody can follow it.'
          )}
        </Alert>
      ) : (
        <>
          <Text size="sm" c="dimmed" role="status" data-testid="list-status">
            {count} incident{items.length === 1 && !list.hasNextPage ? '' : 's'} shown
            {list.isFetching && !list.isFetchingNextPage ? ' · updating' : ''}
          </Text>
          <Table.ScrollContainer minWidth={820}>
            <Table verticalSpacing="sm" aria-label="Incidents" data-testid="incidents-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Incident</Table.Th>
                  <Table.Th>Title</Table.Th>
                  <Table.Th>Severity</Table.Th>
                  <Table.Th>Status</Table.Th>
                  <Table.Th>Commander</Table.Th>
                  <Table.Th>Declared</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {items.map((incident) => (
                  <Table.Tr key={incident.number} data-number={incident.number}>
                    <Table.Td style={{ whiteSpace: 'nowrap' }} ff="monospace">
                      {incidentKey(incident.number)}
                    </Table.Td>
                    <Table.Td maw={420} className="break-anywhere">
                      <Anchor component={Link} to={`/incidents/${incident.number}`}>
                        {incident.title}
                      </Anchor>
                      {incident.tags.length || incident.category ? (
                        <Text size="xs" c="dimmed">
                          {[incident.category, ...incident.tags.map((tag) => `#${tag}`)].filter(Boolean).join(' · ')}
                        </Text>
                      ) : null}
                    </Table.Td>
                    <Table.Td>
                      <SeverityBadge severity={incident.severity} />
                    </Table.Td>
                    <Table.Td>
                      <IncidentStatusBadge status={incident.status} />
                    </Table.Td>
                    <Table.Td>{incident.commander ? displayName(incident.commander) : '—'}</Table.Td>
                    <Table.Td style={{ whiteSpace: 'nowrap' }}>{formatDateTime(incident.declared_at)}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
          {list.hasNextPage ? (
            <Group>
              <Button variant="default" onClick={() => void list.fetchNextPage()} loading={list.isFetchingNextPage}>
                Load more
              </Button>
            </Group>
          ) : null}
        </>
      )}
    </Stack>
  );
}
