import { act, configure, fireEvent, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Batch, BatchImage, BatchProduct, BatchSummary, WebhookStatus } from '../../api/types';
import { formatBytes, formatSaving } from '../../components/format';
import { CSRF, apiError, mockApi, renderApp, session, type RecordedRequest } from '../../test/utils';

// The first test also loads the lazy Images chunk, which takes a while on a busy machine.
configure({ asyncUtilTimeout: 5000 });

const BASE = 'http://public.example:8004';
const ID = 'b'.repeat(32);

function summary(overrides: Partial<BatchSummary> = {}): BatchSummary {
  const id = overrides.request_id ?? ID;
  return {
    request_id: id,
    status: 'pending',
    source: 'csv',
    total_images: 2,
    processed_images: 0,
    failed_images: 0,
    created_at: '2026-03-04T05:06:07Z',
    started_at: null,
    finished_at: null,
    webhook: { url: null, status: 'none', attempts: 0, last_error: null },
    output_csv_url: `${BASE}/api/v1/images/batches/${id}/output.csv`,
    ...overrides,
  };
}

function image(overrides: Partial<BatchImage> = {}): BatchImage {
  return {
    position: 1,
    input_url: 'https://shop.example/a.jpg',
    input_name: null,
    output_url: null,
    status: 'pending',
    error: null,
    bytes_in: null,
    bytes_out: null,
    width: null,
    height: null,
    format: null,
    ...overrides,
  };
}

function batch(overrides: Partial<Batch> = {}, images: BatchImage[] = [image(), image({ position: 2, input_url: 'https://shop.example/b.png' })]): Batch {
  const products = overrides.products ?? [{ serial_number: '1', product_name: 'SKU1 <b>bold</b>', images }];
  return {
    ...summary(overrides),
    operations: { quality: 50, format: 'keep', max_width: null, max_height: null, animated: false },
    products_total: products.length,
    products_offset: 0,
    ...overrides,
    products,
  };
}

function product(n: number): BatchProduct {
  return {
    serial_number: String(n),
    product_name: `Product ${n}`,
    images: [image({ position: n, input_url: `https://shop.example/${n}.jpg` })],
  };
}

/** The products page a detail request asks for, out of a batch of `total` products. */
function productsPage(request: RecordedRequest, total: number, overrides: Partial<Batch> = {}): Batch {
  const params = new URLSearchParams(request.search);
  const offset = Number(params.get('products_offset') ?? 0);
  const limit = params.has('products_limit') ? Number(params.get('products_limit')) : total;
  const products = Array.from({ length: Math.max(0, Math.min(limit, total - offset)) }, (_, i) => product(offset + i + 1));
  return batch({ total_images: total, ...overrides, products_total: total, products_offset: offset, products });
}

function pageParams(request: RecordedRequest | undefined): [string | null, string | null] {
  const params = new URLSearchParams(request?.search);
  return [params.get('products_offset'), params.get('products_limit')];
}

const succeeded = image({
  status: 'succeeded',
  output_url: `${BASE}/media/tok123.jpg`,
  bytes_in: 200_000,
  bytes_out: 50_000,
  width: 640,
  height: 480,
  format: 'jpeg',
});
const failed = image({
  position: 2,
  input_url: 'https://shop.example/b.png',
  status: 'failed',
  error: 'the server answered 404 Not Found',
});

function multipartField(request: RecordedRequest | undefined, name: string): string | null {
  const text = typeof request?.body === 'string' ? request.body : '';
  const match = new RegExp(`name="${name}"(?:; filename="[^"]*")?\\r\\n(?:Content-Type: [^\\r]*\\r\\n)?\\r\\n([\\s\\S]*?)\\r\\n--`).exec(text);
  return match?.[1] ?? null;
}

function gets(requests: RecordedRequest[], path: string): number {
  return requests.filter((r) => r.method === 'GET' && r.path === path).length;
}

