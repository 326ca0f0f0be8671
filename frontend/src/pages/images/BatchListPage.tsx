import { useRef, useState } from 'react';
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
import { isActiveBatch, listBatches, listNewest, PAGE_SIZE } from '../../api/images';
import { toApiError } from '../../api/errors';
import type { BatchPage } from '../../api/types';
import { StatusBadge } from '../../components/BatchStatusBadge';
import { formatDateTime } from '../../components/format';
import { errorStore } from '../../errors/errorStore';
import { useLiveQuery } from '../../hooks/useLiveQuery';
import { usePageTitle } from '../../hooks/usePageTitle';
import { BatchProgress } from './BatchProgress';

const SOURCE_LABEL: Record<string, string> = { csv: 'CSV', upload: 'Upload' };

function anyActive(page: BatchPage): boolean {
  return page.items.some(isActiveBatch);
}

export default function BatchListPage() {
  usePageTitle('Images');
  // How many batches are on screen, so a live refresh reloads all of them (and no more).
  const shown = useRef(PAGE_SIZE);
  const list = useLiveQuery(() => listNewest(shown.current), [], anyActive);
  const [loadingMore, setLoadingMore] = useState(false);
  const items = list.data?.items ?? [];
  const nextCursor = list.data?.next_cursor ?? null;
  const live = list.data !== undefined && anyActive(list.data);

  async function loadMore() {
    if (!nextCursor) return;
    setLoadingMore(true);
    try {
      const page = await listBatches(nextCursor);
      list.update((current) => {
        const before = current?.items ?? [];
        const seen = new Set(before.map((b) => b.request_id));
        const merged = [...before, ...page.items.filter((b) => !seen.has(b.request_id))];
        shown.current = Math.max(PAGE_SIZE, merged.length);
        return { items: merged, next_cursor: page.next_cursor };
      });
    } catch (error) {
      errorStore.report(toApiError(error));
    } finally {
      setLoadingMore(false);
    }
  }

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

      {list.refreshError ? (
        <Alert color="yellow" variant="light" title="Live updates interrupted" role="status">
          {list.refreshError.message} Trying again shortly.
        </Alert>
      ) : null}

      {list.loading && !list.data ? (
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
          {nextCursor ? (
            <Group>
              <Button variant="default" onClick={() => void loadMore()} loading={loadingMore}>
                Load more
              </Button>
            </Group>
          ) : null}
        </>
      ) : null}
    </Stack>
  );
}
