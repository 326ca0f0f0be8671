import { Group, Progress, Stack, Text } from '@mantine/core';
import { useReducedMotion } from '@mantine/hooks';
import type { BatchSummary } from '../../api/types';

type Counts = Pick<BatchSummary, 'total_images' | 'processed_images' | 'failed_images' | 'status'>;

function percent(part: number, total: number): number {
  return total > 0 ? Math.min(100, (part / total) * 100) : 0;
}

/** Processed / total as a bar (succeeded green, failed red) and in words. */
export function BatchProgress({
  batch,
  size = 'md',
  label = 'Progress',
}: {
  batch: Counts;
  size?: 'sm' | 'md' | 'lg';
  label?: string;
}) {
  const total = batch.total_images;
  const failed = batch.failed_images;
  const succeeded = Math.max(0, batch.processed_images - failed);
  // Stripes that move only while work goes on, and never under prefers-reduced-motion.
  const reduceMotion = useReducedMotion();
  const active = (batch.status === 'pending' || batch.status === 'processing') && !reduceMotion;
  return (
    <Stack gap={4} miw={160}>
      <div
        role="progressbar"
        aria-label={label}
        aria-valuemin={0}
        aria-valuemax={total}
        aria-valuenow={batch.processed_images}
        aria-valuetext={`${batch.processed_images} of ${total} processed${failed > 0 ? `, ${failed} failed` : ''}`}
      >
        <Progress.Root size={size} aria-hidden="true">
          <Progress.Section value={percent(succeeded, total)} color="green" animated={active} />
          <Progress.Section value={percent(failed, total)} color="red" />
        </Progress.Root>
      </div>
      <Group gap={6} wrap="nowrap">
        <Text size="xs" data-testid="batch-progress-text">
          {batch.processed_images} / {total} processed
          {failed > 0 ? (
            <Text span size="xs" c="red">
              {' '}
              · {failed} failed
            </Text>
          ) : null}
        </Text>
      </Group>
    </Stack>
  );
}
