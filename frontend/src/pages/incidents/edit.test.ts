import { describe, expect, it } from 'vitest';
import type { Incident } from '../../api/incidents';
import { categoryOptions, changedFields } from './EditIncidentDialog';

const incident = {
  title: 'DB down',
  description: 'All writes fail',
  severity: 'SEV2',
  category: 'Database',
  tags: ['db', 'eu'],
  visibility: 'public',
} as Incident;
const same = {
  title: 'DB down',
  description: 'All writes fail',
  severity: 'SEV2' as const,
  category: 'Database',
  tags: ['eu', 'db'],
  visibility: 'public' as const,
};

describe('the edit dialog sends only what changed', () => {
  it('sends nothing when nothing changed (tag order does not matter)', () => {
    expect(changedFields(incident, same)).toEqual({});
  });

  it('sends each changed field, and the whole tag list when it changed', () => {
    expect(changedFields(incident, { ...same, severity: 'SEV1', tags: ['db'], visibility: 'restricted' })).toEqual({
      severity: 'SEV1',
      tags: ['db'],
      visibility: 'restricted',
    });
    expect(changedFields(incident, { ...same, title: 'DB back', description: '' })).toEqual({
      title: 'DB back',
      description: '',
    });
  });
});

describe('the category can be cleared', () => {
  it('sends category null when "No category" is chosen, and nothing when it was already empty', () => {
    expect(changedFields(incident, { ...same, category: null })).toEqual({ category: null });
    expect(changedFields({ ...incident, category: null }, { ...same, category: null })).toEqual({});
  });

  it('offers "No category" first even when the incident has one, and keeps the current one', () => {
    expect(categoryOptions(['Network'], 'Database')).toEqual([
      { value: '', label: 'No category' },
      { value: 'Network', label: 'Network' },
      { value: 'Database', label: 'Database' },
    ]);
    expect(categoryOptions(['Database'], 'Database').map((option) => option.value)).toEqual(['', 'Database']);
  });
});
