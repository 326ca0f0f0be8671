import { Badge, type BadgeProps } from '@mantine/core';
import type { FollowUpStatus, IncidentStatus, Severity } from '../../api/incidents';

interface Look {
  label: string;
  color: string;
}

const STATUS: Record<IncidentStatus, Look> = {
  triage: { label: 'Triage', color: 'grape' },
  investigating: { label: 'Investigating', color: 'orange' },
  identified: { label: 'Identified', color: 'yellow' },
  monitoring: { label: 'Monitoring', color: 'blue' },
  resolved: { label: 'Resolved', color: 'green' },
  closed: { label: 'Closed', color: 'gray' },
};

const SEVERITY: Record<Severity, Look> = {
  SEV1: { label: 'SEV1 · critical', color: 'red' },
  SEV2: { label: 'SEV2 · major', color: 'orange' },
  SEV3: { label: 'SEV3 · minor', color: 'yellow' },
  SEV4: { label: 'SEV4 · low', color: 'gray' },
};

const FOLLOW_UP_STATUS: Record<FollowUpStatus, Look> = {
  open: { label: 'Open', color: 'gray' },
  in_progress: { label: 'In progress', color: 'blue' },
  done: { label: 'Done', color: 'green' },
};

/** A follow-up's states, in the order work moves through them. */
export const FOLLOW_UP_STATUSES: readonly FollowUpStatus[] = ['open', 'in_progress', 'done'];

export function followUpStatusLabel(status: FollowUpStatus): string {
  return FOLLOW_UP_STATUS[status].label;
}

export function statusLabel(status: IncidentStatus): string {
  return STATUS[status].label;
}

export function severityLabel(severity: Severity): string {
  return SEVERITY[severity].label;
}

type Rest = Omit<BadgeProps, 'color' | 'children'>;

/** An incident's status: the colour repeats what the text says, never replaces it. */
export function IncidentStatusBadge({ status, ...props }: { status: IncidentStatus } & Rest) {
  const { label, color } = STATUS[status];
  return (
    <Badge variant="light" color={color} data-status={status} {...props}>
      {label}
    </Badge>
  );
}

export function SeverityBadge({ severity, ...props }: { severity: Severity } & Rest) {
  const { label, color } = SEVERITY[severity];
  return (
    <Badge variant={severity === 'SEV1' ? 'filled' : 'light'} color={color} data-severity={severity} {...props}>
      {label}
    </Badge>
  );
}

export function FollowUpStatusBadge({ status, ...props }: { status: FollowUpStatus } & Rest) {
  const { label, color } = FOLLOW_UP_STATUS[status];
  return (
    <Badge variant="light" color={color} {...props}>
      {label}
    </Badge>
  );
}