describe('new image batch', { timeout: 20_000 }, () => {
  it('uploads a CSV with options and opens the new batch', async () => {
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'POST /api/v1/images/batches': { status: 202, body: summary(), headers: { Location: `/api/v1/images/batches/${ID}` } },
      [`GET /api/v1/images/batches/${ID}`]: { status: 200, body: batch() },
    });
    renderApp('/images/new');
    const user = userEvent.setup();
    await screen.findByRole('heading', { name: 'New image batch' });

    const csv = new File(['S. No.,Product Name,Input Image Urls\n1,SKU1,https://shop.example/a.jpg\n'], 'products.csv', {
      type: 'text/csv',
    });
    await user.upload(screen.getByLabelText('Choose a CSV file'), csv);
    expect(screen.getByTestId('chosen-csv')).toHaveTextContent('products.csv');

    const quality = screen.getByRole('textbox', { name: 'Quality' });
    await user.clear(quality);
    await user.type(quality, '80');
    await user.selectOptions(screen.getByLabelText('Output format'), 'webp');
    await user.type(screen.getByRole('textbox', { name: 'Max width (px)' }), '512');
    await user.type(screen.getByLabelText('Webhook URL'), 'https://hooks.example/done');
    await user.click(screen.getByRole('button', { name: 'Start batch' }));

    await screen.findByRole('heading', { name: `Batch ${ID}` });
    expect(screen.getByTestId('location')).toHaveTextContent(`/images/batches/${ID}`);
    const post = api.requests.find((r) => r.method === 'POST');
    expect(post?.headers.get('X-CSRF-Token')).toBe(CSRF);
    expect(post?.headers.get('Content-Type')).toMatch(/^multipart\/form-data; boundary=/);
    expect(JSON.parse(multipartField(post, 'operations') ?? 'null')).toEqual({ quality: 80, format: 'webp', max_width: 512 });
    expect(multipartField(post, 'webhook_url')).toBe('https://hooks.example/done');
    expect(typeof post?.body === 'string' && post.body.includes('name="file"')).toBe(true);
  });

  it('asks for a file and a quality before sending anything', async () => {
    const api = mockApi({ 'GET /api/v1/auth/session': { status: 200, body: session() } });
    renderApp('/images/new');
    const user = userEvent.setup();
    await user.click(await screen.findByRole('button', { name: 'Start batch' }));
    expect(await screen.findByText('Choose a CSV file first.')).toBeInTheDocument();
    await user.click(screen.getByRole('radio', { name: 'Upload image files' }));
    await user.click(screen.getByRole('button', { name: 'Start batch' }));
    expect(await screen.findByText('Add at least one image first.')).toBeInTheDocument();
    await user.upload(screen.getByLabelText('Choose image files'), new File(['a'], 'a.jpg', { type: 'image/jpeg' }));
    await user.clear(screen.getByRole('textbox', { name: 'Quality' }));
    await user.click(screen.getByRole('button', { name: 'Start batch' }));
    expect(screen.getByRole('textbox', { name: 'Quality' })).toHaveAccessibleDescription(/Enter a quality from 1 to 100/);
    expect(api.requests.some((r) => r.method === 'POST')).toBe(false);
  });

  it('takes image files dropped onto the drop area, without duplicates', async () => {
    mockApi({ 'GET /api/v1/auth/session': { status: 200, body: session() } });
    renderApp('/images/new');
    const user = userEvent.setup();
    await user.click(await screen.findByRole('radio', { name: 'Upload image files' }));
    const area = screen.getByTestId('file-drop');
    const a = new File(['a'], 'a.jpg', { type: 'image/jpeg', lastModified: 1 });
    const b = new File(['bb'], 'b.png', { type: 'image/png', lastModified: 1 });
    const dataTransfer = (files: File[]) => ({ dataTransfer: { files, types: ['Files'], dropEffect: 'none' } });
    fireEvent.dragEnter(area, dataTransfer([a]));
    expect(area).toHaveAttribute('data-dragging');
    expect(area).toHaveTextContent('Drop to add');
    fireEvent.drop(area, dataTransfer([a, b]));
    expect(area).not.toHaveAttribute('data-dragging');
    fireEvent.drop(area, dataTransfer([a]));
    const chosen = screen.getByTestId('chosen-images');
    expect(within(chosen).getAllByRole('listitem').map((li) => li.textContent)).toEqual(['a.jpg (1 B)×', 'b.png (2 B)×']);
    await user.click(within(chosen).getByRole('button', { name: 'Remove a.jpg' }));
    expect(within(screen.getByTestId('chosen-images')).getAllByRole('listitem')).toHaveLength(1);
  });

  it('lists every bad CSV row from a 422 so the file can be fixed in one go', async () => {
    const evil = '<img src=x onerror=alert(1)>';
    mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'POST /api/v1/images/batches': {
        status: 422,
        body: {
          error: {
            code: 'csv_invalid',
            message: 'The CSV has 2 problems in 2 rows. Nothing was stored: fix the rows listed and upload the file again.',
            details: [
              { row: 3, column: 'Input Image Urls', value: 'ftp://x/a.jpg', message: 'Line 3: ftp://x/a.jpg is not an http or https URL' },
              { row: 5, column: 'S. No.', value: evil, message: 'Line 5: serial number 1 is used twice' },
            ],
          },
        },
      },
    });
    const { container } = renderApp('/images/new');
    const user = userEvent.setup();
    await user.upload(await screen.findByLabelText('Choose a CSV file'), new File(['x'], 'bad.csv', { type: 'text/csv' }));
    await user.click(screen.getByRole('button', { name: 'Start batch' }));

    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('The CSV has 2 problems in 2 rows.');
    const table = within(alert).getByRole('table', { name: 'Problems in the CSV file' });
    const rows = within(table).getAllByRole('row').slice(1);
    expect(rows).toHaveLength(2);
    expect(within(rows[0] as HTMLElement).getAllByRole('cell').map((c) => c.textContent)).toEqual([
      '3',
      'Input Image Urls',
      'ftp://x/a.jpg',
      'Line 3: ftp://x/a.jpg is not an http or https URL',
    ]);
    expect(within(rows[1] as HTMLElement).getByText(evil)).toBeInTheDocument();
    expect(container.querySelector('img[src="x"]')).toBeNull();
    expect(screen.getByTestId('location')).toHaveTextContent('/images/new');

    // Choosing a fixed file clears the old problems.
    await user.upload(screen.getByLabelText('Choose a CSV file'), new File(['y'], 'fixed.csv', { type: 'text/csv' }));
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('shows 413 and 415 messages as the server wrote them, and field errors next to their field', async () => {
    let answer = 0;
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'POST /api/v1/images/uploads': () => {
        answer++;
        if (answer === 1) return apiError(413, 'file_too_large', 'big.jpg is larger than the 10,485,760-byte limit.');
        if (answer === 2) {
          return {
            status: 415,
            body: {
              error: {
                code: 'upload_not_an_image',
                message: 'Only JPEG, PNG, WebP, GIF, AVIF and TIFF images can be uploaded; nothing was stored.',
                details: [{ field: 'body.files', file: 'notes.txt', message: 'notes.txt is not an image' }],
              },
            },
          };
        }
        return {
          status: 422,
          body: {
            error: {
              code: 'invalid_webhook_url',
              message: 'The webhook URL is refused: 10.0.0.1 is a private address.',
              details: [{ field: 'body.webhook_url', message: 'refused: 10.0.0.1 is a private address' }],
            },
          },
        };
      },
    });
    renderApp('/images/new');
    // `accept` only guides the file picker; a user can still choose any file.
    const user = userEvent.setup({ applyAccept: false });
    await user.click(await screen.findByRole('radio', { name: 'Upload image files' }));
    await user.upload(screen.getByLabelText('Choose image files'), [
      new File(['a'], 'big.jpg', { type: 'image/jpeg' }),
      new File(['b'], 'notes.txt', { type: 'text/plain' }),
    ]);
    expect(within(screen.getByTestId('chosen-images')).getAllByRole('listitem')).toHaveLength(2);

    await user.click(screen.getByRole('button', { name: 'Start batch' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('big.jpg is larger than the 10,485,760-byte limit.');
    expect(screen.getByRole('alert')).toHaveTextContent('The file is too large');

    await user.click(screen.getByRole('button', { name: 'Start batch' }));
    await waitFor(() => expect(screen.getByRole('alert')).toHaveTextContent('nothing was stored'));
    expect(within(screen.getByRole('alert')).getByText('notes.txt is not an image')).toBeInTheDocument();

    await user.type(screen.getByLabelText('Webhook URL'), 'http://10.0.0.1/hook');
    await user.click(screen.getByRole('button', { name: 'Start batch' }));
    await waitFor(() => expect(screen.getByLabelText('Webhook URL')).toHaveAccessibleDescription(/private address/));

    const posts = api.requests.filter((r) => r.method === 'POST');
    expect(posts).toHaveLength(3);
    expect((posts[0]?.body as string).match(/name="files"/g)).toHaveLength(2);
  });
});

