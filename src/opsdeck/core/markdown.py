"""Markdown written by users (incident descriptions, comments, postmortems, chat), rendered to
HTML on the server and sanitised there, so no client ever inserts HTML a user wrote.

CommonMark with tables and strikethrough; raw HTML in the source is shown as text, not
passed through; links keep http(s) and mailto only and get `rel="noopener noreferrer nofollow"`;
nh3 (ammonia) then removes anything outside the allow-list, whatever the renderer produced.
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "td": {"style"}, "th": {"style"}}
URL_SCHEMES = {"http", "https", "mailto"}


@lru_cache(maxsize=1)
def _renderer() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
        ["table", "strikethrough"]
    )


def render(source: str) -> str:
    """Safe HTML for a Markdown source."""
    if not source.strip():
        return ""
    html = _renderer().render(source)
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
    )
