import { describe, expect, it } from 'vitest';
import { formatDuration, periods, startOfMinute } from './duration';

describe('durations and periods of the dashboard', () => {
  it('reads durations in the unit that fits', () => {
    expect(formatDuration(null)).toBe('—');
    expect(formatDuration(42)).toBe('42 s');
    expect(formatDuration(600)).toBe('10 min');
    expect(formatDuration(5400)).toBe('1.5 h');
    expect(formatDuration(3 * 86400)).toBe('3.0 d');
  });

  it('cuts time into consecutive periods, oldest first, the last ending at the end', () => {
    const end = new Date('2026-03-29T00:00:00Z');
    const weeks = periods(end, 3, 7);
    expect(weeks).toEqual([
      { since: '2026-03-08T00:00:00.000Z', until: '2026-03-15T00:00:00.000Z' },
      { since: '2026-03-15T00:00:00.000Z', until: '2026-03-22T00:00:00.000Z' },
      { since: '2026-03-22T00:00:00.000Z', until: '2026-03-29T00:00:00.000Z' },
    ]);
  });

  it('ends the periods at the start of the minute, the same for a whole minute', () => {
    const a = startOfMinute(new Date('2026-03-29T10:41:00.000Z'));
    const b = startOfMinute(new Date('2026-03-29T10:41:59.999Z'));
    expect(a.toISOString()).toBe('2026-03-29T10:41:00.000Z');
    expect(periods(b, 8, 7)).toEqual(periods(a, 8, 7));
  });
});
