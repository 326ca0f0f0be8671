import './incidents.css';

/**
 * HTML the server rendered from Markdown and sanitised (the `*_html` fields of the incidents
 * API, nh3 on the server). The ONLY place the incidents pages set HTML: never pass user text.
 */
export function ServerHtml({ html, testId }: { html: string; testId?: string }) {
  return (
    <div
      className="incident-markdown"
      data-testid={testId}
      // The one exception to the rule: a `*_html` field, sanitised server side
      // (core/markdown.py, an allow-list); every other value is rendered as text.
      // eslint-disable-next-line no-restricted-syntax
      dangerouslySetInnerHTML={{ __html: html }}
    />
  );
}
