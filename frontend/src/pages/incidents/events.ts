import type { IncidentStatus, Severity, TimelineEvent } from '../../api/incidents';
import { severityLabel, statusLabel } from './badges';
import { SEVERITIES, STATUSES } from '../../api/incidents';

function status(value: string | null): string {
  return value && (STATUSES as readonly string[]).includes(value) ? statusLabel(value as IncidentStatus) : (value ?? '—');
}

function severity(value: string | null): string {
  return value && (SEVERITIES as readonly string[]).includes(value) ? severityLabel(value as Severity) : (value ?? '—');
}

function quoted(value: string | null): string {
  return value ? `“${value}”` : 'nothing';
}

/**
 * What a timeline event says, as plain text (the actor's name is shown before it). Values come
 * from users (titles, tag names), so this is text for React to escape, never HTML.
 */
export function describeEvent(event: Pick<TimelineEvent, 'kind' | 'old_value' | 'new_value' | 'data'>): string {
  const { old_value: old, new_value: value } = event;
  const field = typeof event.data.field === 'string' ? event.data.field : null;
  switch (event.kind) {
    case 'declared':
      return `declared the incident (${severity(value)})`;
    case 'status_changed':
      return `moved it from ${status(old)} to ${status(value)}`;
    case 'severity_changed':
      return `changed the severity from ${severity(old)} to ${severity(value)}`;
    case 'field_changed':
      if (field === 'description') return 'edited the description';
      return `changed the ${field ?? 'details'} from ${quoted(old)} to ${quoted(value)}`;
    case 'commander_changed':
      return value ? `made ${value} the commander` : `removed the commander (${old ?? '—'})`;
    case 'assignee_added':
      return `assigned ${value ?? 'somebody'}`;
    case 'assignee_removed':
      return `unassigned ${old ?? 'somebody'}`;
    case 'watcher_added':
      return `added ${value ?? 'somebody'} as a watcher`;
    case 'watcher_removed':
      return `removed ${old ?? 'somebody'} from the watchers`;
    case 'comment_added':
      return 'commented';
    case 'comment_edited':
      return 'edited a comment';
    case 'comment_deleted':
      return 'deleted a comment';
    case 'note':
      return 'added a note';
    case 'alert_firing':
      return 'alert firing';
    case 'alert_resolved':
      return 'alert resolved';
    case 'attachment_added':
      return 'attached a file';
    case 'postmortem_changed':
      return 'changed the postmortem';
    case 'follow_up_changed':
      return 'changed a follow-up';
    case 'notification_failed':
      return 'a notification could not be sent';
    default:
      return String(event.kind).replace(/_/g, ' ');
  }
}
