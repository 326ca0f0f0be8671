import { api, unwrap } from './client';
import type { components } from './schema';

type Schemas = components['schemas'];
export type Incident = Schemas['IncidentOut'];
export type IncidentSummary = Schemas['IncidentSummary'];
export type IncidentPage = Schemas['IncidentPage'];
export type IncidentStatus = Schemas['IncidentStatus'];
export type Severity = Schemas['Severity'];
export type Visibility = Schemas['Visibility'];
export type IncidentSort = Schemas['IncidentSort'];
export type IncidentCreate = Schemas['IncidentCreate'];
export type IncidentUpdate = Schemas['IncidentUpdate'];
export type UserRef = Schemas['UserRef'];
export type Comment = Schemas['CommentOut'];
export type CommentPage = Schemas['CommentPage'];
export type TimelineEvent = Schemas['TimelineEventOut'];
export type TimelinePage = Schemas['TimelinePage'];
export type EventKind = TimelineEvent['kind'];
export type Category = Schemas['CategoryOut'];
export type Tag = Schemas['TagOut'];
export type Integration = Schemas['IntegrationOut'];
export type IntegrationCreated = Schemas['IntegrationCreated'];
export type IntegrationCreate = Schemas['IntegrationCreate'];
export type IntegrationUpdate = Schemas['IntegrationUpdate'];
export type IntegrationPage = Schemas['IntegrationPage'];
export type IntegrationKind = Integration['kind'];
export type IncidentStats = Schemas['IncidentStats'];
export type DurationPercentiles = Schemas['DurationPercentiles'];
export type FollowUp = Schemas['FollowUpOut'];
export type FollowUpPage = Schemas['FollowUpPage'];
export type FollowUpStatus = FollowUp['status'];
export type Postmortem = Schemas['PostmortemOut'];
export type PostmortemStatus = Postmortem['status'];
export type PostmortemTemplate = Schemas['PostmortemTemplateOut'];
export type NotificationPreferences = Schemas['NotificationPreferences'];
export type WebhookEndpoint = Schemas['WebhookEndpointOut'];
export type WebhookDelivery = Schemas['WebhookDeliveryOut'];
export type WebhookDeliveryPage = Schemas['WebhookDeliveryPage'];
export type Attachment = Schemas['AttachmentOut'];
export type FollowUpCreate = Schemas['FollowUpCreate'];
export type FollowUpUpdate = Schemas['FollowUpUpdate'];
export const WEBHOOK_EVENTS = [
  'incident.created',
  'incident.status_changed',
  'incident.resolved',
  'incident.comment_added',
] as const;

/** The workflow's states, in order (incidents/service/workflow.py). */
export const STATUSES: readonly IncidentStatus[] = [
  'triage',
  'investigating',
  'identified',
  'monitoring',
  'resolved',
  'closed',
];
export const OPEN_STATUSES: readonly IncidentStatus[] = ['triage', 'investigating', 'identified', 'monitoring'];
export const SEVERITIES: readonly Severity[] = ['SEV1', 'SEV2', 'SEV3', 'SEV4'];
export const PAGE_SIZE = 25;

/** How people read an incident's number: INC-42. */
export function incidentKey(number: number): string {
  return `INC-${number}`;
}

/** What the list is narrowed to; the list page keeps it in the URL (pages/incidents/filters.ts). */
export interface IncidentFilters {
  status: IncidentStatus[];
  severity: Severity[];
  category: string;
  tag: string;
  mine: boolean;
  q: string;
}

export const NO_FILTERS: IncidentFilters = {
  status: [],
  severity: [],
  category: '',
  tag: '',
  mine: false,
  q: '',
};

