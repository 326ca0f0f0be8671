"""In-process signals: how one module tells others about a change without importing them.

A module that owns a change names its signal (a string constant in its `service`, e.g.
`"incidents.changed"`) and fires it with `send(session, name, **data)` inside the change's
transaction. A module that wants to react declares its handlers in its registry entry
(`Module(signals=...)`: a loader returning `{signal name: (handler, ...)}`), so the sender never
imports the receiver: incidents fires, chat subscribes, and no import goes from incidents to
chat.

The registry (`opsdeck.modules`) hands the module list to `use_registry` when it is imported;
the handlers are loaded the first time a signal is sent (importing the registry stays cheap).
A handler is called as `handler(session, **data)` in the sender's transaction, in registry
order: what it writes commits or rolls back with the change, and an exception it raises fails
the change (a handler that must not do so catches its own errors). Payloads are plain values
(ids, names), never another module's rows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from opsdeck.core.modules import Module

# Called as `handler(session, **data)`: keyword arguments, as each signal documents them.
Handler = Callable[..., None]

SignalMap = Mapping[str, Sequence[Handler]]

_lock = threading.Lock()
_registry: Callable[[], Iterable[Module]] | None = None
_loaded: dict[str, list[Handler]] | None = None
_extra: dict[str, list[Handler]] = {}


def use_registry(modules: Callable[[], Iterable[Module]]) -> None:
    """Subscribe every module's declared handlers (called once by `opsdeck.modules`)."""
    global _registry, _loaded
    with _lock:
        _registry = modules
        _loaded = None


def connect(name: str, handler: Handler) -> Callable[[], None]:
    """Subscribe one handler outside the registry (tests); answers a function undoing it."""
    with _lock:
        _extra.setdefault(name, []).append(handler)

    def disconnect() -> None:
        with _lock:
            handlers = _extra.get(name, [])
            if handler in handlers:
                handlers.remove(handler)

    return disconnect


def _handlers(name: str) -> list[Handler]:
    global _loaded
    with _lock:
        if _loaded is None:
            loaded: dict[str, list[Handler]] = {}
            for module in _registry() if _registry is not None else ():
                for signal, handlers in module.signals().items():
                    loaded.setdefault(signal, []).extend(handlers)
            _loaded = loaded
        return [*_loaded.get(name, []), *_extra.get(name, [])]


def send(session: Session, name: str, **data: Any) -> int:
    """Call every handler of `name` with `(session, **data)`; how many were called."""
    handlers = _handlers(name)
    for handler in handlers:
        handler(session, **data)
    return len(handlers)
