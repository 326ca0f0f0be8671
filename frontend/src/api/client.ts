import createClient, { type Middleware } from 'openapi-fetch';
import type { paths } from './schema';
import { errorFromResponse, toApiError } from './errors';

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const SESSION_PATH = '/api/v1/auth/session';

let csrfToken: string | null = null;
let onSessionExpired: (() => void) | null = null;

/** Held in memory only; the readable `opsdeck_csrf` cookie is the fallback after a reload. */
export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

export function getCsrfToken(): string | null {
  if (csrfToken) return csrfToken;
  const match = /(?:^|;\s*)opsdeck_csrf=([^;]+)/.exec(document.cookie);
  return match?.[1] ? decodeURIComponent(match[1]) : null;
}

/**
 * Whether this browser may hold a session: the readable `opsdeck_csrf` cookie is set and
 * cleared together with the HttpOnly session cookie (same lifetime), so without it there is no
 * session to ask the server about, and a signed-out page load makes no request that answers
 * 401. With it, the session may still have ended on the server: the probe says so.
 */
export function mayHaveSession(): boolean {
  return /(?:^|;\s*)opsdeck_csrf=[^;]/.test(document.cookie);
}

/** Called when an authenticated request answers 401: the session has ended. */
export function setSessionExpiredHandler(handler: (() => void) | null): void {
  onSessionExpired = handler;
}

const csrfAndExpiry: Middleware = {
  onRequest({ request }) {
    if (UNSAFE_METHODS.has(request.method.toUpperCase())) {
      const token = getCsrfToken();
      if (token) request.headers.set('X-CSRF-Token', token);
    }
    return request;
  },
  onResponse({ request, response }) {
    // 401 from the session endpoint itself is a sign-in answer, not an expiry.
    if (response.status === 401 && new URL(request.url).pathname !== SESSION_PATH) {
      onSessionExpired?.();
    }
    return response;
  },
};

export const api = createClient<paths>({
  baseUrl: typeof window === 'undefined' ? '' : window.location.origin,
  credentials: 'same-origin',
  // Looked up per call so tests can stub fetch after this module loads.
  fetch: (request: Request) => globalThis.fetch(request),
});
api.use(csrfAndExpiry);

type Result<D> = { data?: D; error?: unknown; response: Response };

/** The response body of a successful call; any other answer becomes an ApiError. */
export async function unwrap<D>(call: Promise<Result<D>>): Promise<D> {
  let result: Result<D>;
  try {
    result = await call;
  } catch (error) {
    throw toApiError(error);
  }
  if (result.response.ok) return result.data as D;
  throw errorFromResponse(result.response, result.error);
}
