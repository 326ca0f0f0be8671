import { expect, test } from './fixtures';

test('the server serves the built app with the right cache headers and keeps API 404s', async ({ request }) => {
  const index = await request.get('/');
  expect(index.status()).toBe(200);
  expect(index.headers()['cache-control']).toBe('no-cache');
  expect(index.headers()['content-security-policy']).toContain("script-src 'self'");
  const html = await index.text();
  expect(html).not.toMatch(/<script(?![^>]*\ssrc=)[^>]*>/); // no inline scripts under the CSP

  const asset = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
  expect(asset).toBeTruthy();
  const script = await request.get(asset ?? '');
  expect(script.status()).toBe(200);
  expect(script.headers()['cache-control']).toBe('public, max-age=31536000, immutable');
  expect(script.headers()['content-type']).toMatch(/javascript/);

  const clientRoute = await request.get('/admin/users?x=1');
  expect(clientRoute.status()).toBe(200);
  expect(await clientRoute.text()).toBe(html);

  const missingApi = await request.get('/api/v1/no-such-thing');
  expect(missingApi.status()).toBe(404);
  expect((await missingApi.json()) as unknown).toMatchObject({ error: { code: 'not_found' } });
  expect((await request.get('/assets/missing-abc123.js')).status()).toBe(404);
});
