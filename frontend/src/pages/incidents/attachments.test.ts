import { describe, expect, it } from 'vitest';
import { canRemove, previewPollInterval, PREVIEW_POLL_MS } from './Attachments';
import { followUpBody } from './IncidentFollowUps';

describe('attachment previews', () => {
  it('polls while a preview is pending and stops once none is', () => {
    expect(previewPollInterval(undefined)).toBe(false);
    expect(previewPollInterval([])).toBe(false);
    expect(previewPollInterval([{ preview: 'ready' }, { preview: 'pending' }])).toBe(PREVIEW_POLL_MS);
    expect(previewPollInterval([{ preview: 'ready' }, { preview: 'failed' }, { preview: 'none' }])).toBe(false);
  });
});

describe('who may remove an attachment', () => {
  const uploader = { id: 'u1', username: 'ann', display_name: 'Ann' };
  it('is its uploader or an admin', () => {
    expect(canRemove({ uploader }, { id: 'u1', role: 'member' })).toBe(true);
    expect(canRemove({ uploader }, { id: 'u2', role: 'member' })).toBe(false);
    expect(canRemove({ uploader }, { id: 'u2', role: 'admin' })).toBe(true);
    expect(canRemove({ uploader: null }, { id: 'u2', role: 'member' })).toBe(false);
  });
});

describe('a new follow-up', () => {
  it('sends the trimmed title and leaves out a blank owner and due date', () => {
    expect(followUpBody('  Add an alert ', ' ', '')).toEqual({ title: 'Add an alert', status: 'open' });
    expect(followUpBody('Add an alert', ' carol ', '2030-01-31')).toEqual({
      title: 'Add an alert',
      status: 'open',
      owner: 'carol',
      due_date: '2030-01-31',
    });
  });
});
