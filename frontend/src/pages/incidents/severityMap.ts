import type { Severity } from '../../api/incidents';

/** One line of the severity-map editor: an alert label value and the severity it means. */
export interface SeverityRow {
  value: string;
  severity: Severity;
}

/** What most Prometheus rules put in their `severity` label (the API's default map). */
export const DEFAULT_SEVERITY_ROWS: readonly SeverityRow[] = [
  { value: 'critical', severity: 'SEV1' },
  { value: 'error', severity: 'SEV2' },
  { value: 'warning', severity: 'SEV3' },
  { value: 'info', severity: 'SEV4' },
];

/** The API's limit (incidents/schemas.py: SEVERITY_MAP_MAX); the length of a value is its to check. */
export const SEVERITY_MAP_MAX = 50;

export interface SeverityMapResult {
  map: Record<string, Severity>;
  /** The problem of each row, by its index; empty when the map can be sent. */
  rowErrors: Record<number, string>;
  /** A problem of the whole map (too many rows). */
  error: string | null;
}

/**
 * The editor's rows as the `severity_map` of the API. Values are compared without case by the
 * server, so two rows naming the same value (in any case) would silently become one: refused
 * here, next to the second row. A blank row is an error too, so nothing is dropped unseen.
 */
export function severityMapFromRows(rows: readonly SeverityRow[]): SeverityMapResult {
  const map: Record<string, Severity> = {};
  const rowErrors: Record<number, string> = {};
  const seen = new Map<string, number>();
  rows.forEach((row, index) => {
    const value = row.value.trim();
    if (!value) {
      rowErrors[index] = 'Enter a label value, or remove this row.';
      return;
    }
    const key = value.toLowerCase();
    const first = seen.get(key);
    if (first !== undefined) {
      rowErrors[index] = `“${value}” is already on row ${first + 1} (values ignore case).`;
      return;
    }
    seen.set(key, index);
    map[value] = row.severity;
  });
  const error = rows.length > SEVERITY_MAP_MAX ? `At most ${SEVERITY_MAP_MAX} values.` : null;
  return { map, rowErrors, error };
}

const MAP_FIELD = 'body.severity_map';

/**
 * The API's refusals of the map, placed: one naming a value (`body.severity_map.<value>` or
 * `...<value>.[key]`) goes next to that row; any other (`body.severity_map`) to the whole map.
 */
export function placeMapErrors(
  details: readonly { field?: string | null; message: string }[],
  rows: readonly SeverityRow[],
): { rowErrors: Record<number, string>; error: string | null } {
  const rowErrors: Record<number, string> = {};
  let error: string | null = null;
  for (const detail of details) {
    const field = detail.field ?? '';
    if (field !== MAP_FIELD && !field.startsWith(`${MAP_FIELD}.`)) continue;
    const key = field.slice(MAP_FIELD.length + 1).replace(/\.\[key\]$/, '');
    const index = key ? rows.findIndex((row) => row.value.trim() === key) : -1;
    if (index >= 0) rowErrors[index] ??= detail.message;
    else error ??= detail.message;
  }
  return { rowErrors, error };
}

/** An integration's `severity_map` as the editor's rows, in the API's order. */
export function rowsFromSeverityMap(map: Readonly<Record<string, Severity>>): SeverityRow[] {
  return Object.entries(map).map(([value, severity]) => ({ value, severity }));
}
