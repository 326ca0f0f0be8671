import { describe, expect, it } from 'vitest';
import { ApiError } from '../../api/errors';
import { NO_FILTERS } from '../../api/incidents';
import {
  currentView,
  filtersFromParams,
  formFieldErrors,
  isFiltered,
  listPath,
  paramsFromFilters,
  SAVED_VIEWS,
} from './filters';

describe('incident list filters in the URL', () => {
  it('reads every filter', () => {
    const params = new URLSearchParams(
      'status=triage&status=monitoring&severity=SEV2&category=Network&tag=db&mine=true&q=disk+full',
    );
    expect(filtersFromParams(params)).toEqual({
      status: ['triage', 'monitoring'],
      severity: ['SEV2'],
      category: 'Network',
      tag: 'db',
      mine: true,
      q: 'disk full',
    });
  });

  it('reads nothing as no filter', () => {
    expect(filtersFromParams(new URLSearchParams())).toEqual(NO_FILTERS);
    expect(isFiltered(NO_FILTERS)).toBe(false);
  });

  it('drops unknown statuses and severities and keeps each once, in workflow order', () => {
    const params = new URLSearchParams(
      "status=closed&status=bogus&status=triage&status=closed&severity=SEV9&severity=' OR 1=1&mine=yes",
    );
    const filters = filtersFromParams(params);
    expect(filters.status).toEqual(['triage', 'closed']);
    expect(filters.severity).toEqual([]);
    expect(filters.mine).toBe(false);
  });

  it('caps free text at what the server accepts', () => {
    const filters = filtersFromParams(new URLSearchParams({ q: 'x'.repeat(500), tag: 'y'.repeat(100) }));
    expect(filters.q).toHaveLength(200);
    expect(filters.tag).toHaveLength(64);
  });

  it('writes only what narrows the list, in a fixed order, and round-trips', () => {
    const filters = {
      ...NO_FILTERS,
      severity: ['SEV3' as const, 'SEV1' as const],
      status: ['resolved' as const, 'triage' as const],
      q: '  outage  ',
      mine: true,
    };
    const params = paramsFromFilters(filters);
    expect(params.toString()).toBe('status=triage&status=resolved&severity=SEV1&severity=SEV3&mine=true&q=outage');
    expect(filtersFromParams(params)).toEqual({
      ...filters,
      status: ['triage', 'resolved'],
      severity: ['SEV1', 'SEV3'],
      q: 'outage',
    });
    expect(paramsFromFilters(NO_FILTERS).toString()).toBe('');
  });

  it('encodes what the user typed', () => {
    expect(listPath({ q: 'a&b=c', category: 'R&D' })).toBe('/incidents?category=R%26D&q=a%26b%3Dc');
    expect(listPath({})).toBe('/incidents');
  });

  it('names the saved view the filters match, whatever the search', () => {
    const mine = SAVED_VIEWS[0]!;
    expect(mine.label).toBe('My open incidents');
    expect(listPath(mine.filters)).toBe(
      '/incidents?status=triage&status=investigating&status=identified&status=monitoring&mine=true',
    );
    expect(currentView({ ...mine.filters, q: 'db' })?.label).toBe('My open incidents');
    expect(currentView(NO_FILTERS)?.label).toBe('All incidents');
    expect(currentView({ ...NO_FILTERS, tag: 'db' })).toBeUndefined();
  });
});

describe('form field errors', () => {
  it('puts each problem on the field named after body, the first one per field', () => {
    const error = new ApiError(422, 'validation_error', 'Invalid', [
      { field: 'body.title', message: 'too long' },
      { field: 'body.tags.3', message: "no such tag 'x'" },
      { field: 'body.tags.4', message: "no such tag 'y'" },
      { field: 'category', message: 'no such category' },
      { message: 'no field' },
    ]);
    expect(formFieldErrors(error)).toEqual({
      title: 'too long',
      tags: "no such tag 'x'",
      category: 'no such category',
    });
    expect(formFieldErrors(null)).toEqual({});
  });
});
