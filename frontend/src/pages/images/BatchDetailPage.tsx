import { useId, useMemo, useState, type ReactNode } from 'react';
import { Link } from 'react-router';
import {
  Alert,
  Anchor,
  Button,
  Card,
  Code,
  Group,
  Loader,
  Modal,
  Pagination,
  SegmentedControl,
  SimpleGrid,
  Skeleton,
  Stack,
  Table,
  Text,
  Title,
} from '@mantine/core';
import { keepPreviousData, useQuery, useQueryClient } from '@tanstack/react-query';
import {
  cancelBatch,
  getBatch,
  imagesKeys,
  isActiveBatch,
  outputCsvPath,
  retryBatch,
  samePath,
} from '../../api/images';
import { type ApiError, toApiError } from '../../api/errors';
import { POLL_INTERVAL_MS } from '../../api/query';
import type { Batch, BatchImage, BatchProduct } from '../../api/types';
import { batchStatusLabel, StatusBadge } from './BatchStatusBadge';
import { useProgressAnnouncement } from '../../components/announcer';
import { formatBytes, formatDateTime, formatSaving } from '../../components/format';
import { useLiveTopic } from '../../live/useLiveTopic';
import { usePageTitle } from '../../hooks/usePageTitle';
import { BatchProgress } from './BatchProgress';

/** Products are read from the server a page at a time, live updates included. */
const PRODUCTS_PER_PAGE = 50;
/** Every refresh recounts the whole batch on the server; big ones are refreshed less often. */
const LARGE_BATCH_IMAGES = 2000;
const LARGE_BATCH_POLL_MS = 5000;

type Filter = 'all' | 'failed';

/** After the batch, until its webhook is delivered or given up on (retries last about an hour). */
const WEBHOOK_POLL_MS = 10_000;

function isLive(batch: Batch): boolean {
  return isActiveBatch(batch) || batch.webhook.status === 'pending';
}

function pollInterval(batch: Batch): number {
  if (!isActiveBatch(batch)) return WEBHOOK_POLL_MS;
  return batch.total_images > LARGE_BATCH_IMAGES ? LARGE_BATCH_POLL_MS : POLL_INTERVAL_MS;
}

const FORMAT_LABEL: Record<string, string> = {
  keep: 'same as input',
  jpeg: 'JPEG',
  png: 'PNG',
  webp: 'WebP',
  avif: 'AVIF',
};

function webhookState(batch: Batch): string {
  const { status, attempts } = batch.webhook;
  switch (status) {
    case 'none':
      return 'Not sent';
    case 'pending':
      if (isActiveBatch(batch)) return 'Sent when the batch finishes';
      return attempts === 0 ? 'Sending' : 'Retrying';
    case 'delivered':
      return 'Delivered';
    case 'failed':
      return 'Failed; no more attempts';
  }
}

