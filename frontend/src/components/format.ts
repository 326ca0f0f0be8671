const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

export function formatDateTime(value: string | null | undefined, empty = '—'): string {
  if (!value) return empty;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? value : dateTime.format(date);
}

export function displayName(user: { display_name: string; username: string }): string {
  return user.display_name.trim() || user.username;
}

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];

/** A byte count as people read it: 999 B, 12.3 kB, 4.56 MB (decimal units). */
export function formatBytes(bytes: number | null | undefined, empty = '—'): string {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return empty;
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  if (unit === 0) return `${value} B`;
  const digits = Math.abs(value) >= 100 ? 0 : Math.abs(value) >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${UNITS[unit]}`;
}

/** How much smaller the output is, e.g. "62% smaller", "3% larger", "same size". */
export function formatSaving(before: number | null | undefined, after: number | null | undefined): string | null {
  if (!before || after === null || after === undefined) return null;
  const change = Math.round((1 - after / before) * 100);
  if (change === 0) return after === before ? 'same size' : after < before ? '<1% smaller' : '<1% larger';
  return change > 0 ? `${change}% smaller` : `${-change}% larger`;
}
