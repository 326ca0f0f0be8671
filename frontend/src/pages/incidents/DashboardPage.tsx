import { useState } from 'react';
import { Link } from 'react-router';
import { Anchor, Box, Card, Group, SimpleGrid, Skeleton, Stack, Table, Text, Title } from '@mantine/core';
import { useQueries, useQuery } from '@tanstack/react-query';
import {
  getStats,
  incidentsKeys,
  listFollowUps,
  OPEN_STATUSES,
  SEVERITIES,
  type IncidentStats,
} from '../../api/incidents';
import { usePageTitle } from '../../hooks/usePageTitle';
import { SeverityBadge } from './badges';
import { formatDuration, periods, startOfMinute } from './duration';
import { listPath } from './filters';

const WEEKS = 8;
const OVERDUE = { status: ['open' as const, 'in_progress' as const], overdue: true };
const shortDate = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });

function Bar({ value, max, label }: { value: number | null; max: number; label: string }) {
  const width = value && max ? Math.max(2, Math.round((value / max) * 100)) : 0;
  return (
    <Group gap={6} wrap="nowrap">
      <Box w={160} h={10} style={{ background: 'var(--mantine-color-default-border)', borderRadius: 4 }} aria-hidden="true">
        <Box h={10} w={`${width}%`} style={{ background: 'var(--mantine-color-blue-filled)', borderRadius: 4 }} />
      </Box>
      <Text size="sm">{label}</Text>
    </Group>
  );
}

/** Open incidents by severity, time to acknowledge and to resolve week by week, overdue follow-ups. */
export default function DashboardPage() {
  usePageTitle('Incident dashboard');
  // Fixed when the page opens, so the keys (and the cache) stay the same while it is shown;
  // ending at the minute, so openings within it ask what the server's stats cache holds.
  const [weeks] = useState(() => periods(startOfMinute(new Date()), WEEKS, 7));
  const current = weeks[weeks.length - 1]!;
  const results = useQueries({
    queries: weeks.map((week) => ({
      queryKey: incidentsKeys.stats(week.since, week.until),
      queryFn: () => getStats(week.since, week.until),
    })),
  });
  const now = results[results.length - 1]?.data;
  const overdue = useQuery({
    queryKey: incidentsKeys.followUps(OVERDUE),
    queryFn: () => listFollowUps(OVERDUE, null, 5),
  });
  const loaded = results.map((r) => r.data).filter((d): d is IncidentStats => d !== undefined);
  const maxMttr = Math.max(0, ...loaded.map((d) => d.mttr.p50_seconds ?? 0));
  const maxMtta = Math.max(0, ...loaded.map((d) => d.mtta.p50_seconds ?? 0));

  return (
    <Stack gap="lg">
      <div>
        <Title order={1}>Incident dashboard</Title>
        <Text c="dimmed" size="sm">
          Now, and the last {WEEKS} weeks.
        </Text>
        <Anchor component={Link} to="/incidents" size="sm">
          All incidents
        </Anchor>
      </div>
      <SimpleGrid cols={{ base: 1, md: 2 }} spacing="lg">
        <Card withBorder radius="md" padding="lg" component="section" aria-labelledby="open-title">
          <Title order={2} size="h4" id="open-title" mb="sm">
            Open incidents by severity
          </Title>
          {now ? (
            <Stack gap="xs" data-testid="open-by-severity">
              {SEVERITIES.map((severity) => (
                <Group key={severity} justify="space-between">
                  <SeverityBadge severity={severity} />
                  <Anchor component={Link} to={listPath({ severity: [severity], status: [...OPEN_STATUSES] })} size="sm">
                    {now.open_by_severity[severity] ?? 0} open
                  </Anchor>
                </Group>
              ))}
            </Stack>
          ) : (
            <Skeleton height={100} aria-label="Loading" />
          )}
        </Card>
        <Card withBorder radius="md" padding="lg" component="section" aria-labelledby="overdue-title">
          <Title order={2} size="h4" id="overdue-title" mb="sm">
            Follow-ups overdue
          </Title>
          {overdue.data ? (
            overdue.data.items.length === 0 ? (
              <Text size="sm">Nothing is overdue.</Text>
            ) : (
              <Stack gap={4} data-testid="overdue-follow-ups">
                {overdue.data.items.map((item) => (
                  <Text size="sm" key={item.id} className="break-anywhere">
                    <Anchor component={Link} to={`/incidents/${item.incident_number}`} size="sm" underline="always">
                      {item.incident_key}
                    </Anchor>{' '}
                    {item.title} · due {item.due_date}
                  </Text>
                ))}
              </Stack>
            )
          ) : (
            <Skeleton height={60} aria-label="Loading" />
          )}
          <Anchor component={Link} to="/incidents/follow-ups?view=overdue" size="sm" mt="sm" display="block">
            Every overdue follow-up
          </Anchor>
        </Card>
      </SimpleGrid>
      <section aria-labelledby="trend-title">
        <Title order={2} size="h4" id="trend-title" mb="xs">
          Time to acknowledge (MTTA) and to resolve (MTTR), week by week
        </Title>
        <Text size="sm" c="dimmed" mb="xs">
          Medians of the incidents declared each week; this week: {now?.mtta.count ?? 0} acknowledged, MTTA p90{' '}
          {formatDuration(now?.mtta.p90_seconds)}, MTTR p90 {formatDuration(now?.mttr.p90_seconds)}.
        </Text>
        <Table.ScrollContainer minWidth={640}>
          <Table verticalSpacing={6} aria-labelledby="trend-title" data-testid="mtt-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Week from</Table.Th>
                <Table.Th>Declared</Table.Th>
                <Table.Th>MTTA (median)</Table.Th>
                <Table.Th>MTTR (median)</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {weeks.map((week, index) => {
                const data = results[index]?.data;
                const declared = data?.created_per_day.reduce((sum, day) => sum + day.count, 0);
                return (
                  <Table.Tr key={week.since}>
                    <Table.Td style={{ whiteSpace: 'nowrap' }}>{shortDate.format(new Date(week.since))}</Table.Td>
                    <Table.Td>{declared ?? '…'}</Table.Td>
                    <Table.Td>
                      <Bar value={data?.mtta.p50_seconds ?? null} max={maxMtta} label={formatDuration(data?.mtta.p50_seconds)} />
                    </Table.Td>
                    <Table.Td>
                      <Bar value={data?.mttr.p50_seconds ?? null} max={maxMttr} label={formatDuration(data?.mttr.p50_seconds)} />
                    </Table.Td>
                  </Table.Tr>
                );
              })}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
        <Text size="xs" c="dimmed" mt={4}>
          Period {shortDate.format(new Date(weeks[0]!.since))} – {shortDate.format(new Date(current.until))}.
        </Text>
      </section>
    </Stack>
  );
}
