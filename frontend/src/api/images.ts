import { api, unwrap } from './client';
import type { components } from './schema';
import type { Batch, BatchPage, BatchStatus, BatchSummary, RetryResult } from './types';

type Schemas = components['schemas'];

export const OUTPUT_FORMATS = ['keep', 'jpeg', 'png', 'webp', 'avif'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** The `operations` form field of a new batch; see images/processing.py `Operations`. */
export interface Operations {
  quality: number;
  format: OutputFormat;
  max_width?: number;
  max_height?: number;
  animated?: boolean;
}

export const DEFAULT_QUALITY = 50;
/** Largest width or height the server accepts (processing.MAX_DIMENSION). */
export const MAX_DIMENSION = 65_500;
export const PAGE_SIZE = 20;

/** Query keys of the images module, for caching and invalidation. */
export const imagesKeys = {
  all: ['images'] as const,
  batches: () => ['images', 'batches'] as const,
  recent: (limit: number) => ['images', 'batches', 'recent', limit] as const,
  batch: (requestId: string) => ['images', 'batch', requestId] as const,
  batchPage: (requestId: string, page: ProductsPage) => ['images', 'batch', requestId, page] as const,
};

export const ACTIVE_BATCH_STATUSES: ReadonlySet<BatchStatus> = new Set<BatchStatus>(['pending', 'processing']);

export function isActiveBatch(batch: Pick<BatchSummary, 'status'>): boolean {
  return ACTIVE_BATCH_STATUSES.has(batch.status);
}

export interface BatchOptions {
  operations: Operations;
  webhookUrl: string;
}

function optionsForm(options: BatchOptions): FormData {
  const form = new FormData();
  form.set('operations', JSON.stringify(options.operations));
  const webhook = options.webhookUrl.trim();
  if (webhook) form.set('webhook_url', webhook);
  return form;
}

// The generated body types describe files as strings; openapi-fetch sends a FormData body as
// multipart as it is (the browser sets the boundary), so the form stands in for them.
export function createCsvBatch(file: File, options: BatchOptions): Promise<BatchSummary> {
  const form = optionsForm(options);
  form.set('file', file, file.name);
  return unwrap(
    api.POST('/api/v1/images/batches', {
      body: form as unknown as Schemas['Body_images-create-batch'],
    }),
  );
}

export function createUploadBatch(files: File[], options: BatchOptions): Promise<BatchSummary> {
  const form = optionsForm(options);
  for (const file of files) form.append('files', file, file.name);
  return unwrap(
    api.POST('/api/v1/images/uploads', {
      body: form as unknown as Schemas['Body_images-create-upload'],
    }),
  );
}

export function listBatches(cursor?: string | null, limit = PAGE_SIZE): Promise<BatchPage> {
  return unwrap(
    api.GET('/api/v1/images/batches', {
      params: { query: { cursor: cursor ?? undefined, limit } },
    }),
  );
}

/** A page of a batch's products, in input order; `limit: 0` asks for the counts only. */
export interface ProductsPage {
  offset: number;
  limit: number;
}

/** The batch with every product, or with the products of `page` only. */
export function getBatch(requestId: string, page?: ProductsPage): Promise<Batch> {
  return unwrap(
    api.GET('/api/v1/images/batches/{request_id}', {
      params: {
        path: { request_id: requestId },
        query: page ? { products_offset: page.offset, products_limit: page.limit } : undefined,
      },
    }),
  );
}

export function retryBatch(requestId: string): Promise<RetryResult> {
  return unwrap(
    api.POST('/api/v1/images/batches/{request_id}/retry', {
      params: { path: { request_id: requestId } },
    }),
  );
}

export function cancelBatch(requestId: string): Promise<BatchSummary> {
  return unwrap(
    api.POST('/api/v1/images/batches/{request_id}/cancel', {
      params: { path: { request_id: requestId } },
    }),
  );
}

/**
 * The path of an absolute URL the server built from its public base, so links and previews
 * work from whatever host this page was served (the base may name another host or port).
 */
export function samePath(url: string): string {
  try {
    const parsed = new URL(url, window.location.origin);
    return `${parsed.pathname}${parsed.search}`;
  } catch {
    return url;
  }
}

export function outputCsvPath(batch: Pick<BatchSummary, 'request_id' | 'output_csv_url'>): string {
  return batch.output_csv_url
    ? samePath(batch.output_csv_url)
    : `/api/v1/images/batches/${encodeURIComponent(batch.request_id)}/output.csv`;
}
