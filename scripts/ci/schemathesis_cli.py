"""The schemathesis command line, with `ast.parse` taken by one thread at a time.

Python 3.11's AST constructor keeps its recursion depth in interpreter-wide state, so two
threads building ASTs at once can fail with `SystemError: AST constructor recursion depth
mismatch` (CPython gh-106905). Hypothesis parses a lambda's source file to describe it
(`hypothesis.internal.lambda_sources`), schemathesis's workers are threads, and the fuzz gate
failed at random on that error, reported as a "Runtime Error" of whichever operation was being
generated. Parsing in turn costs nothing that shows: Hypothesis caches each file's parse.

Run as `python scripts/ci/schemathesis_cli.py <schemathesis arguments>` with the gate tools'
Python (scripts/ci/fuzz.py does).
"""

from __future__ import annotations

import ast
import sys
import threading
from typing import Any

from schemathesis.cli import schemathesis

_parse = ast.parse
_one_at_a_time = threading.Lock()


def _serial_parse(*args: Any, **kwargs: Any) -> Any:
    with _one_at_a_time:
        return _parse(*args, **kwargs)


if __name__ == "__main__":
    ast.parse = _serial_parse
    sys.argv[0] = "schemathesis"
    sys.exit(schemathesis())
