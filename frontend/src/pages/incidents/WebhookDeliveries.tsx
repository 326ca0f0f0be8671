import { Badge, Button, Group, Modal, Skeleton, Stack, Table, Text } from '@mantine/core';
import { useInfiniteQuery } from '@tanstack/react-query';
import { incidentsKeys, listWebhookDeliveries, type WebhookDelivery, type WebhookEndpoint } from '../../api/incidents';
import { FormError } from '../../components/FormError';
import { formatDateTime } from '../../components/format';

const STATUS: Record<WebhookDelivery['status'], { label: string; color: string }> = {
  pending: { label: 'Pending', color: 'yellow' },
  delivered: { label: 'Delivered', color: 'green' },
  failed: { label: 'Failed', color: 'red' },
};

/** What the receiver last answered, in words: "HTTP 503", the error, or nothing yet. */
export function lastAnswer(delivery: Pick<WebhookDelivery, 'last_status_code' | 'last_error' | 'attempts'>): string {
  const parts: string[] = [];
  if (delivery.last_status_code !== null) parts.push(`HTTP ${delivery.last_status_code}`);
  if (delivery.last_error) parts.push(delivery.last_error);
  if (parts.length) return parts.join(': ');
  return delivery.attempts ? 'No answer recorded' : 'Not tried yet';
}

function DeliveryTable({ endpoint }: { endpoint: WebhookEndpoint }) {
  const list = useInfiniteQuery({
    queryKey: incidentsKeys.deliveries(endpoint.id),
    queryFn: ({ pageParam }) => listWebhookDeliveries(endpoint.id, pageParam),
    initialPageParam: null as string | null,
    getNextPageParam: (last) => last.next_cursor,
  });
  const items = list.data?.pages.flatMap((page) => page.items) ?? [];

  if (list.isPending) return <Skeleton height={80} aria-label="Loading the deliveries" />;
  if (list.isError) return <FormError error={list.error} title="The deliveries could not be loaded" />;
  return (
    <Stack gap="sm">
      {items.length ? (
        <Table.ScrollContainer minWidth={720}>
          <Table verticalSpacing="xs" aria-label={`Deliveries to ${endpoint.url}`} data-testid="deliveries-table">
            <Table.Thead>
              <Table.Tr>
                <Table.Th>Time</Table.Th>
                <Table.Th>Event</Table.Th>
                <Table.Th>Status</Table.Th>
                <Table.Th>Attempts</Table.Th>
                <Table.Th>Last answer</Table.Th>
                <Table.Th>Delivered</Table.Th>
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((delivery) => (
                <Table.Tr key={delivery.id} data-testid="delivery">
                  <Table.Td style={{ whiteSpace: 'nowrap' }}>{formatDateTime(delivery.created_at)}</Table.Td>
                  <Table.Td ff="monospace">{delivery.event}</Table.Td>
                  <Table.Td>
                    <Badge variant="light" color={STATUS[delivery.status].color}>
                      {STATUS[delivery.status].label}
                    </Badge>
                  </Table.Td>
                  <Table.Td>{delivery.attempts}</Table.Td>
                  <Table.Td className="break-anywhere">{lastAnswer(delivery)}</Table.Td>
                  <Table.Td style={{ whiteSpace: 'nowrap' }}>{formatDateTime(delivery.delivered_at)}</Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      ) : (
        <Text size="sm" c="dimmed">
          Nothing was sent to it yet.
        </Text>
      )}
      <Group>
        {list.hasNextPage ? (
          <Button variant="default" size="xs" onClick={() => void list.fetchNextPage()} loading={list.isFetchingNextPage}>
            Load more
          </Button>
        ) : null}
        <Button variant="subtle" size="xs" onClick={() => void list.refetch()} loading={list.isRefetching && !list.isFetchingNextPage}>
          Refresh
        </Button>
      </Group>
    </Stack>
  );
}

/** The delivery history of one endpoint, newest first, in a dialog. */
export function WebhookDeliveriesDialog({ endpoint, onClose }: { endpoint: WebhookEndpoint | null; onClose: () => void }) {
  return (
    <Modal opened={endpoint !== null} onClose={onClose} title="Delivery history" size="xl">
      {endpoint ? (
        <Stack gap="sm">
          <Text size="sm" className="break-anywhere">
            Deliveries to <strong>{endpoint.url}</strong>, newest first.
          </Text>
          <DeliveryTable endpoint={endpoint} />
        </Stack>
      ) : null}
    </Modal>
  );
}
