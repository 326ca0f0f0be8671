import { Badge, type BadgeProps } from '@mantine/core';

const BATCH: Record<string, { label: string; color: string }> = {
  pending: { label: 'Pending', color: 'gray' },
  processing: { label: 'Processing', color: 'blue' },
  completed: { label: 'Completed', color: 'green' },
  completed_with_errors: { label: 'Completed with errors', color: 'orange' },
  failed: { label: 'Failed', color: 'red' },
  cancelled: { label: 'Cancelled', color: 'dark' },
};

const IMAGE: Record<string, { label: string; color: string }> = {
  pending: { label: 'Pending', color: 'gray' },
  processing: { label: 'Processing', color: 'blue' },
  succeeded: { label: 'Succeeded', color: 'green' },
  failed: { label: 'Failed', color: 'red' },
};

function fallback(status: string) {
  const words = status.replace(/_/g, ' ');
  return { label: words.charAt(0).toUpperCase() + words.slice(1), color: 'gray' };
}

export function batchStatusLabel(status: string): string {
  return (BATCH[status] ?? fallback(status)).label;
}

/** A batch's or an image's status as a coloured badge with a readable label. */
export function StatusBadge({
  status,
  kind = 'batch',
  ...props
}: { status: string; kind?: 'batch' | 'image' } & Omit<BadgeProps, 'color' | 'children'>) {
  const { label, color } = (kind === 'batch' ? BATCH : IMAGE)[status] ?? fallback(status);
  return (
    <Badge variant="light" color={color} data-status={status} {...props}>
      {label}
    </Badge>
  );
}
