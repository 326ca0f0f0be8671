import { Link } from 'react-router';
import {
  Alert,
  Anchor,
  Button,
  Group,
  Loader,
  Skeleton,
  Stack,
  Table,
  Text,
  Title,
} from '@mantine/core';
import { useState } from 'react';
import { type InfiniteData, useInfiniteQuery, useQueryClient } from '@tanstack/react-query';
import { useLiveTopics } from '../../live/useLiveTopic';
import { imagesKeys, isActiveBatch, listBatches } from '../../api/images';
import { POLL_INTERVAL_MS } from '../../api/query';
import type { BatchPage, BatchSummary } from '../../api/types';
import { StatusBadge } from './BatchStatusBadge';
import { formatDateTime } from '../../components/format';
import { usePageTitle } from '../../hooks/usePageTitle';
import { BatchProgress } from './BatchProgress';

const SOURCE_LABEL: Record<string, string> = { csv: 'CSV', upload: 'Upload' };

function anyActive(data: InfiniteData<BatchPage> | undefined): boolean {
  return data?.pages.some((page) => page.items.some(isActiveBatch)) ?? false;
}

/** The pages in order; a batch that moved to a later page while they loaded is shown once. */
function flatten(data: InfiniteData<BatchPage> | undefined): BatchSummary[] {
  const seen = new Set<string>();
  const items: BatchSummary[] = [];
  for (const batch of data?.pages.flatMap((page) => page.items) ?? []) {
    if (seen.has(batch.request_id)) continue;
    seen.add(batch.request_id);
    items.push(batch);
  }
  return items;
}

export default function BatchListPage() {
  usePageTitle('Images');
  const queryClient = useQueryClient();
  // The batches in progress are pushed over the socket; polled only while it is down.
  const [activeIds, setActiveIds] = useState<string[]>([]);
  const pushed = useLiveTopics(
    activeIds.map((id) => `images:batch:${id}`),
    () => void queryClient.invalidateQueries({ queryKey: imagesKeys.batches() }),
  );
  // A live refresh reads every page on screen again, each from the fresh cursor before it.
  const list = useInfiniteQuery({
    queryKey: imagesKeys.batches(),
    queryFn: ({ pageParam }) => listBatches(pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
    refetchInterval: (query) => (!pushed && anyActive(query.state.data) ? POLL_INTERVAL_MS : false),
  });
  const active = flatten(list.data)
    .filter(isActiveBatch)
    .map((batch) => batch.request_id);
  if (active.join() !== activeIds.join()) setActiveIds(active);
  const items = flatten(list.data);
  const live = anyActive(list.data);
  const refreshError = list.isRefetchError ? list.error : null;

  return (
    <Stack gap="lg">
      <Group justify="space-between" align="flex-end" wrap="wrap">
        <div>
          <Title order={1}>Images</Title>
          <Text c="dimmed" size="sm">
            Batches of image URLs and uploads, processed by background workers. Newest first.
          </Text>
        </div>
        <Button component={Link} to="/images/new">
          New batch
        </Button>
      </Group>

      {refreshError ? (
        <Alert color="yellow" variant="light" title="Live updates interrupted" role="status">
          {refreshError.message} Trying again shortly.
        </Alert>
      ) : null}

      {list.isPending ? (
        <Stack gap="xs" aria-busy="true" aria-label="Loading batches">
          <Skeleton height={36} />
          <Skeleton height={36} />
          <Skeleton height={36} />
        </Stack>
      ) : list.data && items.length === 0 ? (
        <Alert variant="light" color="blue" title="No batches yet">
          Upload a CSV of product image URLs or a set of image files to start one.{' '}
          <Anchor component={Link} to="/images/new">
            Start a batch
          </Anchor>
          .
        </Alert>
      ) : list.data ? (
        <>
          <Group gap="xs">
            {live ? <Loader size="xs" type="dots" aria-hidden="true" /> : null}
            <Text size="sm" c="dimmed" data-testid="list-status">
              {items.length} batch{items.length === 1 ? '' : 'es'} shown
              {live ? ' · updating live' : ''}
            </Text>
          </Group>
          <Table.ScrollContainer minWidth={760}>
            <Table verticalSpacing="sm" aria-label="Image batches" data-testid="batches-table">
              <Table.Thead>
                <Table.Tr>
                  <Table.Th>Request id</Table.Th>
                  <Table.Th>Source</Table.Th>
                  <Table.Th>Status</Table.Th>
                  <Table.Th>Progress</Table.Th>
                  <Table.Th>Created</Table.Th>
                </Table.Tr>
              </Table.Thead>
              <Table.Tbody>
                {items.map((batch) => (
                  <Table.Tr key={batch.request_id} data-request-id={batch.request_id}>
                    <Table.Td>
                      <Anchor
                        component={Link}
                        to={`/images/batches/${encodeURIComponent(batch.request_id)}`}
                        ff="monospace"
                        size="sm"
                        aria-label={`Batch ${batch.request_id}`}
                      >
                        {batch.request_id}
                      </Anchor>
                    </Table.Td>
                    <Table.Td>{SOURCE_LABEL[batch.source] ?? batch.source}</Table.Td>
                    <Table.Td>
                      <StatusBadge status={batch.status} />
                    </Table.Td>
                    <Table.Td w={240}>
                      <BatchProgress batch={batch} size="sm" label={`Progress of batch ${batch.request_id}`} />
                    </Table.Td>
                    <Table.Td style={{ whiteSpace: 'nowrap' }}>{formatDateTime(batch.created_at)}</Table.Td>
                  </Table.Tr>
                ))}
              </Table.Tbody>
            </Table>
          </Table.ScrollContainer>
          {list.hasNextPage ? (
            <Group>
              <Button
                variant="default"
                onClick={() => void list.fetchNextPage()}
                loading={list.isFetchingNextPage}
              >
                Load more
              </Button>
            </Group>
          ) : null}
        </>
      ) : null}
    </Stack>
  );
}
