"""Full-text search strings, shared by every module that searches: one API on two back ends.

- PostgreSQL reads the user's string with `websearch_to_tsquery('english', q)` (`tsquery`):
  any string is a valid query (quotes make phrases, `or` alternatives, `-word` exclusions, the
  rest is words).
- SQLite's FTS5 never gets the user's string as it is: `fts5_expression` reduces it to the same
  words, quoted phrases, `or` and `-word`, every term a quoted string, so FTS5's own syntax
  (`NEAR(`, `col:`, `*`, `^`) is only text.

Either way a word is matched as a word (stemmed English), never as a pattern: `%`, `_` or `*`
match nothing in particular, and a string with no word to look for (none, or only `-word`
exclusions, which would match nearly everything) matches nothing. A blank string is no search
at all (`normalise` answers None).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, literal_column
from sqlalchemy.orm import Session

from opsdeck.core.errors import ValidationFailed

# Longer is not a search but a pasted document; refused with a 422 naming `q`.
MAX_QUERY_LENGTH = 200
QUERY_FIELD = "query.q"
ENGLISH: ColumnElement[Any] = literal_column("'english'::regconfig")


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def normalise(q: str | None) -> str | None:
    """The search string to run, or None for no search (absent or blank). Longer than
    MAX_QUERY_LENGTH is a 422 naming `q`."""
    if q is None:
        return None
    if len(q) > MAX_QUERY_LENGTH:
        raise ValidationFailed(
            f"A search is at most {MAX_QUERY_LENGTH} characters.",
            details=[
                {
                    "field": QUERY_FIELD,
                    "message": f"at most {MAX_QUERY_LENGTH} characters",
                    "type": "string_too_long",
                }
            ],
        )
    stripped = q.strip()
    return stripped or None


_WORD = re.compile(r"[^\W_]+")
# A quoted phrase (its closing quote optional), or a run of anything else.
_CHUNK = re.compile(r'"([^"]*)"?|([^\s"]+)')


def fts5_expression(q: str) -> str | None:
    """`q` as an FTS5 query made only of quoted terms: words AND-ed, `"..."` a phrase, `or`
    between two terms either of them, `-word` without it. None when no word is left (matches
    nothing)."""
    groups: list[list[str]] = []
    excluded: list[str] = []
    either = False
    for match in _CHUNK.finditer(q):
        phrase, chunk = match.groups()
        negated = False
        if chunk is not None:
            if chunk.lower() == "or":
                either = bool(groups)
                continue
            negated = chunk.startswith("-")
            words = _WORD.findall(chunk)
        else:
            words = _WORD.findall(phrase)
        if not words:
            continue
        # A word has no quote in it: the term is one FTS5 string whatever the user typed.
        term = '"' + " ".join(words) + '"'
        if negated:
            excluded.append(term)
        elif either:
            groups[-1].append(term)
        else:
            groups.append([term])
        either = False
    if not groups:
        return None
    expression = " AND ".join(
        group[0] if len(group) == 1 else "(" + " OR ".join(group) + ")" for group in groups
    )
    for term in excluded:
        expression += f" NOT {term}"
    return expression


def tsquery(q: str) -> Any:
    """PostgreSQL's query of search string `q` (normalised), a bound parameter."""
    return func.websearch_to_tsquery(ENGLISH, bindparam("search_q", q, unique=True))


def fts5_match(table_name: str, expression: str) -> ColumnElement[bool]:
    """`<table> MATCH :expression` for an FTS5 table (the expression from `fts5_expression`)."""
    return literal_column(table_name).op("MATCH")(bindparam("search_q", expression, unique=True))
