import { useEffect, useState } from 'react';
import { Group, Text } from '@mantine/core';
import { listBatches } from '../../api/images';
import type { BatchPage } from '../../api/types';
import { StatusBadge } from '../../components/BatchStatusBadge';

const RECENT = 20;

/**
 * The Images card's line on Home: how many batches the user has lately and how the latest went.
 * One small request; a failure just leaves the line out (Home has its own health card).
 */
export function ImagesHomeSummary() {
  const [page, setPage] = useState<BatchPage | null>(null);

  useEffect(() => {
    let live = true;
    listBatches(null, RECENT).then(
      (value) => live && setPage(value),
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, []);

  if (!page) return null;
  const latest = page.items[0];
  if (!latest) {
    return (
      <Text size="sm" mt="xs" data-testid="images-summary">
        No batches yet.
      </Text>
    );
  }
  const count = `${page.items.length}${page.next_cursor ? '+' : ''}`;
  return (
    <Group gap={6} mt="xs" data-testid="images-summary">
      <Text size="sm">
        {count} recent batch{page.items.length === 1 && !page.next_cursor ? '' : 'es'} · latest:
      </Text>
      <StatusBadge status={latest.status} size="sm" />
      <Text size="sm" c="dimmed">
        {latest.processed_images} of {latest.total_images} images
      </Text>
    </Group>
  );
}