/** Query keys of the incidents module, for caching and invalidation. */
export const incidentsKeys = {
  all: ['incidents'] as const,
  lists: () => ['incidents', 'list'] as const,
  list: (filters: IncidentFilters) => ['incidents', 'list', filters] as const,
  openCount: () => ['incidents', 'list', 'open-count'] as const,
  incident: (number: number) => ['incidents', 'incident', number] as const,
  comments: (number: number) => ['incidents', 'incident', number, 'comments'] as const,
  timeline: (number: number) => ['incidents', 'incident', number, 'timeline'] as const,
  categories: () => ['incidents', 'categories'] as const,
  tags: () => ['incidents', 'tags'] as const,
  integrations: () => ['incidents', 'integrations'] as const,
  stats: (since: string, until: string) => ['incidents', 'stats', since, until] as const,
  followUps: (filter: FollowUpFilter) => ['incidents', 'follow-ups', filter] as const,
  postmortem: (number: number) => ['incidents', 'incident', number, 'postmortem'] as const,
  templates: () => ['incidents', 'postmortem-templates'] as const,
  preferences: () => ['incidents', 'notification-preferences'] as const,
  webhooks: () => ['incidents', 'webhooks'] as const,
  deliveries: (endpointId: string) => ['incidents', 'webhooks', endpointId, 'deliveries'] as const,
  attachments: (number: number) => ['incidents', 'incident', number, 'attachments'] as const,
  incidentFollowUps: (number: number) => ['incidents', 'incident', number, 'follow-ups'] as const,
};

export interface FollowUpFilter {
  status: FollowUpStatus[];
  overdue?: boolean;
}

export function listIncidents(
  filters: IncidentFilters,
  cursor?: string | null,
  limit = PAGE_SIZE,
): Promise<IncidentPage> {
  return unwrap(
    api.GET('/api/v1/incidents', {
      params: {
        query: {
          status: filters.status.length ? filters.status : undefined,
          severity: filters.severity.length ? filters.severity : undefined,
          category: filters.category || undefined,
          tag: filters.tag || undefined,
          mine: filters.mine || undefined,
          q: filters.q.trim() || undefined,
          cursor: cursor ?? undefined,
          limit,
        },
      },
    }),
  );
}

export function declareIncident(body: IncidentCreate): Promise<Incident> {
  return unwrap(api.POST('/api/v1/incidents', { body }));
}

export function getIncident(number: number): Promise<Incident> {
  return unwrap(api.GET('/api/v1/incidents/{number}', { params: { path: { number } } }));
}

export function updateIncident(number: number, body: IncidentUpdate): Promise<Incident> {
  return unwrap(api.PATCH('/api/v1/incidents/{number}', { params: { path: { number } }, body }));
}

export function transitionIncident(number: number, to: IncidentStatus): Promise<Incident> {
  return unwrap(
    api.POST('/api/v1/incidents/{number}/transition', { params: { path: { number } }, body: { to } }),
  );
}

export function addAssignee(number: number, username: string): Promise<Incident> {
  return unwrap(
    api.POST('/api/v1/incidents/{number}/assignees', { params: { path: { number } }, body: { username } }),
  );
}

export function removeAssignee(number: number, username: string): Promise<Incident> {
  return unwrap(
    api.DELETE('/api/v1/incidents/{number}/assignees/{username}', {
      params: { path: { number, username } },
    }),
  );
}

/** Watch it yourself, or (editors) add somebody by username. */
export function watchIncident(number: number, username?: string): Promise<Incident> {
  return unwrap(
    api.POST('/api/v1/incidents/{number}/watchers', {
      params: { path: { number } },
      body: username ? { username } : undefined,
    }),
  );
}

export function unwatchIncident(number: number, username?: string): Promise<Incident> {
  return unwrap(
    api.DELETE('/api/v1/incidents/{number}/watchers', {
      params: { path: { number }, query: username ? { username } : undefined },
    }),
  );
}

export function listComments(number: number, cursor?: string | null): Promise<CommentPage> {
  return unwrap(
    api.GET('/api/v1/incidents/{number}/comments', {
      params: { path: { number }, query: { cursor: cursor ?? undefined, limit: 100 } },
    }),
  );
}

export function addComment(number: number, body: string): Promise<Comment> {
  return unwrap(
    api.POST('/api/v1/incidents/{number}/comments', { params: { path: { number } }, body: { body } }),
  );
}

export function editComment(number: number, commentId: string, body: string): Promise<Comment> {
  return unwrap(
    api.PATCH('/api/v1/incidents/{number}/comments/{comment_id}', {
      params: { path: { number, comment_id: commentId } },
      body: { body },
    }),
  );
}

export async function deleteComment(number: number, commentId: string): Promise<void> {
  await unwrap(
    api.DELETE('/api/v1/incidents/{number}/comments/{comment_id}', {
      params: { path: { number, comment_id: commentId } },
    }),
  );
}

