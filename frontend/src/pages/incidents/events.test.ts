import { describe, expect, it } from 'vitest';
import { describeEvent } from './events';

const base = { old_value: null, new_value: null, data: {} };

describe('timeline event text', () => {
  it('reads workflow and severity moves with their labels', () => {
    expect(describeEvent({ ...base, kind: 'status_changed', old_value: 'triage', new_value: 'investigating' })).toBe(
      'moved it from Triage to Investigating',
    );
    expect(describeEvent({ ...base, kind: 'severity_changed', old_value: 'SEV3', new_value: 'SEV1' })).toBe(
      'changed the severity from SEV3 · minor to SEV1 · critical',
    );
  });

  it('names the field changed and keeps user values as text', () => {
    expect(
      describeEvent({ ...base, kind: 'field_changed', old_value: 'a', new_value: '<img src=x>', data: { field: 'title' } }),
    ).toBe('changed the title from “a” to “<img src=x>”');
    expect(describeEvent({ ...base, kind: 'field_changed', data: { field: 'description' } })).toBe(
      'edited the description',
    );
  });

  it('says who was assigned or removed', () => {
    expect(describeEvent({ ...base, kind: 'assignee_added', new_value: 'max' })).toBe('assigned max');
    expect(describeEvent({ ...base, kind: 'commander_changed', old_value: 'ada', new_value: null })).toBe(
      'removed the commander (ada)',
    );
  });

  it('shows an unknown status as it is', () => {
    expect(describeEvent({ ...base, kind: 'status_changed', old_value: 'weird', new_value: 'closed' })).toBe(
      'moved it from weird to Closed',
    );
  });
});
