import { describe, expect, it } from 'vitest';
import { DEFAULT_SEVERITY_ROWS, placeMapErrors, SEVERITY_MAP_MAX, severityMapFromRows } from './severityMap';
import { lastAnswer } from './WebhookDeliveries';

describe('the severity map editor', () => {
  it('turns the default rows into the default map', () => {
    expect(severityMapFromRows(DEFAULT_SEVERITY_ROWS)).toEqual({
      map: { critical: 'SEV1', error: 'SEV2', warning: 'SEV3', info: 'SEV4' },
      rowErrors: {},
      error: null,
    });
  });

  it('trims values and names blank and repeated (any case) rows', () => {
    const result = severityMapFromRows([
      { value: ' page ', severity: 'SEV1' },
      { value: '  ', severity: 'SEV2' },
      { value: 'PAGE', severity: 'SEV3' },
    ]);
    expect(result.map).toEqual({ page: 'SEV1' });
    expect(Object.keys(result.rowErrors)).toEqual(['1', '2']);
    expect(result.rowErrors[2]).toContain('row 1');
  });

  it('refuses more rows than the API takes', () => {
    const rows = Array.from({ length: SEVERITY_MAP_MAX + 1 }, (_, i) => ({ value: `v${i}`, severity: 'SEV4' as const }));
    expect(severityMapFromRows(rows).error).toBe(`At most ${SEVERITY_MAP_MAX} values.`);
    expect(severityMapFromRows(rows.slice(1)).error).toBeNull();
  });
});

describe('a webhook delivery', () => {
  it('says what the receiver last answered', () => {
    expect(lastAnswer({ last_status_code: 503, last_error: 'Service Unavailable', attempts: 2 })).toBe(
      'HTTP 503: Service Unavailable',
    );
    expect(lastAnswer({ last_status_code: null, last_error: 'connection refused', attempts: 1 })).toBe('connection refused');
    expect(lastAnswer({ last_status_code: 200, last_error: null, attempts: 1 })).toBe('HTTP 200');
    expect(lastAnswer({ last_status_code: null, last_error: null, attempts: 0 })).toBe('Not tried yet');
  });
});

describe("the API's refusals of a map", () => {
  const rows = [
    { value: 'critical', severity: 'SEV1' as const },
    { value: 'x'.repeat(300), severity: 'SEV2' as const },
  ];
  it('go next to the row they name, or to the whole map', () => {
    expect(
      placeMapErrors(
        [
          { field: `body.severity_map.${'x'.repeat(300)}.[key]`, message: 'String should have at most 255 characters' },
          { field: 'body.severity_map', message: 'Dictionary should have at most 50 items' },
          { field: 'body.name', message: 'Field required' },
        ],
        rows,
      ),
    ).toEqual({
      rowErrors: { 1: 'String should have at most 255 characters' },
      error: 'Dictionary should have at most 50 items',
    });
  });
});
