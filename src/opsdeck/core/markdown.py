"""Markdown written by users (incident descriptions, comments, postmortems, chat), rendered to
HTML on the server and sanitised there, so no client ever inserts HTML a user wrote.

CommonMark with tables and strikethrough; raw HTML in the source is shown as text, not
passed through; links keep http(s) and mailto only and get `rel="noopener noreferrer nofollow"`;
nh3 (ammonia) then removes anything outside the allow-list, whatever the renderer produced.

A caller may turn pieces of plain text into elements (`Inline`: chat links `INC-42` to its
incident and marks `@alice` as a mention): a pattern and, per match, a link (`<a href>`) or a
span (`class` and `data-*` attributes). Only text is looked at: never code (spans or blocks),
never the text of a link, and never raw HTML (shown as text anyway). `matches` finds a
pattern in the same places, so what is stored (the mentions) and what is shown agree.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

ALLOWED_TAGS = {
    "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "li", "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "td": {"style"},
    "th": {"style"},
    # Only `Inline` elements make spans: the source's own HTML is never passed through.
    "span": {"class", "data-user-id"},
}
URL_SCHEMES = {"http", "https", "mailto"}


@lru_cache(maxsize=1)
def _renderer() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
        ["table", "strikethrough"]
    )


@dataclass(frozen=True)
class Element:
    """What a match becomes: `<a href=...>` (tag "a") or `<span class data-user-id>` ("span"),
    around the matched text."""

    tag: str
    attributes: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Inline:
    pattern: re.Pattern[str]
    # The element for a match, or None to leave that match as text.
    element: Callable[[re.Match[str]], Element | None]


def _text_tokens(tokens: Sequence[Token]) -> Iterator[tuple[Token, int]]:
    """The inline `text` tokens outside links (each with its index in its parent's children);
    code spans are `code_inline` tokens and code blocks are not inline, so they never show."""
    for token in tokens:
        if token.type != "inline" or not token.children:
            continue
        depth = 0
        for index, child in enumerate(token.children):
            if child.type == "link_open":
                depth += 1
            elif child.type == "link_close":
                depth = max(0, depth - 1)
            elif child.type == "text" and depth == 0:
                yield token, index


def matches(source: str, pattern: re.Pattern[str]) -> list[re.Match[str]]:
    """Every match of `pattern` in the plain text of a Markdown source (not in code or links)."""
    return Parsed(source).matches(pattern)


def _split(token: Token, inlines: Sequence[Inline]) -> list[Token] | None:
    """The text token cut into text and elements, or None when no inline matched."""
    text = token.content
    found: list[tuple[int, int, Element]] = []
    for inline in inlines:
        for match in inline.pattern.finditer(text):
            element = inline.element(match)
            if element is None or element.tag not in ("a", "span"):
                continue
            start, end = match.span()
            if any(start < e and s < end for s, e, _ in found):
                continue
            found.append((start, end, element))
    if not found:
        return None
    found.sort(key=lambda item: item[0])
    result: list[Token] = []
    at = 0
    for start, end, element in found:
        if start > at:
            result.append(Token("text", "", 0, content=text[at:start]))
        opening = Token(f"{element.tag}_inline_open", element.tag, 1)
        for name, value in element.attributes:
            opening.attrSet(name, value)
        result += [
            opening,
            Token("text", "", 0, content=text[start:end]),
            Token(f"{element.tag}_inline_close", element.tag, -1),
        ]
        at = end
    if at < len(text):
        result.append(Token("text", "", 0, content=text[at:]))
    return result


def render(source: str, *, inlines: Sequence[Inline] = ()) -> str:
    """Safe HTML for a Markdown source (with `inlines` turned into their elements)."""
    return Parsed(source).render(inlines=inlines)


class Parsed:
    """A source parsed once, for a caller that first looks for matches and then renders with
    what it found (chat reads a message's @names, looks the people up, renders the mentions):
    one parse instead of two. `render` changes the parse: call it once, last."""

    def __init__(self, source: str) -> None:
        self.tokens = _renderer().parse(source) if source.strip() else None

    def matches(self, pattern: re.Pattern[str]) -> list[re.Match[str]]:
        if self.tokens is None:
            return []
        return [
            match
            for parent, index in _text_tokens(self.tokens)
            for match in pattern.finditer((parent.children or [])[index].content)
        ]

    def render(self, *, inlines: Sequence[Inline] = ()) -> str:
        tokens = self.tokens
        if tokens is None:
            return ""
        renderer = _renderer()
        if inlines:
            for parent, index in reversed(list(_text_tokens(tokens))):
                children = parent.children or []
                replaced = _split(children[index], inlines)
                if replaced is not None:
                    children[index : index + 1] = replaced
        html = renderer.renderer.render(tokens, renderer.options, {})
        return nh3.clean(
            html,
            tags=ALLOWED_TAGS | {"span"},
            attributes=ALLOWED_ATTRIBUTES,
            url_schemes=URL_SCHEMES,
            link_rel="noopener noreferrer nofollow",
            filter_style_properties={"text-align"},
        )
