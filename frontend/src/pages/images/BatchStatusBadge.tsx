import { Badge, type BadgeProps } from '@mantine/core';
import type { BatchStatus, ImageStatus } from '../../api/types';

interface Look {
  label: string;
  color: string;
}

const BATCH: Record<BatchStatus, Look> = {
  pending: { label: 'Pending', color: 'gray' },
  processing: { label: 'Processing', color: 'blue' },
  completed: { label: 'Completed', color: 'green' },
  completed_with_errors: { label: 'Completed with errors', color: 'orange' },
  failed: { label: 'Failed', color: 'red' },
  cancelled: { label: 'Cancelled', color: 'dark' },
};

const IMAGE: Record<ImageStatus, Look> = {
  pending: { label: 'Pending', color: 'gray' },
  processing: { label: 'Processing', color: 'blue' },
  succeeded: { label: 'Succeeded', color: 'green' },
  failed: { label: 'Failed', color: 'red' },
};

export function batchStatusLabel(status: BatchStatus): string {
  return BATCH[status].label;
}

type StatusProps = { kind?: 'batch'; status: BatchStatus } | { kind: 'image'; status: ImageStatus };

/** A batch's or an image's status as a coloured badge with a readable label. */
export function StatusBadge({ status, kind, ...props }: StatusProps & Omit<BadgeProps, 'color' | 'children'>) {
  const { label, color } = kind === 'image' ? IMAGE[status] : BATCH[status];
  return (
    <Badge variant="light" color={color} data-status={status} {...props}>
      {label}
    </Badge>
  );
}
