import { act, configure, screen, waitFor } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { setSocketFactory } from '../api/socket';
import type { Batch } from '../api/types';
import { FakeSocket } from '../pages/chat/fakeSocket';
import { mockApi, renderApp, session } from '../test/utils';
import { topicEvent } from './useLiveTopic';

configure({ asyncUtilTimeout: 5000 });

const ID = 'b'.repeat(32);

function batch(processed: number): Batch {
  return {
    request_id: ID,
    status: 'processing',
    source: 'csv',
    total_images: 4,
    processed_images: processed,
    failed_images: 0,
    created_at: '2026-03-04T05:06:07Z',
    started_at: '2026-03-04T05:06:08Z',
    finished_at: null,
    webhook: { url: null, status: 'none', attempts: 0, last_error: null },
    output_csv_url: `/api/v1/images/batches/${ID}/output.csv`,
    operations: { quality: 50, format: 'keep', max_width: null, max_height: null, animated: false },
    products_total: 0,
    products_offset: 0,
    products: [],
  } as Batch;
}

describe('topics', () => {
  it('match the events of their incident or batch only', () => {
    const all = topicEvent('incidents');
    const one = topicEvent('incidents:42');
    const batchTopic = topicEvent(`images:batch:${ID}`);
    expect(all?.event).toBe('incidents:incident');
    expect(all?.matches({ number: 7 })).toBe(true);
    expect(one?.matches({ number: 42 })).toBe(true);
    expect(one?.matches({ number: 4 })).toBe(false);
    expect(batchTopic?.event).toBe('images:batch');
    expect(batchTopic?.matches({ id: ID })).toBe(true);
    expect(batchTopic?.matches({ id: 'other' })).toBe(false);
    expect(topicEvent('nonsense')).toBeNull();
  });
});

describe('a batch page over the socket', { timeout: 30_000 }, () => {
  beforeEach(() => vi.useFakeTimers({ shouldAdvanceTime: true }));
  afterEach(() => {
    vi.useRealTimers();
    setSocketFactory(null);
  });

  function setup(accept: boolean) {
    const socket = new FakeSocket((event, payload) =>
      event === 'live:subscribe'
        ? accept
          ? { ok: true, topic: (payload as { topic: string }).topic }
          : { ok: false, error: { code: 'unknown_event', message: 'Unknown event.' } }
        : { ok: true },
    );
    setSocketFactory(async () => {
      queueMicrotask(() => socket.setConnected(true));
      return socket;
    });
    let processed = 0;
    const api = mockApi({
      'GET /api/v1/auth/session': { status: 200, body: session() },
      [`GET /api/v1/images/batches/${ID}`]: () => ({ status: 200, body: batch(processed) }),
    });
    const reads = () => api.requests.filter((r) => r.path === `/api/v1/images/batches/${ID}`).length;
    return { socket, reads, setProcessed: (n: number) => (processed = n) };
  }

  it('stops polling while live, refetches on a push, and polls again when the socket drops', async () => {
    const { socket, reads, setProcessed } = setup(true);
    renderApp(`/images/batches/${ID}`);
    await waitFor(() => expect(socket.sent('live:subscribe')).toEqual([{ topic: `images:batch:${ID}` }]));
    await waitFor(() => expect(reads()).toBeGreaterThan(0));
    const before = reads();
    await act(() => vi.advanceTimersByTimeAsync(10_000));
    expect(reads()).toBe(before);

    setProcessed(3);
    act(() => socket.push('images:batch', { id: ID, status: 'processing', updated_at: '2026-03-04T05:07:00Z' }));
    await waitFor(() => expect(reads()).toBe(before + 1));
    // Another batch's update is not this page's business.
    act(() => socket.push('images:batch', { id: 'other', status: 'done' }));
    await act(() => vi.advanceTimersByTimeAsync(100));
    expect(reads()).toBe(before + 1);

    act(() => socket.setConnected(false));
    await act(() => vi.advanceTimersByTimeAsync(10_000));
    expect(reads()).toBeGreaterThan(before + 1);
  });

  it('reads the batch again once subscribed: what changed before the subscription is not lost', async () => {
    const { socket, reads } = setup(true);
    setSocketFactory(async () => socket); // connected only once the page has read the batch
    renderApp(`/images/batches/${ID}`);
    await waitFor(() => expect(reads()).toBe(1));
    act(() => socket.setConnected(true));
    await waitFor(() => expect(socket.sent('live:subscribe')).toHaveLength(1));
    // The batch may have moved on between the page's read and the subscription, and nobody
    // was subscribed to hear it: an accepted subscription is followed by one more read.
    await act(() => vi.advanceTimersByTimeAsync(100));
    expect(reads()).toBe(2);
    const after = reads();
    await act(() => vi.advanceTimersByTimeAsync(10_000));
    expect(reads()).toBe(after); // and then no polling while live
  });

  it('keeps polling when the server refuses the subscription', async () => {
    const { socket, reads } = setup(false);
    renderApp(`/images/batches/${ID}`);
    await waitFor(() => expect(socket.sent('live:subscribe')).toHaveLength(1));
    await waitFor(() => expect(reads()).toBeGreaterThan(0));
    const before = reads();
    await act(() => vi.advanceTimersByTimeAsync(10_000));
    expect(reads()).toBeGreaterThan(before);
    expect(screen.queryByText('Live updates interrupted')).toBeNull();
  });
});
