import { useState, type FormEvent } from 'react';
import {
  Alert,
  Button,
  Code,
  Group,
  Loader,
  Stack,
  Table,
  Text,
  TextInput,
  Title,
} from '@mantine/core';
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { type AuditFilters, auditKeys, listAudit, verifyAudit } from '../../api/audit';
import type { AuditEntry } from '../../api/types';
import { formatDateTime } from '../../components/format';
import { usePageTitle } from '../../hooks/usePageTitle';

interface Filters {
  actor: string;
  action: string;
  since: string;
  until: string;
}

const EMPTY: Filters = { actor: '', action: '', since: '', until: '' };

/** A `YYYY-MM-DD` from a date input, as the start or end of that day in local time. */
export function dayBoundary(day: string, end: boolean): string | undefined {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) return undefined;
  const date = new Date(`${day}T${end ? '23:59:59.999' : '00:00:00.000'}`);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

function ChainStatusBanner() {
  const status = useQuery({ queryKey: auditKeys.chain(), queryFn: verifyAudit });
  const data = status.data;
  const checking = status.isFetching;
  return (
    <Alert
      variant="light"
      color={!data ? 'gray' : data.ok ? 'green' : 'red'}
      title={!data ? 'Checking the audit chain…' : data.ok ? 'Audit chain intact' : 'Audit chain broken'}
      data-testid="chain-status"
      role="status"
    >
      <Group justify="space-between" wrap="wrap" gap="xs">
        <Text size="sm">
          {!data
            ? checking
              ? 'Verifying every entry’s hash.'
              : 'The chain could not be verified.'
            : data.ok
              ? `${data.checked} entries verified; none has been changed or removed.`
              : `Entry ${data.first_broken_id ?? '?'} does not match its hash: ${data.reason ?? 'unknown reason'}. ${data.checked} entries before it verified.`}
        </Text>
        <Button size="xs" variant="default" onClick={() => void status.refetch()} loading={checking}>
          Verify again
        </Button>
      </Group>
    </Alert>
  );
}

function target(entry: AuditEntry): string {
  if (!entry.target_type) return '—';
  return entry.target_id ? `${entry.target_type} ${entry.target_id}` : entry.target_type;
}

function detailsText(entry: AuditEntry): string {
  const keys = Object.keys(entry.details);
  return keys.length === 0 ? '' : JSON.stringify(entry.details);
}

export default function AdminAuditPage() {
  usePageTitle('Audit log');
  const [draft, setDraft] = useState<Filters>(EMPTY);
  const [filters, setFilters] = useState<Filters>(EMPTY);
  // Cursors of the pages before this one, newest first; the last is this page's.
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const cursor = cursors[cursors.length - 1] ?? null;
  const query: AuditFilters = {
    actor: filters.actor.trim() || undefined,
    action: filters.action.trim() || undefined,
    since: dayBoundary(filters.since, false),
    until: dayBoundary(filters.until, true),
  };

  const page = useQuery({
    queryKey: auditKeys.page(query, cursor),
    queryFn: () => listAudit(query, cursor),
    // The page on screen stays while the next one loads.
    placeholderData: keepPreviousData,
  });
  const loading = page.isPending || page.isPlaceholderData;

  function apply(event: FormEvent) {
    event.preventDefault();
    setFilters(draft);
    setCursors([null]);
  }

  function reset() {
    setDraft(EMPTY);
    setFilters(EMPTY);
    setCursors([null]);
  }

  const items = page.data?.items ?? [];
  const next = page.isPlaceholderData ? null : (page.data?.next_cursor ?? null);

  return (
    <Stack gap="md">
      <Title order={1}>Audit log</Title>
      <ChainStatusBanner />
      <form onSubmit={apply} aria-label="Filter the audit log">
        <Group align="flex-end" wrap="wrap" role="search">
          <TextInput
            label="Actor"
            description="Username"
            value={draft.actor}
            onChange={(e) => {
              const actor = e.currentTarget.value;
              setDraft((d) => ({ ...d, actor }));
            }}
            w={180}
          />
          <TextInput
            label="Action"
            description="Prefix, e.g. auth."
            value={draft.action}
            onChange={(e) => {
              const action = e.currentTarget.value;
              setDraft((d) => ({ ...d, action }));
            }}
            w={180}
          />
          <TextInput
            label="From"
            description="Day (local time)"
            type="date"
            value={draft.since}
            onChange={(e) => {
              const since = e.currentTarget.value;
              setDraft((d) => ({ ...d, since }));
            }}
          />
          <TextInput
            label="Until"
            description="Day (local time)"
            type="date"
            value={draft.until}
            onChange={(e) => {
              const until = e.currentTarget.value;
              setDraft((d) => ({ ...d, until }));
            }}
          />
          <Button type="submit">Apply filters</Button>
          <Button variant="default" onClick={reset}>
            Clear
          </Button>
        </Group>
      </form>
      <Group gap="xs" aria-live="polite">
        {loading ? <Loader size="xs" aria-label="Loading entries" /> : null}
        <Text size="sm" c="dimmed">
          {loading
            ? 'Loading entries…'
            : `${items.length} entr${items.length === 1 ? 'y' : 'ies'} on this page${cursors.length > 1 ? ` (page ${cursors.length})` : ''}`}
        </Text>
      </Group>
      <Table.ScrollContainer minWidth={900}>
        <Table striped verticalSpacing="xs" aria-label="Audit entries" data-testid="audit-table">
          <Table.Thead>
            <Table.Tr>
              <Table.Th>#</Table.Th>
              <Table.Th>Time</Table.Th>
              <Table.Th>Actor</Table.Th>
              <Table.Th>Action</Table.Th>
              <Table.Th>Target</Table.Th>
              <Table.Th>IP</Table.Th>
              <Table.Th>Details</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {items.map((entry) => (
              <Table.Tr key={entry.id}>
                <Table.Td>{entry.id}</Table.Td>
                <Table.Td style={{ whiteSpace: 'nowrap' }}>{formatDateTime(entry.created_at)}</Table.Td>
                <Table.Td>{entry.actor ?? '—'}</Table.Td>
                <Table.Td>
                  <Code>{entry.action}</Code>
                </Table.Td>
                <Table.Td>{target(entry)}</Table.Td>
                <Table.Td>{entry.ip ?? '—'}</Table.Td>
                <Table.Td maw={360}>
                  <Text size="xs" ff="monospace" style={{ wordBreak: 'break-word' }}>
                    {detailsText(entry)}
                  </Text>
                </Table.Td>
              </Table.Tr>
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
      {!loading && items.length === 0 ? (
        <Text size="sm" c="dimmed">
          No entries match.
        </Text>
      ) : null}
      <Group>
        <Button
          variant="default"
          disabled={cursors.length <= 1 || loading}
          onClick={() => setCursors((c) => c.slice(0, -1))}
        >
          Newer entries
        </Button>
        <Button
          variant="default"
          disabled={next === null || loading}
          onClick={() => next !== null && setCursors((c) => [...c, next])}
        >
          Older entries
        </Button>
      </Group>
    </Stack>
  );
}
