import { describe, expect, it } from 'vitest';
import { safeNext, signInPath } from '../auth/guards';
import { ApiError, errorFromResponse, toApiError } from './errors';

describe('errorFromResponse', () => {
  it('reads the API error shape, request id and Retry-After', () => {
    const response = new Response(null, {
      status: 422,
      headers: { 'X-Request-ID': 'abc', 'Retry-After': '7' },
    });
    const error = errorFromResponse(response, {
      error: {
        code: 'validation_error',
        message: 'Invalid request: check body.email.',
        details: [
          { field: 'body.email', message: 'not an e-mail address', type: 'value_error' },
          { field: 'body.email', message: 'second message is ignored', type: 'x' },
          { row: 3, column: 'Input Image Urls', value: 'ftp://x', message: 'Line 3: not http' },
          'junk',
          { field: 'body.name' },
        ],
      },
    });
    expect(error).toBeInstanceOf(ApiError);
    expect(error.status).toBe(422);
    expect(error.code).toBe('validation_error');
    expect(error.message).toBe('Invalid request: check body.email.');
    expect(error.requestId).toBe('abc');
    expect(error.retryAfter).toBe(7);
    expect(error.fieldErrors()).toEqual({ email: 'not an e-mail address' });
    // Every detail kept is the ErrorDetail shape: a message, and where the problem is.
    expect(error.details).toHaveLength(3);
    expect(error.details[2]).toEqual({
      row: 3,
      column: 'Input Image Urls',
      value: 'ftp://x',
      message: 'Line 3: not http',
    });
  });

  it('says something useful when the body is not the API shape (a proxy page)', () => {
    const error = errorFromResponse(new Response(null, { status: 502 }), '<html>Bad gateway</html>');
    expect(error.code).toBe('http_error');
    expect(error.message).toMatch(/HTTP 502/);
  });

  it('turns a network failure into a readable error', () => {
    const error = toApiError(new TypeError('Failed to fetch'));
    expect(error.status).toBe(0);
    expect(error.code).toBe('network_error');
    expect(error.message).toMatch(/Cannot reach the OpsDeck server/);
  });
});

describe('post-sign-in destinations', () => {
  it.each([
    [null, '/'],
    ['', '/'],
    ['/account', '/account'],
    ['/admin/audit?actor=x#top', '/admin/audit?actor=x#top'],
    ['//evil.example', '/'],
    ['/\\evil.example', '/'],
    ['https://evil.example', '/'],
    ['javascript:alert(1)', '/'],
    ['/signin?next=/x', '/'],
  ])('safeNext(%j) is %j', (input, expected) => {
    expect(safeNext(input)).toBe(expected);
  });

  it('builds the sign-in link with the page to come back to', () => {
    expect(signInPath('/')).toBe('/signin');
    expect(signInPath('/account?x=1')).toBe('/signin?next=%2Faccount%3Fx%3D1');
  });
});
