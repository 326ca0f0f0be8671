import type { ReactElement } from 'react';
import { MemoryRouter, useLocation } from 'react-router';
import { MantineProvider } from '@mantine/core';
import { QueryClientProvider } from '@tanstack/react-query';
import { render } from '@testing-library/react';
import { vi } from 'vitest';
import { AppRoutes } from '../App';
import { createQueryClient } from '../api/query';
import type { User } from '../api/types';
import { AuthProvider } from '../auth/AuthContext';
import { theme } from '../theme';

export interface RecordedRequest {
  method: string;
  path: string;
  search: string;
  headers: Headers;
  body: unknown;
}

type Reply = { status: number; body?: unknown; headers?: Record<string, string> };
type Handler = (request: RecordedRequest) => Reply | Promise<Reply>;

export const CSRF = 'csrf-test-token';

export function makeUser(overrides: Partial<User> = {}): User {
  return {
    id: 'u-1',
    username: 'alice',
    email: 'alice@example.com',
    display_name: 'Alice Example',
    role: 'member',
    is_active: true,
    totp_enabled: false,
    created_at: '2026-01-02T03:04:05Z',
    ...overrides,
  };
}

export function session(user: User = makeUser()) {
  return { user, csrf_token: CSRF, expires_at: '2099-01-01T00:00:00Z' };
}

export function apiError(status: number, code: string, message: string, headers?: Record<string, string>): Reply {
  return { status, body: { error: { code, message, details: [] } }, headers };
}

/**
 * Replaces fetch with a router of `"METHOD /path"` handlers; unknown routes answer 404 in the
 * API's error shape. Every request is recorded with its headers and parsed JSON body.
 */
export function mockApi(routes: Record<string, Handler | Reply>) {
  const requests: RecordedRequest[] = [];
  // A server that knows a session set the readable CSRF cookie with it (as the real one does
  // with Set-Cookie); the app probes the session only when that cookie is there.
  const probe = routes['GET /api/v1/auth/session'];
  if (probe && typeof probe !== 'function' && probe.status === 200) setSessionCookie();
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = input instanceof Request ? input : new Request(input, init);
    const url = new URL(request.url);
    const text = request.method === 'GET' || request.method === 'HEAD' ? '' : await request.text();
    let body: unknown = undefined;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    const recorded: RecordedRequest = {
      method: request.method,
      path: url.pathname,
      search: url.search,
      headers: request.headers,
      body,
    };
    requests.push(recorded);
    const route = routes[`${request.method} ${url.pathname}`];
    const reply: Reply = route
      ? typeof route === 'function'
        ? await route(recorded)
        : route
      : apiError(404, 'not_found', `No mock for ${request.method} ${url.pathname}`);
    const headers = new Headers({ 'Content-Type': 'application/json', ...reply.headers });
    const payload = reply.status === 204 || reply.body === undefined ? null : JSON.stringify(reply.body);
    return new Response(payload, { status: reply.status, headers });
  });
  vi.stubGlobal('fetch', fetchMock);
  return { requests, fetchMock };
}

/** The readable cookie a browser holds while it has a session (the server sets it). */
export function setSessionCookie(): void {
  document.cookie = `opsdeck_csrf=${CSRF}; path=/`;
}

export function clearSessionCookie(): void {
  document.cookie = 'opsdeck_csrf=; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT';
}

export function LocationProbe() {
  const location = useLocation();
  return <div data-testid="location">{`${location.pathname}${location.search}`}</div>;
}

export function renderApp(path = '/', extra?: ReactElement) {
  return render(
    <MemoryRouter initialEntries={[path]}>
      <MantineProvider theme={theme} env="test">
        {/* A fresh cache per test: nothing one test loaded answers for the next. */}
        <QueryClientProvider client={createQueryClient()}>
          <AuthProvider>
            <AppRoutes />
            <LocationProbe />
            {extra}
          </AuthProvider>
        </QueryClientProvider>
      </MantineProvider>
    </MemoryRouter>,
  );
}
