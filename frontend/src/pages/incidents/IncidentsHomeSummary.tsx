import { Link } from 'react-router';
import { Anchor, Group, Text } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { incidentsKeys, listIncidents, NO_FILTERS, OPEN_STATUSES, SEVERITIES } from '../../api/incidents';
import { SeverityBadge } from './badges';
import { listPath } from './filters';

const SAMPLE = 100;
const OPEN = { ...NO_FILTERS, status: [...OPEN_STATUSES] };

/**
 * The Incidents card's line on Home: how many incidents are open and the worst severity among
 * them. One request (the open list's first page); a failure just leaves the line out.
 */
export function IncidentsHomeSummary() {
  const { data: page } = useQuery({
    queryKey: incidentsKeys.openCount(),
    queryFn: () => listIncidents(OPEN, null, SAMPLE),
    meta: { quiet: true },
  });
  if (!page) return null;
  if (page.items.length === 0) {
    return (
      <Text size="sm" mt="xs" data-testid="incidents-summary">
        No open incidents.
      </Text>
    );
  }
  const worst = SEVERITIES.find((severity) => page.items.some((item) => item.severity === severity));
  const count = `${page.items.length}${page.next_cursor ? '+' : ''}`;
  return (
    <Group gap={6} mt="xs" data-testid="incidents-summary">
      <Text size="sm">
        <Anchor component={Link} to={listPath(OPEN)} size="sm" underline="always">
          {count} open incident{page.items.length === 1 && !page.next_cursor ? '' : 's'}
        </Anchor>
        {worst ? ' · worst:' : ''}
      </Text>
      {worst ? <SeverityBadge severity={worst} size="sm" /> : null}
    </Group>
  );
}
