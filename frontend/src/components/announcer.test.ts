import { renderHook } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { INITIAL_ANNOUNCER, nextAnnouncement, type Progress, useProgressAnnouncement } from './announcer';

function run(polls: Progress[]): string[] {
  const said: string[] = [];
  let state = INITIAL_ANNOUNCER;
  for (const poll of polls) {
    const next = nextAnnouncement(state, poll);
    if (next !== state) said.push(next.message);
    state = next;
  }
  return said;
}

describe('the throttled progress announcer', () => {
  it('announces the first reading', () => {
    expect(run([{ status: 'Processing', done: 0, total: 50 }])).toEqual(['Processing: 0 of 50 processed (0%).']);
  });

  it('stays quiet while polls bring nothing new', () => {
    const polls = Array.from({ length: 20 }, () => ({ status: 'Processing', done: 3, total: 50 }));
    expect(run(polls)).toHaveLength(1);
  });

  it('announces every 10 %, not every poll', () => {
    // 200 images, one more per poll: 201 polls, 11 announcements (0 %, 10 %, ..., 100 %).
    const polls = Array.from({ length: 201 }, (_, done) => ({ status: 'Processing', done, total: 200 }));
    const said = run(polls);
    expect(said).toHaveLength(11);
    expect(said[1]).toBe('Processing: 20 of 200 processed (10%).');
    expect(said[10]).toBe('Processing: 200 of 200 processed (100%).');
  });

  it('announces a jump over several steps once', () => {
    const said = run([
      { status: 'Processing', done: 0, total: 10 },
      { status: 'Processing', done: 7, total: 10 },
    ]);
    expect(said).toEqual(['Processing: 0 of 10 processed (0%).', 'Processing: 7 of 10 processed (70%).']);
  });

  it('announces every status change at once, with the failures', () => {
    const said = run([
      { status: 'Pending', done: 0, total: 4 },
      { status: 'Processing', done: 0, total: 4 },
      { status: 'Processing', done: 0, total: 4 },
      { status: 'Completed with errors', done: 4, total: 4, failed: 1 },
    ]);
    expect(said).toEqual([
      'Pending: 0 of 4 processed (0%).',
      'Processing: 0 of 4 processed (0%).',
      'Completed with errors: 4 of 4 processed (100%), 1 failed.',
    ]);
  });

  it('does not repeat itself when progress goes back (a retry)', () => {
    const said = run([
      { status: 'Processing', done: 5, total: 10 },
      { status: 'Processing', done: 4, total: 10 },
      { status: 'Processing', done: 5, total: 10 },
    ]);
    expect(said).toHaveLength(1);
  });
});

describe('useProgressAnnouncement', () => {
  it('keeps its message across re-renders until there is news', () => {
    const { result, rerender } = renderHook(
      ({ done }: { done: number }) => useProgressAnnouncement({ status: 'Processing', done, total: 100 }),
      { initialProps: { done: 0 } },
    );
    expect(result.current).toBe('Processing: 0 of 100 processed (0%).');
    for (const done of [1, 5, 9]) {
      rerender({ done });
      expect(result.current).toBe('Processing: 0 of 100 processed (0%).');
    }
    rerender({ done: 12 });
    expect(result.current).toBe('Processing: 12 of 100 processed (12%).');
  });

  it('says nothing before the first reading', () => {
    const { result } = renderHook(() => useProgressAnnouncement(undefined));
    expect(result.current).toBe('');
  });
});