export function listTimeline(number: number, cursor?: string | null): Promise<TimelinePage> {
  return unwrap(
    api.GET('/api/v1/incidents/{number}/timeline', {
      params: { path: { number }, query: { cursor: cursor ?? undefined, limit: 200 } },
    }),
  );
}

export function addNote(number: number, body: string, pinned: boolean): Promise<TimelineEvent> {
  return unwrap(
    api.POST('/api/v1/incidents/{number}/notes', { params: { path: { number } }, body: { body, pinned } }),
  );
}

export function pinEvent(number: number, eventId: number, pinned: boolean): Promise<TimelineEvent> {
  return unwrap(
    api.PATCH('/api/v1/incidents/{number}/timeline/{event_id}', {
      params: { path: { number, event_id: eventId } },
      body: { pinned },
    }),
  );
}

export function listCategories(): Promise<Category[]> {
  return unwrap(api.GET('/api/v1/incidents/categories'));
}

export function createCategory(name: string, description: string): Promise<Category> {
  return unwrap(api.POST('/api/v1/incidents/categories', { body: { name, description } }));
}

export function updateCategory(id: string, body: { name?: string; description?: string }): Promise<Category> {
  return unwrap(
    api.PATCH('/api/v1/incidents/categories/{category_id}', { params: { path: { category_id: id } }, body }),
  );
}

export async function deleteCategory(id: string): Promise<void> {
  await unwrap(
    api.DELETE('/api/v1/incidents/categories/{category_id}', { params: { path: { category_id: id } } }),
  );
}

export function listTags(): Promise<Tag[]> {
  return unwrap(api.GET('/api/v1/incidents/tags'));
}

export function createTag(name: string): Promise<Tag> {
  return unwrap(api.POST('/api/v1/incidents/tags', { body: { name } }));
}

export async function deleteTag(id: string): Promise<void> {
  await unwrap(api.DELETE('/api/v1/incidents/tags/{tag_id}', { params: { path: { tag_id: id } } }));
}

export function listIntegrations(cursor?: string | null): Promise<IntegrationPage> {
  return unwrap(
    api.GET('/api/v1/incidents/integrations', { params: { query: { cursor: cursor ?? undefined, limit: 100 } } }),
  );
}

/** A new alert integration; its `token` is in this answer only. */
export function createIntegration(body: IntegrationCreate): Promise<IntegrationCreated> {
  return unwrap(api.POST('/api/v1/incidents/integrations', { body }));
}

/** Only the fields sent change; the severity map sent replaces the old one. */
export function updateIntegration(id: string, body: IntegrationUpdate): Promise<Integration> {
  return unwrap(
    api.PATCH('/api/v1/incidents/integrations/{integration_id}', { params: { path: { integration_id: id } }, body }),
  );
}

export async function revokeIntegration(id: string): Promise<void> {
  await unwrap(
    api.DELETE('/api/v1/incidents/integrations/{integration_id}', { params: { path: { integration_id: id } } }),
  );
}

export function getStats(since: string, until: string): Promise<IncidentStats> {
  return unwrap(api.GET('/api/v1/incidents/stats', { params: { query: { since, until } } }));
}

/** The CSV export of the list with these filters (a download link, streamed by the server). */
export function exportCsvPath(query: URLSearchParams): string {
  const text = query.toString();
  return text ? `/api/v1/incidents/export.csv?${text}` : '/api/v1/incidents/export.csv';
}

export function listFollowUps(filter: FollowUpFilter, cursor?: string | null, limit = 50): Promise<FollowUpPage> {
  return unwrap(
    api.GET('/api/v1/incidents/follow-ups', {
      params: {
        query: {
          status: filter.status.length ? filter.status : undefined,
          overdue: filter.overdue,
          cursor: cursor ?? undefined,
          limit,
        },
      },
    }),
  );
}

export function getPostmortem(number: number): Promise<Postmortem> {
  return unwrap(api.GET('/api/v1/incidents/{number}/postmortem', { params: { path: { number } } }));
}

export function startPostmortem(number: number): Promise<Postmortem> {
  return unwrap(api.POST('/api/v1/incidents/{number}/postmortem', { params: { path: { number } }, body: null }));
}

export function savePostmortem(number: number, body: string): Promise<Postmortem> {
  return unwrap(api.PUT('/api/v1/incidents/{number}/postmortem', { params: { path: { number } }, body: { body } }));
}

