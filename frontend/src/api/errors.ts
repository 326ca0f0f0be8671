import type { components } from './schema';

/**
 * The one error shape of the OpsDeck API: {"error": {"code", "message", "details"}}, each
 * detail an `ErrorDetail` (the server's OpenAPI schema): always a `message`, and the fields
 * that say where the problem is (`field`, or `row`/`column`/`value` of a CSV, `file`, ...).
 */
export type ErrorDetail = components['schemas']['ErrorDetail'];
export type ErrorBody = components['schemas']['ErrorBody'];

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: ErrorDetail[];
  readonly requestId: string | null;
  readonly retryAfter: number | null;

  constructor(
    status: number,
    code: string,
    message: string,
    details: ErrorDetail[] = [],
    requestId: string | null = null,
    retryAfter: number | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.requestId = requestId;
    this.retryAfter = retryAfter;
  }

  /** Field name (last part of `body.new_password`) -> message, for inline form errors. */
  fieldErrors(): Record<string, string> {
    const fields: Record<string, string> = {};
    for (const detail of this.details) {
      if (typeof detail.field !== 'string') continue;
      const name = detail.field.split('.').pop() ?? detail.field;
      fields[name] ??= detail.message;
    }
    return fields;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A detail as the server sends it; anything else (a proxy's own body) is left out. */
function isErrorDetail(value: unknown): value is ErrorDetail {
  return isRecord(value) && typeof value.message === 'string';
}

export function errorFromResponse(response: Response, body: unknown): ApiError {
  const requestId = response.headers.get('X-Request-ID');
  const retryHeader = response.headers.get('Retry-After');
  const retryAfter = retryHeader !== null && /^\d+$/.test(retryHeader) ? Number(retryHeader) : null;
  const inner = isRecord(body) ? body.error : undefined;
  if (isRecord(inner) && typeof inner.message === 'string') {
    const details = Array.isArray(inner.details)
      ? inner.details.filter(isErrorDetail)
      : [];
    const code = typeof inner.code === 'string' ? inner.code : 'http_error';
    return new ApiError(response.status, code, inner.message, details, requestId, retryAfter);
  }
  const fallback =
    response.status >= 500
      ? `The server could not handle the request (HTTP ${response.status}). Try again shortly.`
      : `The request failed (HTTP ${response.status}).`;
  return new ApiError(response.status, 'http_error', fallback, [], requestId, retryAfter);
}

export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  return new ApiError(
    0,
    'network_error',
    'Cannot reach the OpsDeck server. Check your connection and try again.',
  );
}
