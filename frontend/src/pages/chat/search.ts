import type { Message, UserRef } from '../../api/chat';

/**
 * What a search's `q` looks for, to highlight it in the hits: its words and "phrases", without
 * `or` and the `-words` it leaves out (docs/chat.md, "Search"). The server stems English words
 * (`deploying` finds `deploy`), so a word is highlighted wherever a word starts with its stem.
 */
export function searchTerms(q: string): string[] {
  const terms: string[] = [];
  const pattern = /(-?)"([^"]*)"|(\S+)/g;
  for (const match of q.matchAll(pattern)) {
    if (match[2] !== undefined) {
      if (match[1] === '-') continue;
      const phrase = match[2].trim().toLowerCase();
      if (phrase) terms.push(phrase);
      continue;
    }
    const word = match[3] ?? '';
    if (word.startsWith('-') || word.toLowerCase() === 'or') continue;
    // Anything else in `q` is text: keep its letters and digits only.
    for (const part of word.toLowerCase().split(/[^\p{L}\p{N}]+/u)) if (part) terms.push(part);
  }
  return [...new Set(terms)];
}

/** The stem a word is matched by: the English endings the server's stemmer takes off. */
export function stem(word: string): string {
  const stripped = word.replace(/(ing|edly|ed|ies|es|s|ly)$/u, '');
  return stripped.length >= 3 ? stripped : word;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** One regular expression finding every term (a phrase's words with any spaces between). */
export function termPattern(terms: readonly string[]): RegExp | null {
  const parts = terms
    .map((term) => {
      const words = term.split(/\s+/u).filter(Boolean);
      if (words.length === 0) return '';
      const last = words.length - 1;
      return words
        .map((word, i) => (i === last ? `${escapeRegExp(stem(word))}[\\p{L}\\p{N}]*` : escapeRegExp(word)))
        .join('\\s+');
    })
    .filter(Boolean)
    .sort((a, b) => b.length - a.length);
  if (parts.length === 0) return null;
  return new RegExp(`(?<![\\p{L}\\p{N}])(?:${parts.join('|')})`, 'giu');
}

export interface SnippetPart {
  text: string;
  mark: boolean;
}

/**
 * A short piece of `text` around the first match of `terms`, cut into plain and marked parts
 * (rendered as text and `<mark>`, never as HTML). Without a match: the start of the text.
 */
export function snippet(text: string, terms: readonly string[], width = 160): SnippetPart[] {
  const flat = text.replace(/\s+/gu, ' ').trim();
  const pattern = termPattern(terms);
  const first = pattern ? flat.search(pattern) : -1;
  let start = 0;
  if (first > width / 3) {
    start = first - Math.floor(width / 3);
    const space = flat.indexOf(' ', start);
    if (space !== -1 && space < first) start = space + 1;
  }
  let end = Math.min(flat.length, start + width);
  if (end < flat.length) {
    const space = flat.lastIndexOf(' ', end);
    if (space > first && space > start) end = space;
  }
  const piece = flat.slice(start, end);
  const parts: SnippetPart[] = [];
  if (start > 0) parts.push({ text: '…', mark: false });
  let at = 0;
  if (pattern) {
    for (const match of piece.matchAll(pattern)) {
      const index = match.index ?? 0;
      if (index > at) parts.push({ text: piece.slice(at, index), mark: false });
      parts.push({ text: match[0], mark: true });
      at = index + match[0].length;
    }
  }
  if (at < piece.length) parts.push({ text: piece.slice(at), mark: false });
  if (end < flat.length) parts.push({ text: '…', mark: false });
  return parts;
}

/** A message's text as read (its rendered HTML without markup), with its files' names. */
export function messageText(message: Pick<Message, 'body_html' | 'attachments'>): string {
  const doc = new DOMParser().parseFromString(message.body_html, 'text/html');
  const body = doc.body.textContent ?? '';
  const files = (message.attachments ?? []).map((file) => file.filename);
  return [body, ...files].filter(Boolean).join(' ');
}

/**
 * The search form's dates (`YYYY-MM-DD` of the viewer's day) as the API's bounds: `since` at
 * the start of its day, `until` at the end of its day (the API's `until` is exclusive).
 */
export function dayBounds(since: string, until: string): { since: string | null; until: string | null } {
  const start = (day: string) => {
    const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day);
    if (!match) return null;
    return new Date(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  };
  const from = start(since);
  const to = start(until);
  if (to) to.setDate(to.getDate() + 1);
  return { since: from ? from.toISOString() : null, until: to ? to.toISOString() : null };
}

/** People to choose from, each once, by name; without the ids of `exclude`. */
export function mergePeople(lists: readonly (readonly UserRef[])[], exclude: Iterable<string> = []): UserRef[] {
  const left = new Set(exclude);
  const byId = new Map<string, UserRef>();
  for (const list of lists) for (const person of list) if (!left.has(person.id) && !byId.has(person.id)) byId.set(person.id, person);
  const name = (p: UserRef) => (p.display_name || p.username).toLocaleLowerCase();
  return [...byId.values()].sort((a, b) => name(a).localeCompare(name(b)) || a.username.localeCompare(b.username));
}
