import { Group, Text } from '@mantine/core';
import { useQuery } from '@tanstack/react-query';
import { imagesKeys, listBatches } from '../../api/images';
import { StatusBadge } from './BatchStatusBadge';

const RECENT = 20;

/**
 * The Images card's line on Home: how many batches the user has lately and how the latest went.
 * One small request; a failure just leaves the line out (Home has its own health card).
 */
export function ImagesHomeSummary() {
  const { data: page } = useQuery({
    queryKey: imagesKeys.recent(RECENT),
    queryFn: () => listBatches(null, RECENT),
    // Not worth the global error banner: the line is simply left out.
    meta: { quiet: true },
  });

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
