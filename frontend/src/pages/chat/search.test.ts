import { describe, expect, it } from 'vitest';
import { dayBounds, mergePeople, messageText, searchTerms, snippet, stem } from './search';

const marked = (parts: { text: string; mark: boolean }[]) =>
  parts.map((p) => (p.mark ? `[${p.text}]` : p.text)).join('');

describe('search terms', () => {
  it('keeps words and phrases, and leaves out `or`, -words and syntax', () => {
    expect(searchTerms('deploy OR "error rate" -staging')).toEqual(['deploy', 'error rate']);
    expect(searchTerms('col:value NEAR( *x* -"left out"')).toEqual(['col', 'value', 'near', 'x']);
    expect(searchTerms('   ')).toEqual([]);
    expect(searchTerms('Deploy deploy')).toEqual(['deploy']);
  });

  it('stems English endings, not short words', () => {
    expect(stem('deploying')).toBe('deploy');
    expect(stem('restarts')).toBe('restart');
    expect(stem('is')).toBe('is');
  });
});

describe('snippet', () => {
  it('marks every match, stemmed and case-insensitive, as text', () => {
    expect(marked(snippet('We Deployed it, then deploying again <b>', ['deploying']))).toBe(
      'We [Deployed] it, then [deploying] again <b>',
    );
    expect(marked(snippet('the error  rate grew; error budget', ['error rate']))).toBe('the [error rate] grew; error budget');
  });

  it('cuts a long text around the first match', () => {
    const text = `${'lorem '.repeat(60)}the checkout failed ${'ipsum '.repeat(60)}`;
    const parts = snippet(text, ['checkout'], 80);
    const shown = marked(parts);
    expect(shown.startsWith('…')).toBe(true);
    expect(shown.endsWith('…')).toBe(true);
    expect(shown).toContain('[checkout]');
    expect(shown.length).toBeLessThan(100);
  });

  it('shows the start when nothing matches (a file name hit)', () => {
    expect(marked(snippet('short', ['graph']))).toBe('short');
    expect(snippet('', [])).toEqual([]);
  });

  it("reads a message's rendered text and its files' names, never its HTML", () => {
    const text = messageText({
      body_html: '<p><strong>Rolled</strong> back &lt;v2&gt;</p>',
      attachments: [{ filename: 'graph.png' } as never],
    });
    expect(text).toBe('Rolled back <v2> graph.png');
  });
});

describe('search filters', () => {
  it('turns days into bounds: from the start of the first, until the end of the last', () => {
    const { since, until } = dayBounds('2026-12-01', '2026-12-07');
    expect(new Date(since ?? '').getTime()).toBe(new Date(2026, 11, 1).getTime());
    expect(new Date(until ?? '').getTime()).toBe(new Date(2026, 11, 8).getTime());
    expect(dayBounds('', 'nope')).toEqual({ since: null, until: null });
  });

  it('lists each person once, by name, without the excluded', () => {
    const alice = { id: 'a', username: 'alice', display_name: 'Alice' };
    const bob = { id: 'b', username: 'bob', display_name: '' };
    const carol = { id: 'c', username: 'carol', display_name: 'Carol' };
    expect(mergePeople([[carol, bob], [alice, bob]], ['c'])).toEqual([alice, bob]);
  });
});
