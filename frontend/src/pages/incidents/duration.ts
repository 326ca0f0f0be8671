/** A duration as people read it: 45 s, 12 min, 3.5 h, 2.1 d; '—' when there is none. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

const DAY = 86_400_000;
const MINUTE = 60_000;

/** `moment` with its seconds dropped: the dashboard's periods end there, so everybody who opens
 * it within the same minute asks the same periods and the server's stats cache can answer. */
export function startOfMinute(moment: Date): Date {
  return new Date(Math.floor(moment.getTime() / MINUTE) * MINUTE);
}

/** `count` consecutive periods of `days` days ending at `end`, oldest first, as ISO strings. */
export function periods(end: Date, count: number, days: number): { since: string; until: string }[] {
  const result: { since: string; until: string }[] = [];
  for (let i = count - 1; i >= 0; i--) {
    const until = new Date(end.getTime() - i * days * DAY);
    const since = new Date(until.getTime() - days * DAY);
    result.push({ since: since.toISOString(), until: until.toISOString() });
  }
  return result;
}
