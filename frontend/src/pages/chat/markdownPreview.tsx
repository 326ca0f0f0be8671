import { Fragment, type ReactNode } from 'react';

/**
 * The composer's preview: a small Markdown subset (paragraphs, line breaks, **bold**, *italic*,
 * `code`, fenced code, - lists, > quotes, [links](https://...)) built as React elements, never
 * an HTML string. The message itself is shown from the server's sanitised `body_html`.
 */
export function MarkdownPreview({ text }: { text: string }) {
  return <>{blocks(text)}</>;
}

const SAFE_LINK = /^(https?:\/\/|mailto:)/i;

export function inline(text: string, key = 'i'): ReactNode[] {
  const out: ReactNode[] = [];
  const pattern = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*|_[^_\s][^_]*_)|(\[[^\]]+\]\([^)\s]+\))/g;
  let last = 0;
  let n = 0;
  for (const match of text.matchAll(pattern)) {
    const at = match.index ?? 0;
    if (at > last) out.push(text.slice(last, at));
    const token = match[0];
    const k = `${key}-${n++}`;
    if (match[1]) out.push(<code key={k}>{token.slice(1, -1)}</code>);
    else if (match[2]) out.push(<strong key={k}>{inline(token.slice(2, -2), k)}</strong>);
    else if (match[3]) out.push(<em key={k}>{inline(token.slice(1, -1), k)}</em>);
    else {
      const link = /^\[([^\]]+)\]\(([^)\s]+)\)$/.exec(token);
      const href = link?.[2] ?? '';
      out.push(
        SAFE_LINK.test(href) ? (
          <a key={k} href={href} rel="noopener noreferrer nofollow" target="_blank">
            {link?.[1]}
          </a>
        ) : (
          token
        ),
      );
    }
    last = at + token.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

function lines(text: string, key: string): ReactNode[] {
  return text.split('\n').map((line, i) => (
    <Fragment key={`${key}-${i}`}>
      {i > 0 ? <br /> : null}
      {inline(line, `${key}-${i}`)}
    </Fragment>
  ));
}

export function blocks(text: string): ReactNode[] {
  const out: ReactNode[] = [];
  const source = text.replace(/\r\n?/g, '\n').split('\n');
  let i = 0;
  let para: string[] = [];
  const flush = () => {
    if (para.length) out.push(<p key={`p${out.length}`}>{lines(para.join('\n'), `p${out.length}`)}</p>);
    para = [];
  };
  while (i < source.length) {
    const line = source[i] ?? '';
    if (line.startsWith('```')) {
      flush();
      const code: string[] = [];
      i += 1;
      while (i < source.length && !(source[i] ?? '').startsWith('```')) code.push(source[i++] ?? '');
      i += 1;
      out.push(
        <pre key={`c${out.length}`}>
          <code>{code.join('\n')}</code>
        </pre>,
      );
      continue;
    }
    if (/^\s*[-*] /.test(line)) {
      flush();
      const items: string[] = [];
      while (i < source.length && /^\s*[-*] /.test(source[i] ?? '')) items.push((source[i++] ?? '').replace(/^\s*[-*] /, ''));
      out.push(
        <ul key={`l${out.length}`}>
          {items.map((item, n) => (
            <li key={n}>{inline(item, `l${out.length}-${n}`)}</li>
          ))}
        </ul>,
      );
      continue;
    }
    if (line.startsWith('> ')) {
      flush();
      const quote: string[] = [];
      while (i < source.length && (source[i] ?? '').startsWith('> ')) quote.push((source[i++] ?? '').slice(2));
      out.push(<blockquote key={`q${out.length}`}>{lines(quote.join('\n'), `q${out.length}`)}</blockquote>);
      continue;
    }
    if (line.trim() === '') flush();
    else para.push(line);
    i += 1;
  }
  flush();
  return out;
}
