import { api, unwrap } from './client';
import type { components } from './schema';
import type { AuditPage, ChainStatus } from './types';

export type AuditSort = components['schemas']['AuditSort'];

export const AUDIT_PAGE_SIZE = 50;

export interface AuditFilters {
  actor?: string;
  /** A prefix, e.g. `auth.` */
  action?: string;
  /** ISO instants. */
  since?: string;
  until?: string;
}

/** Query keys of the audit module, for caching and invalidation. */
export const auditKeys = {
  all: ['audit'] as const,
  page: (filters: AuditFilters, cursor: string | null) => ['audit', 'entries', filters, cursor] as const,
  chain: () => ['audit', 'chain'] as const,
};

/** One page of entries, newest first; pass the previous page's `next_cursor` for the next. */
export function listAudit(filters: AuditFilters, cursor?: string | null, limit = AUDIT_PAGE_SIZE): Promise<AuditPage> {
  return unwrap(
    api.GET('/api/v1/audit', {
      params: {
        query: {
          actor: filters.actor || undefined,
          action: filters.action || undefined,
          since: filters.since,
          until: filters.until,
          cursor: cursor ?? undefined,
          limit,
        },
      },
    }),
  );
}

export function verifyAudit(): Promise<ChainStatus> {
  return unwrap(api.GET('/api/v1/audit/verify'));
}
