/**
 * A message's `body_html`: rendered from Markdown and sanitised by the server (core/markdown.py,
 * an allow-list). The ONLY place the chat sets HTML; every other value is rendered as text.
 */
export function ServerHtml({ html, testId }: { html: string; testId?: string }) {
  return (
    <div
      className="chat-body"
      data-testid={testId}
      // eslint-disable-next-line no-restricted-syntax
      dangerouslySetInnerHTML={{ __html: html }}
    />
  );
}