export function transitionPostmortem(number: number, to: PostmortemStatus): Promise<Postmortem> {
  return unwrap(
    api.POST('/api/v1/incidents/{number}/postmortem/transition', { params: { path: { number } }, body: { to } }),
  );
}

export function listTemplates(): Promise<PostmortemTemplate[]> {
  return unwrap(api.GET('/api/v1/incidents/postmortem-templates'));
}

export function createTemplate(body: { name: string; body: string; is_default: boolean }): Promise<PostmortemTemplate> {
  return unwrap(api.POST('/api/v1/incidents/postmortem-templates', { body }));
}

export function updateTemplate(
  id: string,
  body: { name?: string; body?: string; is_default?: boolean },
): Promise<PostmortemTemplate> {
  return unwrap(
    api.PUT('/api/v1/incidents/postmortem-templates/{template_id}', { params: { path: { template_id: id } }, body }),
  );
}

export async function deleteTemplate(id: string): Promise<void> {
  await unwrap(
    api.DELETE('/api/v1/incidents/postmortem-templates/{template_id}', { params: { path: { template_id: id } } }),
  );
}

export function getPreferences(): Promise<NotificationPreferences> {
  return unwrap(api.GET('/api/v1/incidents/notification-preferences'));
}

export function setPreferences(body: Partial<NotificationPreferences>): Promise<NotificationPreferences> {
  return unwrap(api.PUT('/api/v1/incidents/notification-preferences', { body }));
}

export function listWebhooks(): Promise<WebhookEndpoint[]> {
  return unwrap(api.GET('/api/v1/incidents/webhooks'));
}

export function createWebhook(url: string, events: string[]): Promise<WebhookEndpoint> {
  return unwrap(api.POST('/api/v1/incidents/webhooks', { body: { url, events } }));
}

export async function deleteWebhook(id: string): Promise<void> {
  await unwrap(api.DELETE('/api/v1/incidents/webhooks/{endpoint_id}', { params: { path: { endpoint_id: id } } }));
}

/** What each delivery to an endpoint did, newest first. */
export function listWebhookDeliveries(endpointId: string, cursor?: string | null, limit = 20): Promise<WebhookDeliveryPage> {
  return unwrap(
    api.GET('/api/v1/incidents/webhooks/{endpoint_id}/deliveries', {
      params: { path: { endpoint_id: endpointId }, query: { cursor: cursor ?? undefined, limit, sort: '-created_at' } },
    }),
  );
}

export function listAttachments(number: number): Promise<Attachment[]> {
  return unwrap(api.GET('/api/v1/incidents/{number}/attachments', { params: { path: { number } } }));
}

// The generated body type describes the file as a string; openapi-fetch sends a FormData body
// as multipart as it is (the browser sets the boundary), so the form stands in for it.
export function uploadAttachment(number: number, file: File): Promise<Attachment> {
  const form = new FormData();
  form.set('file', file, file.name);
  return unwrap(
    api.POST('/api/v1/incidents/{number}/attachments', {
      params: { path: { number } },
      body: form as unknown as Schemas['Body_incidents-attach'],
    }),
  );
}

export async function deleteAttachment(number: number, attachmentId: string): Promise<void> {
  await unwrap(
    api.DELETE('/api/v1/incidents/{number}/attachments/{attachment_id}', {
      params: { path: { number, attachment_id: attachmentId } },
    }),
  );
}

export function listIncidentFollowUps(number: number, cursor?: string | null): Promise<FollowUpPage> {
  return unwrap(
    api.GET('/api/v1/incidents/{number}/follow-ups', {
      params: { path: { number }, query: { cursor: cursor ?? undefined, limit: 100 } },
    }),
  );
}

export function createFollowUp(number: number, body: FollowUpCreate): Promise<FollowUp> {
  return unwrap(api.POST('/api/v1/incidents/{number}/follow-ups', { params: { path: { number } }, body }));
}

/** Only the fields sent change (`owner: null` / `due_date: null` clear them); a follow-up's owner may change its status. */
export function updateFollowUp(id: string, body: FollowUpUpdate): Promise<FollowUp> {
  return unwrap(
    api.PATCH('/api/v1/incidents/follow-ups/{follow_up_id}', { params: { path: { follow_up_id: id } }, body }),
  );
}