describe('live progress', { timeout: 20_000 }, () => {
  beforeEach(() => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('batch list: polls while a batch is active, stops when none is, and loads more', async () => {
    const older = Array.from({ length: 20 }, (_, i) =>
      summary({
        request_id: `old${String(i).padStart(29, '0')}`,
        status: 'completed',
        processed_images: 2,
        created_at: '2026-03-01T00:00:00Z',
      }),
    );
    let polls = 0;
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'GET /api/v1/images/batches': (request) => {
        const params = new URLSearchParams(request.search);
        const start = Number(params.get('cursor') ?? 0);
        const limit = Number(params.get('limit'));
        if (start === 0) polls++;
        const current =
          polls === 1
            ? summary({ status: 'pending' })
            : polls === 2
              ? summary({ status: 'processing', processed_images: 1, failed_images: 1 })
              : summary({ status: 'completed_with_errors', processed_images: 2, failed_images: 1 });
        const all = [current, ...older];
        const end = start + limit;
        return {
          status: 200,
          body: { items: all.slice(start, end), next_cursor: end < all.length ? String(end) : null },
        };
      },
    });
    renderApp('/images');
    const table = await screen.findByTestId('batches-table');
    const row = () => table.querySelector(`tr[data-request-id="${ID}"]`) as HTMLElement;
    expect(within(row()).getByText('Pending')).toBeInTheDocument();
    expect(within(table).getAllByRole('row')).toHaveLength(21);
    expect(screen.getByTestId('list-status')).toHaveTextContent('20 batches shown · updating live');

    await act(() => vi.advanceTimersByTimeAsync(2000));
    await within(row()).findByText('Processing');
    expect(within(row()).getByTestId('batch-progress-text')).toHaveTextContent('1 / 2 processed · 1 failed');

    await act(() => vi.advanceTimersByTimeAsync(2000));
    await within(row()).findByText('Completed with errors');
    expect(screen.getByTestId('list-status')).not.toHaveTextContent('updating live');
    const listed = gets(api.requests, '/api/v1/images/batches');
    await act(() => vi.advanceTimersByTimeAsync(10_000));
    expect(gets(api.requests, '/api/v1/images/batches')).toBe(listed);

    const user = userEvent.setup({ advanceTimers: vi.advanceTimersByTime });
    await user.click(screen.getByRole('button', { name: 'Load more' }));
    await within(table).findByRole('link', { name: `Batch ${older[19]?.request_id}` });
    expect(within(table).getAllByRole('row')).toHaveLength(22);
    expect(screen.queryByRole('button', { name: 'Load more' })).toBeNull();
    expect(new URLSearchParams(api.requests.at(-1)?.search).get('cursor')).toBe('20');
  });

  it('pauses while the tab is hidden and refreshes on coming back', async () => {
    let visibility: DocumentVisibilityState = 'visible';
    vi.spyOn(document, 'visibilityState', 'get').mockImplementation(() => visibility);
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'GET /api/v1/images/batches': { status: 200, body: { items: [summary({ status: 'processing' })], next_cursor: null } },
    });
    renderApp('/images');
    await screen.findByTestId('batches-table');
    const path = '/api/v1/images/batches';
    const first = gets(api.requests, path);

    visibility = 'hidden';
    act(() => {
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await act(() => vi.advanceTimersByTimeAsync(10_000));
    expect(gets(api.requests, path)).toBe(first);

    visibility = 'visible';
    act(() => {
      document.dispatchEvent(new Event('visibilitychange'));
    });
    await act(() => vi.advanceTimersByTimeAsync(10));
    expect(gets(api.requests, path)).toBe(first + 1);
  });

  it('batch detail: polls until the batch finishes, then shows previews, sizes and errors', async () => {
    let polls = 0;
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      [`GET /api/v1/images/batches/${ID}`]: () => {
        polls++;
        if (polls === 1) return { status: 200, body: batch({ status: 'processing' }) };
        return {
          status: 200,
          body: batch(
            {
              status: 'completed_with_errors',
              processed_images: 2,
              failed_images: 1,
              started_at: '2026-03-04T05:06:08Z',
              finished_at: '2026-03-04T05:06:20Z',
            },
            [succeeded, failed],
          ),
        };
      },
    });
    const { container } = renderApp(`/images/batches/${ID}`);
    expect(await screen.findByTestId('batch-status')).toHaveTextContent('Processing');
    expect(screen.getByText('Updating live')).toBeInTheDocument();
    expect(screen.getByText('SKU1 <b>bold</b>', { exact: false })).toBeInTheDocument();
    expect(container.querySelector('b')).toBeNull();

    await act(() => vi.advanceTimersByTimeAsync(2000));
    await waitFor(() => expect(screen.getByTestId('batch-status')).toHaveTextContent('Completed with errors'));
    expect(screen.queryByText('Updating live')).toBeNull();
    await act(() => vi.advanceTimersByTimeAsync(10_000));
    expect(gets(api.requests, `/api/v1/images/batches/${ID}`)).toBe(2);

    const preview = screen.getByRole('img', { name: 'Output of https://shop.example/a.jpg' });
    expect(preview).toHaveAttribute('src', '/media/tok123.jpg');
    expect(screen.getByText('200 kB → 50.0 kB')).toBeInTheDocument();
    expect(screen.getByText('75% smaller')).toBeInTheDocument();
    expect(screen.getByText('640 × 480')).toBeInTheDocument();
    expect(screen.getByTestId('image-error')).toHaveTextContent('the server answered 404 Not Found');
    expect(screen.getByRole('progressbar', { name: 'Batch progress' })).toHaveAttribute(
      'aria-valuetext',
      '2 of 2 processed, 1 failed',
    );
    expect(screen.getByRole('link', { name: 'Download output CSV' })).toHaveAttribute(
      'href',
      `/api/v1/images/batches/${ID}/output.csv`,
    );
    expect(screen.queryByRole('button', { name: 'Cancel batch' })).toBeNull();

    // One product: every request (polls too) reads the first page only, and there is no pager.
    const detail = api.requests.filter((r) => r.path === `/api/v1/images/batches/${ID}`);
    expect(detail.map(pageParams)).toEqual([
      ['0', '50'],
      ['0', '50'],
    ]);
    expect(screen.queryByRole('navigation', { name: 'Product pages' })).toBeNull();
    expect(screen.queryByTestId('products-range')).toBeNull();
    expect(screen.getByRole('heading', { name: 'Products (1)' })).toBeInTheDocument();
  });

  it('batch detail: reads a big batch a page at a time, and live updates keep the page', async () => {
    let processed = 0;
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      [`GET /api/v1/images/batches/${ID}`]: (request) => ({
        status: 200,
        body: productsPage(request, 120, { status: 'processing', processed_images: processed }),
      }),
    });
    const detail = () => api.requests.filter((r) => r.path === `/api/v1/images/batches/${ID}`);
    renderApp(`/images/batches/${ID}`);
    expect(await screen.findByRole('heading', { name: 'Products (120)' })).toBeInTheDocument();
    expect(screen.getByTestId('products-range')).toHaveTextContent('Showing 1–50 of 120');
    expect(screen.getAllByTestId('product')).toHaveLength(50);
    expect(screen.getByRole('heading', { name: '1 · Product 1' })).toBeInTheDocument();
    expect(detail().map(pageParams)).toEqual([['0', '50']]);

    const pager = screen.getByRole('navigation', { name: 'Product pages' });
    expect(within(pager).getByRole('button', { name: 'Page 1' })).toHaveAttribute('aria-current', 'page');
    const user = userEvent.setup({ advanceTimers: vi.advanceTimersByTime });
    await user.click(within(pager).getByRole('button', { name: 'Page 2' }));
    await waitFor(() => expect(screen.getByTestId('products-range')).toHaveTextContent('Showing 51–100 of 120'));
    expect(screen.getByRole('heading', { name: '51 · Product 51' })).toBeInTheDocument();
    expect(screen.queryByRole('heading', { name: '1 · Product 1' })).toBeNull();
    expect(pageParams(detail().at(-1))).toEqual(['50', '50']);

    // Live refreshes fetch the page on screen, and do not move back to the first one.
    const before = detail().length;
    processed = 7;
    await act(() => vi.advanceTimersByTimeAsync(2000));
    await waitFor(() => expect(screen.getByTestId('batch-progress-text')).toHaveTextContent('7 / 120 processed'));
    expect(detail().length).toBe(before + 1);
    expect(pageParams(detail().at(-1))).toEqual(['50', '50']);
    expect(screen.getByTestId('products-range')).toHaveTextContent('Showing 51–100 of 120');
    expect(within(pager).getByRole('button', { name: 'Page 2' })).toHaveAttribute('aria-current', 'page');

    await user.click(within(pager).getByRole('button', { name: 'next page' }));
    await waitFor(() => expect(screen.getByTestId('products-range')).toHaveTextContent('Showing 101–120 of 120'));
    expect(screen.getAllByTestId('product')).toHaveLength(20);
    expect(pageParams(detail().at(-1))).toEqual(['100', '50']);
    expect(detail().every((r) => pageParams(r)[1] === '50')).toBe(true);
  });

  it('batch detail: a page that fails to load says so and can be asked for again', async () => {
    let failing = true;
    mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      [`GET /api/v1/images/batches/${ID}`]: (request) =>
        failing && pageParams(request)[0] === '50'
          ? apiError(503, 'unavailable', 'The database is busy.')
          : { status: 200, body: productsPage(request, 60, { status: 'completed', processed_images: 60 }) },
    });
    renderApp(`/images/batches/${ID}`);
    const user = userEvent.setup({ advanceTimers: vi.advanceTimersByTime });
    await user.click(await screen.findByRole('button', { name: 'Page 2' }));
    expect(await screen.findByText('Page 2 could not be loaded')).toBeInTheDocument();
    expect(screen.getByText('The products below are from page 1.')).toBeInTheDocument();
    expect(screen.getByTestId('products-range')).toHaveTextContent('Showing 1–50 of 60');

    failing = false;
    await user.click(screen.getByRole('button', { name: 'Try again' }));
    await waitFor(() => expect(screen.getByTestId('products-range')).toHaveTextContent('Showing 51–60 of 60'));
    expect(screen.queryByText('Page 2 could not be loaded')).toBeNull();
    expect(screen.getAllByTestId('product')).toHaveLength(10);
  });

  it('batch detail: after the batch, follows a webhook still being retried until it is delivered', async () => {
    let polls = 0;
    const hook = (status: WebhookStatus, attempts: number, last_error: string | null) => ({
      url: 'https://hooks.example/done',
      status,
      attempts,
      last_error,
    });
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      [`GET /api/v1/images/batches/${ID}`]: () => {
        polls++;
        const webhook = polls === 1 ? hook('pending', 1, 'the server answered 503') : hook('delivered', 2, null);
        return { status: 200, body: batch({ status: 'completed', processed_images: 2, webhook }, [succeeded, { ...succeeded, position: 2 }]) };
      },
    });
    renderApp(`/images/batches/${ID}`);
    const webhook = await screen.findByTestId('webhook');
    expect(webhook).toHaveTextContent('Retrying · 1 attempt');
    expect(webhook).toHaveTextContent('Last error: the server answered 503');
    await act(() => vi.advanceTimersByTimeAsync(2000));
    expect(polls).toBe(1);
    await act(() => vi.advanceTimersByTimeAsync(8000));
    await waitFor(() => expect(screen.getByTestId('webhook')).toHaveTextContent('Delivered · 2 attempts'));
    await act(() => vi.advanceTimersByTimeAsync(60_000));
    expect(gets(api.requests, `/api/v1/images/batches/${ID}`)).toBe(2);
  });
});

