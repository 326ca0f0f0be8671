import {
  NO_FILTERS,
  OPEN_STATUSES,
  SEVERITIES,
  STATUSES,
  type IncidentFilters,
  type IncidentStatus,
  type Severity,
} from '../../api/incidents';
import type { ApiError } from '../../api/errors';

const FREE_TEXT_MAX = 200;

function pick<T extends string>(values: string[], allowed: readonly T[]): T[] {
  // Kept in the allowed order, each once: the same filter always makes the same URL and key.
  const chosen = new Set(values);
  return allowed.filter((value) => chosen.has(value));
}

function text(value: string | null, max = FREE_TEXT_MAX): string {
  return (value ?? '').slice(0, max);
}

/**
 * The list's filters as the URL says them (`?status=triage&status=investigating&severity=SEV1
 * &category=&tag=&mine=true&q=`). Unknown statuses or severities are dropped rather than sent,
 * so a hand-edited or stale link still shows a list.
 */
export function filtersFromParams(params: URLSearchParams): IncidentFilters {
  return {
    status: pick<IncidentStatus>(params.getAll('status'), STATUSES),
    severity: pick<Severity>(params.getAll('severity'), SEVERITIES),
    category: text(params.get('category'), 64),
    tag: text(params.get('tag'), 64),
    mine: params.get('mine') === 'true',
    q: text(params.get('q')),
  };
}

/** The URL form of `filters`: only what narrows the list, in a fixed order. */
export function paramsFromFilters(filters: IncidentFilters): URLSearchParams {
  const params = new URLSearchParams();
  for (const status of pick(filters.status, STATUSES)) params.append('status', status);
  for (const severity of pick(filters.severity, SEVERITIES)) params.append('severity', severity);
  if (filters.category) params.set('category', filters.category);
  if (filters.tag) params.set('tag', filters.tag);
  if (filters.mine) params.set('mine', 'true');
  const q = filters.q.trim();
  if (q) params.set('q', q);
  return params;
}

export function isFiltered(filters: IncidentFilters): boolean {
  return paramsFromFilters(filters).toString() !== '';
}

/** A link to the list with these filters. */
export function listPath(filters: Partial<IncidentFilters>): string {
  const query = paramsFromFilters({ ...NO_FILTERS, ...filters }).toString();
  return query ? `/incidents?${query}` : '/incidents';
}

export interface SavedView {
  label: string;
  filters: IncidentFilters;
}

/** Presets of the list: links that set the URL filters. */
export const SAVED_VIEWS: readonly SavedView[] = [
  { label: 'My open incidents', filters: { ...NO_FILTERS, mine: true, status: [...OPEN_STATUSES] } },
  { label: 'All open incidents', filters: { ...NO_FILTERS, status: [...OPEN_STATUSES] } },
  { label: 'All incidents', filters: NO_FILTERS },
];

/** The saved view these filters are exactly, if any (ignoring the search box). */
export function currentView(filters: IncidentFilters): SavedView | undefined {
  const key = paramsFromFilters({ ...filters, q: '' }).toString();
  return SAVED_VIEWS.find((view) => paramsFromFilters(view.filters).toString() === key);
}

/**
 * A refused form's problems per field: the server names them `body.title`, `body.tags.3`,
 * `body.category`; each goes to its field by the name after `body` (a tag's index included in
 * the message), the first message per field.
 */
export function formFieldErrors(error: ApiError | null | undefined): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const detail of error?.details ?? []) {
    if (typeof detail.field !== 'string') continue;
    const parts = detail.field.split('.');
    const start = parts[0] === 'body' || parts[0] === 'query' ? 1 : 0;
    const name = parts[start];
    if (!name) continue;
    fields[name] ??= detail.message;
  }
  return fields;
}