function duration(from: string | null, to: string | null): string | null {
  if (!from || !to) return null;
  const seconds = Math.max(0, (new Date(to).getTime() - new Date(from).getTime()) / 1000);
  if (!Number.isFinite(seconds)) return null;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function operationsText(operations: Batch['operations']): string {
  const parts: string[] = [];
  const format = typeof operations.format === 'string' ? operations.format : 'keep';
  parts.push(`format ${FORMAT_LABEL[format] ?? format}`);
  if (typeof operations.quality === 'number') parts.push(`quality ${operations.quality}`);
  const width = typeof operations.max_width === 'number' ? operations.max_width : null;
  const height = typeof operations.max_height === 'number' ? operations.max_height : null;
  if (width || height) parts.push(`fit within ${width ?? 'any'} × ${height ?? 'any'} px`);
  if (operations.animated === true) parts.push('keep animation');
  return parts.join(', ');
}

function isWebUrl(url: string): boolean {
  return /^https?:\/\//i.test(url);
}

function Preview({ image, label }: { image: BatchImage; label: string }) {
  if (image.status === 'succeeded' && image.output_url) {
    const path = samePath(image.output_url);
    return (
      <a href={path} target="_blank" rel="noreferrer" aria-label={`Open the output of ${label}`}>
        <img src={path} alt={`Output of ${label}`} className="image-preview" loading="lazy" decoding="async" />
      </a>
    );
  }
  return (
    <div className="image-preview-empty" aria-hidden="true">
      {image.status === 'failed' ? '×' : '…'}
    </div>
  );
}

function ImageRow({ image }: { image: BatchImage }) {
  const label = image.input_name ?? image.input_url ?? `image ${image.position}`;
  const saving = formatSaving(image.bytes_in, image.bytes_out);
  return (
    <Table.Tr data-testid="image-row" data-status={image.status}>
      <Table.Td w={80}>
        <Preview image={image} label={label} />
      </Table.Td>
      <Table.Td>
        <Text size="xs" c="dimmed">
          #{image.position}
        </Text>
        {image.input_url && isWebUrl(image.input_url) ? (
          <Anchor
            href={image.input_url}
            target="_blank"
            rel="noopener noreferrer nofollow"
            size="sm"
            className="break-anywhere"
          >
            {image.input_url}
          </Anchor>
        ) : (
          <Text size="sm" className="break-anywhere">
            {label}
          </Text>
        )}
      </Table.Td>
      <Table.Td style={{ whiteSpace: 'nowrap' }}>
        <Text size="sm">
          {formatBytes(image.bytes_in)} → {formatBytes(image.bytes_out)}
        </Text>
        {saving ? (
          <Text size="xs" c={saving.includes('larger') ? 'orange' : 'green'}>
            {saving}
          </Text>
        ) : null}
      </Table.Td>
      <Table.Td style={{ whiteSpace: 'nowrap' }}>
        <Text size="sm">{image.width && image.height ? `${image.width} × ${image.height}` : '—'}</Text>
        {image.format ? (
          <Text size="xs" c="dimmed">
            {FORMAT_LABEL[image.format] ?? image.format.toUpperCase()}
          </Text>
        ) : null}
      </Table.Td>
      <Table.Td>
        <StatusBadge status={image.status} kind="image" />
        {image.error ? (
          <Text size="sm" c="red" mt={4} className="break-anywhere" data-testid="image-error">
            {image.error}
          </Text>
        ) : null}
      </Table.Td>
    </Table.Tr>
  );
}

function ProductCard({ product, images }: { product: BatchProduct; images: BatchImage[] }) {
  const headingId = useId();
  return (
    <Card withBorder padding="md" component="section" aria-labelledby={headingId} data-testid="product">
      <Title order={3} size="h5" id={headingId} mb="xs">
        <Text span c="dimmed" fw={500} ff="monospace">
          {product.serial_number}
        </Text>{' '}
        · {product.product_name || 'Unnamed product'}
      </Title>
      <Table.ScrollContainer minWidth={720}>
        <Table verticalSpacing="xs" aria-labelledby={headingId}>
          <Table.Thead>
            <Table.Tr>
              <Table.Th>Preview</Table.Th>
              <Table.Th>Input</Table.Th>
              <Table.Th>Size before → after</Table.Th>
              <Table.Th>Dimensions</Table.Th>
              <Table.Th>Status</Table.Th>
            </Table.Tr>
          </Table.Thead>
          <Table.Tbody>
            {images.map((image) => (
              <ImageRow key={image.position} image={image} />
            ))}
          </Table.Tbody>
        </Table>
      </Table.ScrollContainer>
    </Card>
  );
}

type PageState = 'shown' | 'loading' | 'failed';

function Products({
  batch,
  page,
  pageState,
  onPageChange,
  onRetry,
}: {
  batch: Batch;
  /** The page asked for (1-based); `batch` holds another one while it loads. */
  page: number;
  pageState: PageState;
  onPageChange: (page: number) => void;
  onRetry: () => void;
}) {
  const [filter, setFilter] = useState<Filter>('all');
  const total = batch.products_total;
  const pages = Math.max(1, Math.ceil(total / PRODUCTS_PER_PAGE));
  const paged = pages > 1;
  const shown = useMemo(
    () =>
      batch.products
        .map((product) => ({
          product,
          images: filter === 'failed' ? product.images.filter((i) => i.status === 'failed') : product.images,
        }))
        .filter((entry) => entry.images.length > 0),
    [batch.products, filter],
  );
  const first = batch.products_offset + 1;
  const last = batch.products_offset + batch.products.length;

  let empty = 'This batch has no images.';
  if (filter === 'failed') empty = paged ? 'No image on this page has failed.' : 'No image has failed.';
  else if (total > 0) empty = 'There are no products on this page.';

  return (
    <Stack gap="md" component="section" aria-labelledby="products-title">
      <Group justify="space-between" wrap="wrap">
        <div>
          <Title order={2} size="h4" id="products-title">
            Products ({total})
          </Title>
          {paged && batch.products.length > 0 ? (
            <Text size="sm" c="dimmed" aria-live="polite" data-testid="products-range">
              Showing {first}–{last} of {total}
            </Text>
          ) : null}
        </div>
        <SegmentedControl
          size="xs"
          value={filter}
          onChange={(value) => setFilter(value === 'failed' ? 'failed' : 'all')}
          data={[
            { value: 'all', label: 'All images' },
            { value: 'failed', label: `Failed only (${batch.failed_images})` },
          ]}
          aria-label={paged ? 'Which images of this page to show' : 'Which images to show'}
        />
      </Group>
      {pageState === 'failed' ? (
        <Alert color="yellow" variant="light" title={`Page ${page} could not be loaded`} role="status">
          <Group gap="sm">
            <Text size="sm">The products below are from page {Math.floor(batch.products_offset / PRODUCTS_PER_PAGE) + 1}.</Text>
            <Button size="xs" variant="light" onClick={onRetry}>
              Try again
            </Button>
          </Group>
        </Alert>
      ) : null}
      <Stack gap="md" aria-busy={pageState === 'loading'} data-testid="products" opacity={pageState === 'shown' ? 1 : 0.6}>
        {shown.length === 0 ? (
          <Text size="sm" c="dimmed">
            {empty}
          </Text>
        ) : (
          shown.map(({ product, images }) => (
            <ProductCard key={`${product.serial_number}`} product={product} images={images} />
          ))
        )}
      </Stack>
      {paged ? (
        <Group justify="center" component="nav" aria-label="Product pages">
          <Pagination
            total={pages}
            value={Math.min(page, pages)}
            onChange={onPageChange}
            getControlProps={(control) => ({ 'aria-label': `${control} page` })}
            getItemProps={(item) => ({ 'aria-label': `Page ${item}` })}
          />
        </Group>
      ) : null}
    </Stack>
  );
}

function Field({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div>
      <Text size="xs" c="dimmed" tt="uppercase" fw={700}>
        {label}
      </Text>
      <div>{children}</div>
    </div>
  );
}

function Summary({ batch }: { batch: Batch }) {
  const pending = Math.max(0, batch.total_images - batch.processed_images);
  const succeeded = Math.max(0, batch.processed_images - batch.failed_images);
  const took = duration(batch.started_at, batch.finished_at);
  const webhook = batch.webhook;
  return (
    <Card withBorder padding="lg" component="section" aria-labelledby="summary-title">
      <Stack gap="md">
        <Group justify="space-between" wrap="wrap">
          <Title order={2} size="h4" id="summary-title">
            Summary
          </Title>
          <StatusBadge status={batch.status} size="lg" data-testid="batch-status" />
        </Group>
        <BatchProgress batch={batch} size="lg" label="Batch progress" />
        <SimpleGrid cols={{ base: 2, sm: 4 }} spacing="md">
          <Field label="Images">
            <Text fw={600}>{batch.total_images}</Text>
          </Field>
          <Field label="Succeeded">
            <Text fw={600} c="green" data-testid="count-succeeded">
              {succeeded}
            </Text>
          </Field>
          <Field label="Failed">
            <Text fw={600} c={batch.failed_images > 0 ? 'red' : undefined} data-testid="count-failed">
              {batch.failed_images}
            </Text>
          </Field>
          <Field label="Waiting">
            <Text fw={600}>{pending}</Text>
          </Field>
        </SimpleGrid>
        <SimpleGrid cols={{ base: 1, sm: 3 }} spacing="md">
          <Field label="Created">
            <Text size="sm">{formatDateTime(batch.created_at)}</Text>
          </Field>
          <Field label="Started">
            <Text size="sm">{formatDateTime(batch.started_at, 'Not yet')}</Text>
          </Field>
          <Field label="Finished">
            <Text size="sm">
              {formatDateTime(batch.finished_at, 'Not yet')}
              {took ? ` (took ${took})` : ''}
            </Text>
          </Field>
        </SimpleGrid>
        <SimpleGrid cols={{ base: 1, sm: 2 }} spacing="md">
          <Field label="Source">
            <Text size="sm">{batch.source === 'upload' ? 'Uploaded files' : 'CSV of image URLs'}</Text>
          </Field>
          <Field label="Operations">
            <Text size="sm">{operationsText(batch.operations)}</Text>
          </Field>
        </SimpleGrid>
        <Field label="Webhook">
          {webhook.url ? (
            <Stack gap={2} data-testid="webhook">
              <Text size="sm" className="break-anywhere" ff="monospace">
                {webhook.url}
              </Text>
              <Text size="sm">
                {webhookState(batch)} · {webhook.attempts} attempt{webhook.attempts === 1 ? '' : 's'}
              </Text>
              {webhook.last_error ? (
                <Text size="sm" c="red" className="break-anywhere">
                  Last error: {webhook.last_error}
                </Text>
              ) : null}
            </Stack>
          ) : (
            <Text size="sm" c="dimmed">
              None
            </Text>
          )}
        </Field>
      </Stack>
    </Card>
  );
}

export default function BatchDetailPage({ requestId }: { requestId: string }) {
  usePageTitle(`Batch ${requestId}`);
  // Component state, not derived from the answer: live refreshes never move the reader.
  const [page, setPage] = useState(1);
  const offset = (page - 1) * PRODUCTS_PER_PAGE;
  const products = { offset, limit: PRODUCTS_PER_PAGE };
  const queryClient = useQueryClient();
  // Pushed over the socket while it is up; polled only while it is not.
  const pushed = useLiveTopic(`images:batch:${requestId}`, () => {
    void queryClient.invalidateQueries({ queryKey: imagesKeys.batch(requestId) });
    void queryClient.invalidateQueries({ queryKey: imagesKeys.batches() });
  });
  // Every load and live refresh reads the current page only, however big the batch.
  const query = useQuery({
    queryKey: imagesKeys.batchPage(requestId, products),
    queryFn: () => getBatch(requestId, products),
    placeholderData: keepPreviousData,
    refetchInterval: ({ state: { data } }) => (!pushed && data && isLive(data) ? pollInterval(data) : false),
  });
  // A page that fails to load leaves the last one shown on screen, with a note.
  const [shown, setShown] = useState<Batch>();
  if (query.data && query.data !== shown) setShown(query.data);
  const batch = query.data ?? shown;
  const refreshError = query.isRefetchError ? query.error : null;
  const [confirming, setConfirming] = useState(false);
  const [acting, setActing] = useState<'retry' | 'cancel' | null>(null);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  // Screen readers hear status changes and every 10 %, not every poll.
  const announcement = useProgressAnnouncement(
    batch
      ? {
          status: batchStatusLabel(batch.status),
          done: batch.processed_images,
          total: batch.total_images,
          failed: batch.failed_images,
        }
      : undefined,
  );
  const liveRegion = (
    <div role="status" aria-live="polite" aria-atomic="true" className="visually-hidden" data-testid="batch-announcer">
      {announcement}
    </div>
  );

  function changePage(next: number) {
    setPage(next);
    // The pager sits below the list: bring the new page's start into view.
    document.getElementById('products-title')?.scrollIntoView?.({ block: 'start' });
  }

  async function act(kind: 'retry' | 'cancel') {
    setActing(kind);
    setActionError(null);
    setNotice(null);
    try {
      if (kind === 'retry') {
        const result = await retryBatch(requestId);
        setNotice(
          result.retried_images === 0
            ? 'No failed images to retry.'
            : `${result.retried_images} failed image${result.retried_images === 1 ? '' : 's'} queued again.`,
        );
      } else {
        await cancelBatch(requestId);
        setNotice('The batch was cancelled.');
      }
    } catch (error) {
      setActionError(toApiError(error));
    } finally {
      setActing(null);
      setConfirming(false);
      await queryClient.invalidateQueries({ queryKey: imagesKeys.batch(requestId) });
      void queryClient.invalidateQueries({ queryKey: imagesKeys.batches() });
    }
  }

  const header = (
    <div>
      <Anchor component={Link} to="/images" size="sm">
        ← All batches
      </Anchor>
      <Title order={1} mt={4}>
        Batch <Code fz="inherit">{requestId}</Code>
      </Title>
    </div>
  );

  if (!batch) {
    return (
      <Stack gap="lg">
        {header}
        {liveRegion}
        {query.isPending ? (
          <Stack gap="xs" aria-busy="true" aria-label="Loading the batch">
            <Skeleton height={120} />
            <Skeleton height={240} />
          </Stack>
        ) : query.error?.status === 404 ? (
          <Alert color="yellow" variant="light" title="No such batch">
            There is no batch {requestId}, or it belongs to someone else.
          </Alert>
        ) : (
          <Text c="dimmed">The batch could not be loaded.</Text>
        )}
      </Stack>
    );
  }

  const active = isActiveBatch(batch);
  const canRetry = batch.failed_images > 0 && batch.status !== 'cancelled';

  return (
    <Stack gap="lg">
      {header}
      {liveRegion}
      <Group gap="sm" wrap="wrap">
        <Button component="a" href={outputCsvPath(batch)} download variant="default">
          Download output CSV
        </Button>
        {canRetry ? (
          <Button
            variant="light"
            onClick={() => void act('retry')}
            loading={acting === 'retry'}
            disabled={acting !== null}
          >
            Retry failed images ({batch.failed_images})
          </Button>
        ) : null}
        {active ? (
          <Button color="red" variant="light" onClick={() => setConfirming(true)} disabled={acting !== null}>
            Cancel batch
          </Button>
        ) : null}
        {active ? (
          <Group gap={6} ml="auto">
            <Loader size="xs" type="dots" aria-hidden="true" />
            <Text size="sm" c="dimmed">
              Updating live
            </Text>
          </Group>
        ) : null}
      </Group>

      {notice ? (
        <Alert
          color="green"
          variant="light"
          role="status"
          withCloseButton
          closeButtonLabel="Dismiss"
          onClose={() => setNotice(null)}
        >
          {notice}
        </Alert>
      ) : null}
      {actionError ? (
        <Alert color="red" variant="light" role="alert" title="The action failed" data-testid="action-error">
          {actionError.message}
        </Alert>
      ) : null}
      {refreshError ? (
        <Alert color="yellow" variant="light" title="Live updates interrupted" role="status">
          {refreshError.message} Trying again shortly.
        </Alert>
      ) : null}

      <Summary batch={batch} />
      <Products
        batch={batch}
        page={page}
        pageState={batch.products_offset === offset ? 'shown' : query.isFetching ? 'loading' : 'failed'}
        onPageChange={changePage}
        onRetry={() => void query.refetch()}
      />

      <Modal
        opened={confirming}
        onClose={() => (acting ? undefined : setConfirming(false))}
        title="Cancel this batch?"
        centered
      >
        <Stack gap="md">
          <Text size="sm">
            Images not processed yet will be skipped. Images already processed keep their outputs,
            and no webhook is sent. A cancelled batch cannot be resumed.
          </Text>
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setConfirming(false)} disabled={acting !== null}>
              Keep processing
            </Button>
            <Button color="red" onClick={() => void act('cancel')} loading={acting === 'cancel'}>
              Cancel batch
            </Button>
          </Group>
        </Stack>
      </Modal>
    </Stack>
  );
}
