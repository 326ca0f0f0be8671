"""docs/configuration.md documents every setting, with the code's default and secrets marked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from opsdeck.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "configuration.md"
# A table row: | `OPSDECK_NAME` | default | secret | meaning |
ROW = re.compile(r"^\|\s*`OPSDECK_([A-Z0-9_]+)`\s*\|([^|]*)\|([^|]*)\|", re.M)


def documented_rows(text: str) -> dict[str, tuple[str, str]]:
    rows: dict[str, tuple[str, str]] = {}
    for match in ROW.finditer(text):
        name = match[1].lower()
        assert name not in rows, f"OPSDECK_{match[1]} is documented twice"
        rows[name] = (match[2].strip(), match[3].strip())
    return rows


ROWS = documented_rows(DOC.read_text(encoding="utf-8"))


def code_default(name: str) -> Any:
    return Settings.model_fields[name].get_default(call_default_factory=True)


def documented_value(cell: str) -> str:
    """`8004` -> "8004"; "empty" -> ""."""
    code = re.fullmatch(r"`([^`]*)`", cell)
    if code:
        return code[1]
    assert cell == "empty", f"default cell {cell!r}: write `value` or empty"
    return ""


def test_every_setting_is_documented_once_and_nothing_else() -> None:
    fields = set(Settings.model_fields)
    assert sorted(fields - set(ROWS)) == [], "settings missing from docs/configuration.md"
    assert sorted(set(ROWS) - fields) == [], "docs/configuration.md names unknown settings"


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_documented_default_is_the_codes(name: str) -> None:
    if name not in ROWS:
        pytest.fail(f"OPSDECK_{name.upper()} is not documented")
    documented = documented_value(ROWS[name][0])
    default = code_default(name)
    if isinstance(default, SecretStr):
        default = default.get_secret_value()
    if default is None or default == "" or default == []:
        assert documented == "", f"OPSDECK_{name.upper()}: the code's default is empty"
    elif isinstance(default, bool):
        assert documented == str(default).lower()
    elif isinstance(default, int | float):
        assert float(documented) == float(default), f"OPSDECK_{name.upper()}"
    elif isinstance(default, Path):
        assert Path(documented) == default, f"OPSDECK_{name.upper()}"
    else:
        assert documented == str(default), f"OPSDECK_{name.upper()}"


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_secrets_are_marked_secret(name: str) -> None:
    if name not in ROWS:
        pytest.fail(f"OPSDECK_{name.upper()} is not documented")
    secret_cell = ROWS[name][1].strip("* ").lower()
    assert secret_cell.startswith(("yes", "no")), f"OPSDECK_{name.upper()}: secret is yes or no"
    if isinstance(code_default(name), SecretStr) or name in {"database_url", "redis_url"}:
        assert secret_cell.startswith("yes"), f"OPSDECK_{name.upper()} holds a secret"


def test_the_parser_sees_a_missing_row() -> None:
    text = DOC.read_text(encoding="utf-8")
    without_port = "\n".join(
        line for line in text.splitlines() if not line.startswith("| `OPSDECK_PORT`")
    )
    assert "port" in ROWS
    assert "port" not in documented_rows(without_port)