describe('batch actions', { timeout: 20_000 }, () => {
  it('retries failed images with the CSRF token and polls again', async () => {
    let retried = false;
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      [`GET /api/v1/images/batches/${ID}`]: () =>
        retried
          ? { status: 200, body: batch({ status: 'processing', processed_images: 1 }, [succeeded, image({ position: 2 })]) }
          : { status: 200, body: batch({ status: 'completed_with_errors', processed_images: 2, failed_images: 1 }, [succeeded, failed]) },
      [`POST /api/v1/images/batches/${ID}/retry`]: () => {
        retried = true;
        return { status: 200, body: { request_id: ID, retried_images: 1 } };
      },
    });
    renderApp(`/images/batches/${ID}`);
    const user = userEvent.setup();
    await user.click(await screen.findByRole('button', { name: 'Retry failed images (1)' }));
    expect(await screen.findByText('1 failed image queued again.')).toBeInTheDocument();
    await waitFor(() => expect(screen.getByTestId('batch-status')).toHaveTextContent('Processing'));
    expect(screen.queryByRole('button', { name: /Retry failed images/ })).toBeNull();
    expect(screen.getByText('Updating live')).toBeInTheDocument();
    const post = api.requests.find((r) => r.method === 'POST');
    expect(post?.path).toBe(`/api/v1/images/batches/${ID}/retry`);
    expect(post?.headers.get('X-CSRF-Token')).toBe(CSRF);
  });

  it('has no retry button without failures', async () => {
    mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      [`GET /api/v1/images/batches/${ID}`]: {
        status: 200,
        body: batch({ status: 'completed', processed_images: 2 }, [succeeded, { ...succeeded, position: 2 }]),
      },
    });
    renderApp(`/images/batches/${ID}`);
    expect(await screen.findByTestId('batch-status')).toHaveTextContent('Completed');
    expect(screen.queryByRole('button', { name: /Retry/ })).toBeNull();
    expect(screen.queryByRole('button', { name: 'Cancel batch' })).toBeNull();
  });

  it('cancels an active batch only after confirming, and shows a refusal', async () => {
    let cancelled = false;
    let attempts = 0;
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      [`GET /api/v1/images/batches/${ID}`]: () => ({
        status: 200,
        body: batch(cancelled ? { status: 'cancelled', finished_at: '2026-03-04T05:07:00Z' } : { status: 'processing' }),
      }),
      [`POST /api/v1/images/batches/${ID}/cancel`]: () => {
        attempts++;
        if (attempts === 1) return apiError(409, 'batch_finished', 'This batch is already completed.');
        cancelled = true;
        return { status: 200, body: summary({ status: 'cancelled' }) };
      },
    });
    renderApp(`/images/batches/${ID}`);
    const user = userEvent.setup();
    await user.click(await screen.findByRole('button', { name: 'Cancel batch' }));
    let dialog = await screen.findByRole('dialog', { name: 'Cancel this batch?' });
    await user.click(within(dialog).getByRole('button', { name: 'Keep processing' }));
    await waitFor(() => expect(screen.queryByRole('dialog')).toBeNull());
    expect(api.requests.some((r) => r.method === 'POST')).toBe(false);

    await user.click(screen.getByRole('button', { name: 'Cancel batch' }));
    dialog = await screen.findByRole('dialog', { name: 'Cancel this batch?' });
    await user.click(within(dialog).getByRole('button', { name: 'Cancel batch' }));
    expect(await screen.findByTestId('action-error')).toHaveTextContent('This batch is already completed.');

    await user.click(screen.getByRole('button', { name: 'Cancel batch' }));
    dialog = await screen.findByRole('dialog', { name: 'Cancel this batch?' });
    await user.click(within(dialog).getByRole('button', { name: 'Cancel batch' }));
    await waitFor(() => expect(screen.getByTestId('batch-status')).toHaveTextContent('Cancelled'));
    expect(screen.getByText('The batch was cancelled.')).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Cancel batch' })).toBeNull();
    for (const post of api.requests.filter((r) => r.method === 'POST')) {
      expect(post.headers.get('X-CSRF-Token')).toBe(CSRF);
    }
  });

  it('says so when the batch does not exist', async () => {
    mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      [`GET /api/v1/images/batches/${ID}`]: apiError(404, 'batch_not_found', 'No such batch.'),
    });
    renderApp(`/images/batches/${ID}`);
    expect(await screen.findByText('No such batch', { selector: '*' })).toBeInTheDocument();
    expect(screen.getByTestId('error-banner')).toHaveTextContent('No such batch.');
  });
});

describe('Home card', () => {
  it('shows the recent batch count and the latest status', async () => {
    mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      'GET /ready': { status: 200, body: { status: 'ok', checks: { database: 'ok' }, failing: [] } },
      'GET /api/v1/images/batches': {
        status: 200,
        body: { items: [summary({ status: 'processing', processed_images: 1 }), summary({ request_id: 'x' })], next_cursor: null },
      },
    });
    renderApp('/');
    expect(await screen.findByTestId('images-summary')).toHaveTextContent('2 recent batches · latest:Processing1 of 2 images');
  });
});

describe('formatting', () => {
  it('writes sizes and savings for people', () => {
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(12_345)).toBe('12.3 kB');
    expect(formatBytes(4_560_000)).toBe('4.56 MB');
    expect(formatBytes(null)).toBe('—');
    expect(formatSaving(1000, 250)).toBe('75% smaller');
    expect(formatSaving(1000, 1100)).toBe('10% larger');
    expect(formatSaving(1000, 1000)).toBe('same size');
    expect(formatSaving(null, 10)).toBeNull();
  });
});
